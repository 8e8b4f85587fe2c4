"""The run's orchestration, engine-free: plan, lease, prepare, execute, quarantine, finish, manifest, summary.

``run_job`` makes the plan (shards found, footers read, operators built: no model loaded) while the engine starts,
takes the output's lease (``jobs/output/lease.py``), prepares the output (``jobs/resume.py``: the output mode, done and
pending parts), hands the pending commit units to the engine, quarantines what did not come back, ends a table
output's commit and writes the ``_SUCCESS`` manifest. The engine is the Ray Data adapter (``jobs/ray_adapter.py``,
the one module here that knows Ray), imported when a run starts.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lakelabel.jobs.console import redact
from lakelabel.jobs.console.runlog import RunLog, route_logs
from lakelabel.jobs.console.summary import RunSummary
from lakelabel.jobs.errors import JobFailedError, reason
from lakelabel.jobs.lake.storage import add_requests, request_counts, requests_since
from lakelabel.jobs.output.lease import hold
from lakelabel.jobs.output.state import OutputExistsError, RunState, quarantine
from lakelabel.jobs.plan import Plan, make_plan
from lakelabel.jobs.pools import Machine, Pool, cpu_slots, size_pools
from lakelabel.jobs.resume import prepare, write_manifest
from lakelabel.jobs.spec import JobSpec, parse_job, read_job_file

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Callable, Sequence

    from lakelabel.jobs.commits import Processed
    from lakelabel.jobs.spec import StepSpec
    from lakelabel.operators import Operator

__all__ = ["Engine", "JobFailedError", "OutputExistsError", "run_job"]

log = logging.getLogger("lakelabel")


class Engine(Protocol):
    """What a run needs of its engine; ``lakelabel.jobs.ray_adapter.RayDataEngine`` is the one lakelabel ships."""

    def start(self, min_cpus: int, *, verbose: bool) -> None:
        """Attach to, or start, the engine with at least ``min_cpus`` CPU slots."""

    def stop(self) -> None:
        """Stop what :meth:`start` started (nothing it attached to)."""

    def ensure_slots(self, slots: int, *, verbose: bool) -> None:
        """Have ``slots`` CPU slots where the engine is this run's own."""

    def machine(self) -> Machine:
        """The slots to size pools for."""

    def cpu_slots(self) -> float:
        """CPU slots the engine has."""

    def worker_logs(self) -> str:
        """Where the workers' own output goes."""

    def console(self, *, verbose: bool) -> contextlib.AbstractContextManager[None]:
        """The engine's own console output for the run."""

    def process(
        self, plan: Plan, state: RunState, pools: list[Pool], batches: list[int], *, rows: int, verbose: bool
    ) -> Processed:
        """Run the pending units through the steps and commit them."""


def _engine() -> Engine:
    from lakelabel.jobs.ray_adapter import RayDataEngine  # noqa: PLC0415 - Ray only when a run starts

    return RayDataEngine()


def run_job(
    spec: JobSpec | str | Path, *, verbose: bool = False, wait: float = 0.0, engine: Engine | None = None
) -> RunSummary:
    """Run ``spec`` (a job spec, or a job file's path) to completion and return its summary.

    Input shards are checked before any model loads. Shards already done by an earlier run of the same spec are
    skipped (``output.mode: resume``); the manifest ``_SUCCESS`` is written when every shard is committed or
    quarantined. The console gets a start line naming the run's log file, progress and warnings; the engine's and the
    models' own output goes to the log file unless ``verbose``. The run holds the output's lease throughout
    (``jobs/output/lease.py``): a second run of the output refuses, or waits up to ``wait`` seconds for it. Log
    records and the error a run ends with carry no credentials (``jobs/console/redact.py``).
    The engine starts (or is attached to) while the plan reads the shards' footers; given a job file, also while its
    steps are checked (which imports their libraries: seconds for torch and transformers). A file that is not YAML is
    refused before the engine starts. Each step's operator is built once per run (its options checked; no model).
    """
    redact.install()
    engine = engine or _engine()
    started = time.perf_counter()
    before = request_counts()  # this process's requests; workers report theirs (jobs/lake/storage.py counts them)
    # A spec's pools tell the local engine's slots before it starts; a job file's are known once its steps are checked.
    planned: Callable[[], Plan]
    slots: int | None
    if isinstance(spec, JobSpec):
        operators = [step.operator() for step in spec.steps]
        planned = functools.partial(make_plan, spec, operators=operators)
        slots = _local_slots(spec.steps, operators)
    else:
        data, base = read_job_file(spec)
        planned, slots = functools.partial(_plan_file, data, base), None
    handle, name = tempfile.mkstemp(prefix="lakelabel-start-", suffix=".log")
    os.close(handle)
    early = Path(name)
    try:
        with route_logs(early, verbose=verbose), ThreadPoolExecutor(1, thread_name_prefix="lakelabel-plan") as planner:
            planning = planner.submit(planned)
            try:
                engine.start(slots or 1, verbose=verbose)  # in this thread: Ray's start wants the main thread
            except BaseException:
                planning.cancel()
                raise
            try:
                plan = planning.result()
            except BaseException:
                engine.stop()  # a refused spec or input leaves no engine of its own behind
                raise
            if slots is None:
                engine.ensure_slots(_local_slots(plan.spec.steps, plan.operators), verbose=verbose)
        with hold(plan.layout, uri=plan.spec.output_uri, seconds=plan.spec.lease_seconds, wait=wait):
            summary, workers = _run_held(plan, engine, started, before, early, verbose=verbose)
    finally:
        early.unlink(missing_ok=True)
    # The summary's count ends here, the lease released and the log published; the manifest's ends before its write.
    summary.requests = _merged(workers, requests_since(before))
    return summary


