"""Counters and timings of a run, reported once at the end."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StepStats:
    """What one step did, summed over its workers, and the Ray nodes it ran on."""

    name: str
    task: str
    rows: int = 0
    row_errors: int = 0
    busy_seconds: float = 0.0
    batches: int = 0
    actors: int = 0
    """Model actors of the step that loaded the model."""
    nodes: list[str] = field(default_factory=list)
    first_batch_at: float = 0.0
    first_batch_rows: int = 0
    last_batch_at: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows per second of worker time (one worker's throughput)."""
        return self.rows / self.busy_seconds if self.busy_seconds else 0.0

    @property
    def steady_rows_per_second(self) -> float:
        """The step's rows/s from its first finished batch to its last (start-up and model loading left out)."""
        span = self.last_batch_at - self.first_batch_at
        return (self.rows - self.first_batch_rows) / span if span > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """As a JSON object (for the manifest)."""
        return asdict(self)


@dataclass
class RunSummary:
    """The whole run: shards processed, skipped and quarantined, rows in and out, row errors, wall time, steps."""

    job: str
    output_uri: str
    shards: int
    rows_in: int
    rows_out: int = 0
    row_errors: int = 0
    wall_seconds: float = 0.0
    shards_processed: int = 0
    shards_skipped: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    steps: list[StepStats] = field(default_factory=list)
    table: dict[str, Any] | None = None
    """A table output: what ``Sink.finish`` reports (the table, its position, this run's commits)."""
    units_processed: int = 0
    """Commit units this run committed (a bundle of small files, a row-group range of a big one, or a file)."""
    requests: dict[str, int] = field(default_factory=dict)
    """Object-store requests the run sent, by operation, counted where they are sent (``jobs/lake/storage.py``)."""

    @property
    def requests_per_shard(self) -> float:
        """Requests per input shard of the run (processed or skipped)."""
        return sum(self.requests.values()) / self.shards if self.shards else 0.0

    @property
    def ok(self) -> bool:
        """False when a shard was quarantined: the command then exits non-zero."""
        return not self.quarantined

    def render(self) -> str:
        """A short human-readable report."""
        rate = self.rows_out / self.wall_seconds if self.wall_seconds else 0.0
        lines = [
            f"job {self.job}: {self.shards} shard(s): {self.shards_processed} processed, {self.shards_skipped} "
            f"already done, {len(self.quarantined)} quarantined",
            f"  {self.rows_in} rows in, {self.rows_out} rows out, {self.row_errors} row(s) with errors, "
            f"{self.wall_seconds:.1f} s wall ({rate:.1f} rows/s)",
            f"output: {self.output_uri}",
        ]
        lines += [
            f"  step {s.name:<20} {s.task:<26} {s.rows:>8} rows {s.row_errors:>6} errors "
            f"{s.busy_seconds:>8.1f} s busy {s.rows_per_second:>9.1f} rows/s per worker"
            for s in self.steps
        ]
        if self.requests:
            kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.requests.items()))
            lines.append(
                f"  {sum(self.requests.values())} object-store request(s), {self.requests_per_shard:.2f} per shard, "
                f"{self.units_processed} commit unit(s): {kinds}"
            )
        if self.table:
            commits = self.table["commits"]
            lines.append(
                f"table: {self.table['table']} at {self.table['position']}: {len(commits)} commit(s) by this run, "
                f"{sum(commit['files'] for commit in commits)} file(s) and {sum(commit['rows'] for commit in commits)} "
                "row(s) registered"
            )
        if self.quarantined:
            lines.append(f"quarantined {len(self.quarantined)} shard(s):")
            lines += [f"  {path}: {reason}" for path, reason in self.quarantined]
        return "\n".join(lines)
