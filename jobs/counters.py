"""A run's counters, in one place every worker reports to.

Step figures, unreadable shards, storage requests, and the journal of batch attempts that finds the rows killing
their worker (``jobs/isolation.py``).
"""

from __future__ import annotations

import time

from lakelabel.jobs.console.summary import StepStats
from lakelabel.jobs.lake.storage import add_requests

__all__ = ["RunCounters"]


class RunCounters:
    """Counters and node ids sent by every worker, and shards found unreadable while reading; read by the driver.

    The engine keeps one per run where every worker reaches it (the Ray Data adapter: an actor on the driver's node).
    """

    def __init__(self, tasks: dict[str, str]) -> None:
        self.steps = {name: StepStats(name=name, task=task) for name, task in tasks.items()}
        self.unreadable: dict[int, str] = {}
        self.attempts: set[str] = set()
        self.deaths = 0
        self.requests: dict[str, int] = {}

    def sent(self, requests: dict[str, int]) -> None:
        """Add storage requests a worker sent."""
        add_requests(self.requests, requests)

    def requests_sent(self) -> dict[str, int]:
        """Storage requests the workers sent."""
        return self.requests

    def add(self, name: str, rows: int, errors: int, seconds: float, node: str) -> None:
        """A batch a step's actor finished."""
        step, now = self.steps[name], time.time()
        if not step.batches:
            step.first_batch_at, step.first_batch_rows = now, rows
        step.last_batch_at = now
        step.rows += rows
        step.row_errors += errors
        step.busy_seconds += seconds
        step.batches += 1
        if node not in step.nodes:
            step.nodes = sorted([*step.nodes, node])

    def actor_ready(self, name: str) -> None:
        """One more of a step's actors loaded its model."""
        self.steps[name].actors += 1

    def unreadable_shard(self, index: int, reason: str) -> None:
        """A part found unreadable while reading (the first reason kept)."""
        self.unreadable.setdefault(index, reason)

    def snapshot(self) -> tuple[list[StepStats], dict[int, str]]:
        """Step figures and unreadable parts so far."""
        return list(self.steps.values()), self.unreadable

    # The journal of batch attempts (jobs/isolation.py): it outlives the step actors that die.
    def begin(self, key: str) -> bool:
        """An attempt of ``key`` starts; True when an earlier one began and never ended (its worker died)."""
        if key in self.attempts:
            self.deaths += 1
            return True
        self.attempts.add(key)
        return False

    def end(self, key: str) -> None:
        """The attempt of ``key`` returned."""
        self.attempts.discard(key)

    def forget(self, prefix: str) -> None:
        """Drop the attempts under ``prefix`` (their batch is done)."""
        self.attempts = {key for key in self.attempts if not key.startswith(prefix)}

    def worker_deaths(self) -> int:
        """Attempts found dead so far."""
        return self.deaths