def _plan_file(data: Any, base: Path) -> Plan:
    """The plan of a job file's YAML, with the operators its check built."""
    spec, operators = parse_job(data, base=base)
    return make_plan(spec, operators=operators)


def _merged(*counts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for more in counts:
        add_requests(total, more)
    return total


def _local_slots(steps: Sequence[StepSpec], operators: list[Operator]) -> int:
    """CPU slots a local engine needs for the steps' set pools (unset ones are sized to what it gets)."""
    return cpu_slots(size_pools(steps, operators, Machine.local(), rows=0), operators)


def _run_held(
    plan: Plan, engine: Engine, started: float, before: dict[str, int], early: Path, *, verbose: bool
) -> tuple[RunSummary, dict[str, int]]:
    spec = plan.spec
    state = prepare(plan)
    pending = {part.path for part in state.pending}
    summary = RunSummary(
        job=spec.name,
        output_uri=spec.output_uri,
        shards=len(plan.shards) + len(plan.quarantined),
        rows_in=sum(part.rows for part in state.pending),
        shards_skipped=sum(shard.path not in pending for shard in plan.shards),
        quarantined=[(item.path, item.reason) for item in plan.quarantined],
    )
    run_log = RunLog.for_run(plan.layout.fs, plan.layout.root, state.run_id, spec.name)
    Path(run_log.local).parent.mkdir(parents=True, exist_ok=True)
    with early.open("rb") as source, Path(run_log.local).open("ab") as target:
        shutil.copyfileobj(source, target)  # the engine's start-up records, logged while the plan was made
    try:
        with route_logs(run_log.local, verbose=verbose), engine.console(verbose=verbose):
            _run(plan, engine, state, summary, run_log, verbose=verbose)
            summary.table = _finish_output(plan)
            summary.wall_seconds = time.perf_counter() - started
            workers = dict(summary.requests)  # sent by read, staging and commit tasks
            summary.requests = _merged(workers, requests_since(before))
            write_manifest(plan, state, summary, table=summary.table)
    finally:
        run_log.publish()
    return summary, workers


def _finish_output(plan: Plan) -> dict[str, Any] | None:
    """End the output's run: a table output registers the committed shard files it lacks."""
    try:
        return plan.sink.finish()
    except Exception as exc:
        raise JobFailedError(
            f"{plan.sink.label}: table commit failed ({reason(exc)}); "
            "the shard files are committed and the next run registers them",
            job=plan.spec.name,
        ) from exc


def _run(plan: Plan, engine: Engine, state: RunState, summary: RunSummary, run_log: RunLog, *, verbose: bool) -> None:
    console = {"console": True}
    pending = len({part.path for part in state.pending})
    skipped = summary.shards_skipped
    to_do = f"{pending} shard(s) to process" + (f", {skipped} already done" if skipped else "")
    if len(state.units) != len(state.pending) or pending != len(state.pending):
        to_do += f" in {len(state.units)} commit unit(s)"
    if not state.pending:
        log.info("job %s run %s: %s; log: %s", plan.spec.name, state.run_id, to_do, run_log.shown, extra=console)
        return
    pools = plan.pools(engine.machine(), rows=summary.rows_in)
    batches = plan.batch_sizes(pools, rows=[unit.rows for unit in state.units])
    needed = plan.cpu_slots(pools)
    log.info("job %s run %s: %s (%d rows); log: %s; Ray's worker logs: %s", plan.spec.name, state.run_id,
             to_do, summary.rows_in, run_log.shown, engine.worker_logs(), extra=console)  # fmt: skip
    available = engine.cpu_slots()
    if available < needed:
        log.warning(
            "the Ray cluster has %g CPU slot(s); this job's actor pools and read/write tasks need %d",
            available,
            needed,
        )
    for step, pool, batch in zip(plan.spec.steps, pools, batches, strict=True):
        log.info("step %s: %s actor(s) with %g CPU(s) and %g GPU(s) each, %d rows per batch: %s", step.output,
                 pool.range, pool.cpus, pool.gpus, batch, pool.reason)  # fmt: skip
    processed = engine.process(plan, state, pools, batches, rows=summary.rows_in, verbose=verbose)
    add_requests(summary.requests, processed.requests)
    for path, why in processed.left_out().items():
        quarantine(plan.layout, path, why)
        summary.quarantined.append((path, why))
    summary.steps.extend(processed.steps)
    summary.units_processed = len(processed.commits.committed)
    records = processed.committed()
    plan.layout.remove(plan.layout.staging_root, recursive=True)  # what is left belongs to no shard
    summary.shards_processed = len({record.input for record in records})
    summary.rows_out = sum(record.rows_out for record in records)
    summary.row_errors = sum(record.row_errors for record in records)
