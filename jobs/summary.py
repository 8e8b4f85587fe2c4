"""Counters and timings of a run, reported once at the end."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StepStats:
    """What one step did, summed over its workers."""

    name: str
    task: str
    rows: int = 0
    row_errors: int = 0
    busy_seconds: float = 0.0
    batches: int = 0

    @property
    def rows_per_second(self) -> float:
        """Rows per second of worker time (one worker's throughput)."""
        return self.rows / self.busy_seconds if self.busy_seconds else 0.0


@dataclass
class RunSummary:
    """The whole run: shards, rows in and out, rows with errors, wall time and each step's throughput."""

    job: str
    output_uri: str
    shards: int
    rows_in: int
    rows_out: int = 0
    row_errors: int = 0
    wall_seconds: float = 0.0
    steps: list[StepStats] = field(default_factory=list)

    def render(self) -> str:
        """A short human-readable report."""
        rate = self.rows_out / self.wall_seconds if self.wall_seconds else 0.0
        lines = [
            f"job {self.job}: {self.shards} shard(s), {self.rows_in} rows in, {self.rows_out} rows out, "
            f"{self.row_errors} row(s) with errors, {self.wall_seconds:.1f} s wall ({rate:.1f} rows/s)",
            f"output: {self.output_uri}",
        ]
        lines += [
            f"  step {s.name:<20} {s.task:<26} {s.rows:>8} rows {s.row_errors:>6} errors "
            f"{s.busy_seconds:>8.1f} s busy {s.rows_per_second:>9.1f} rows/s per worker"
            for s in self.steps
        ]
        return "\n".join(lines)
