"""The driver's side of the commit loop, engine-free: which parts are back, which units to commit, what committed.

The engine streams the last stage's batches into :meth:`UnitCommits.staged` and runs the commits it is handed
through a :class:`CommitRunner` (the Ray Data adapter runs each as a small Ray task; a test runs them inline).
A unit is committed once all of its parts' rows are staged (``lakelabel.jobs.output.commit``); a bundle whose
other files are all back is committed without its unreadable ones.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lakelabel.jobs.lake.storage import add_requests, request_counts, requests_since
from lakelabel.jobs.output.commit import Coverage, Units, commit_unit
from lakelabel.jobs.records import ShardRecord

if TYPE_CHECKING:
    import pyarrow as pa

    from lakelabel.jobs.console.summary import StepStats
    from lakelabel.jobs.lake.units import Part
    from lakelabel.jobs.output.layout import Layout
    from lakelabel.jobs.output.state import RunState
    from lakelabel.jobs.plan import Plan

__all__ = ["CommitRunner", "Processed", "UnitCommits", "commit_task"]

log = logging.getLogger("lakelabel")

COMMITS_IN_FLIGHT = 4
"""Unit commits running at a time: each is a worker process."""


def commit_task(
    layout: Layout, units: Units, unit: int, skip: frozenset[int], first_rows: dict[int, float]
) -> tuple[list[ShardRecord], dict[str, int]]:
    """One unit's commit, as a task runs it: its records, and the storage requests it sent."""
    before = request_counts()
    records = commit_unit(layout, units, unit, skip=skip, first_rows=first_rows)
    return records, requests_since(before)


class CommitRunner(Protocol):
    """How an engine runs :func:`commit_task` for the loop."""

    def share(self, units: Units) -> Any:
        """``units`` as the engine ships it to every commit once (Ray: an object reference)."""

    def submit(self, layout: Layout, units: Any, unit: int, skip: frozenset[int], first: dict[int, float]) -> Any:
        """Start :func:`commit_task` on a shared ``units``; returns a handle."""

    def done(self, handles: list[Any], *, block: bool) -> list[tuple[Any, Any]]:
        """Finished handles with their results: at least one when ``block``, else those finished now."""


class UnitCommits:
    """Which parts are back, which units to commit, what was committed; commits run through ``runner``."""

    def __init__(self, plan: Plan, state: RunState, parts: list[Part], runner: CommitRunner) -> None:
        self.layout = plan.layout
        self.sink = plan.sink
        self.runner = runner
        self.records = [
            ShardRecord(
                key=part.key,
                input=part.path,
                input_bytes=part.shard.bytes,
                spec_hash=state.spec_hash,
                run_id=state.run_id,
                rows_in=part.rows,
                row_groups=None if part.whole else [part.first_group or 0, part.end_group or 0],
                first_row=part.first_row,
            )
            for part in parts
        ]
        self.table = Units.of(state.units, self.records, [plan.output_columns(part.shard) for part in parts])
        self.shared = runner.share(self.table)
        self.unit_of = self.table.unit_of()
        self.coverage = Coverage({index: part.rows for index, part in enumerate(parts)})
        self.waiting = [sum(1 for index in members if self.records[index].rows_in) for members in self.table.members]
        self.started: set[int] = set()
        self.committed: set[int] = set()
        self.parts_done = 0
        self.commits: dict[Any, int] = {}
        self.queued: deque[tuple[int, frozenset[int]]] = deque()
        self.requests: dict[str, int] = {}
        for unit, left in enumerate(self.waiting):
            if not left:  # nothing but empty files
                self.start(unit)

    def start(self, unit: int, skip: frozenset[int] = frozenset()) -> None:
        """Queue ``unit``'s commit, leaving out the parts in ``skip``."""
        self.started.add(unit)
        self.queued.append((unit, skip))
        self.launch()

    def launch(self) -> None:
        """Start queued commits, a bounded number at a time."""
        while self.queued and len(self.commits) < COMMITS_IN_FLIGHT:
            unit, skip = self.queued.popleft()
            seen = self.coverage.first_seen
            first = {index: seen[index] for index in self.table.members[unit] if index in seen}
            self.commits[self.runner.submit(self.layout, self.shared, unit, skip, first)] = unit

    def finished(self, unit: int, done: list[ShardRecord]) -> None:
        """Take in ``unit``'s committed records (a unit committed twice, by a retried task, counts once)."""
        if unit in self.committed:
            return  # the same files, written whole both times
        self.committed.add(unit)
        by_key = {record.key: record for record in done}
        for index in self.table.members[unit]:
            if self.records[index].key in by_key:
                self.records[index] = by_key[self.records[index].key]
                self.sink.shard_committed(self.records[index])  # a table output commits in batches of shards
        self.parts_done += len(done)
        bundle = f" (unit {self.table.keys[unit]})" if len(done) > 1 else ""
        for record in done:
            log.info("shard %s committed: %d rows, %d row error(s) (%d/%d)%s", record.key, record.rows_out,
                     record.row_errors, self.parts_done, len(self.records), bundle)  # fmt: skip

    def collect(self, *, wait: bool) -> None:
        """Take in finished commits (waiting for one when ``wait``), then start queued ones."""
        if not self.commits:
            return
        for handle, (written, sent) in self.runner.done(list(self.commits), block=wait):
            unit = self.commits.pop(handle)
            add_requests(self.requests, sent)
            self.finished(unit, written)
        self.launch()

    def staged(self, batch: pa.Table) -> None:
        """Take in what a staging task did: units it committed, ranges it staged."""
        whole = batch.filter(batch.column("committed").is_valid())
        for part, payload in zip(whole.column("part").to_pylist(), whole.column("committed").to_pylist(), strict=True):
            self.finished(int(self.unit_of[part]), [ShardRecord(**raw) for raw in json.loads(payload)])
        for part in self.coverage.add(batch.filter(batch.column("committed").is_null())):
            unit = int(self.unit_of[part])
            self.waiting[unit] -= 1
            if not self.waiting[unit] and unit not in self.committed and unit not in self.started:
                self.start(unit)
        self.collect(wait=False)

    def without(self, unreadable: dict[int, str]) -> None:
        """Commit each bundle whose other files are all back without its unreadable ones."""
        for unit, members in enumerate(self.table.members):
            bad = frozenset(index for index in members if index in unreadable)
            rest = [index for index in members if index not in bad and self.records[index].rows_in]
            if bad and unit not in self.started and len(bad) < len(members) and all(map(self.coverage.covered, rest)):
                self.start(unit, bad)

    def drain(self, unreadable: dict[int, str]) -> None:
        """After the last batch: commit bundles without their unreadable files, then wait for every commit."""
        self.without(unreadable)
        while self.commits:
            self.collect(wait=True)


@dataclass
class Processed:
    """What an engine hands back once the pending units went through the steps."""

    parts: list[Part]
    commits: UnitCommits
    steps: list[StepStats]
    unreadable: dict[int, str]
    """Parts (by index) found unreadable while reading, and why."""
    requests: dict[str, int] = field(default_factory=dict)
    """Storage requests the workers sent (reads, staging, commits)."""

    def left_out(self) -> dict[str, str]:
        """Input files with a part that did not commit, and why."""
        reasons: dict[str, str] = {}
        for index, reason in self.unreadable.items():
            reasons.setdefault(self.parts[index].path, reason)
        for index, part in enumerate(self.parts):
            if not self.commits.records[index].committed_at and part.path not in reasons:
                groups = f"row(s) of row groups {part.first_group}..{(part.end_group or 1) - 1}"
                what = "row(s)" if part.whole else groups
                staged = self.commits.coverage.staged_rows(index)
                reasons[part.path] = f"{staged} of {part.rows} {what} came back from the pipeline"
        return reasons

    def committed(self) -> list[ShardRecord]:
        """The records of the parts that committed."""
        return [record for record in self.commits.records if record.committed_at]
