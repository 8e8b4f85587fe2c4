"""The runner: the one module that knows Ray. It turns a job spec into a Ray Data streaming pipeline.

read (one Ray read task per pending commit unit: a bundle of small files, a row-group range of a big one, or a
file; rows tagged with their part and row number) -> one actor-pool ``map_batches`` per step (plus a CPU-only one
ahead of it for media decoding) -> a staging stage that commits each unit a batch holds whole and stages pieces of
the others. The driver follows the staged row ranges and, as each unit's rows are all in, commits it in a small Ray
task (one atomic write per part's Parquet file, then the unit's record object). See ``jobs/lake/units.py``,
``jobs/output/commit.py`` and ``jobs/output/state.py`` for the units, the exactly-once and the resume rules. Each step's
operator is shipped to its actors as a cheap config and loads its model once per actor.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if not os.environ.get("RAY_ADDRESS"):
    # A Ray that lakelabel starts itself serves this machine only: bind it to loopback, not the host's address.
    # Read by Ray at import time; a cluster (RAY_ADDRESS) is unaffected.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray
from ray.data import ActorPoolStrategy, Datasource, ReadTask, TaskPoolStrategy
from ray.data.block import BlockMetadata
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from typing_extensions import override

from lakelabel.jobs.blocks import batch_rows
from lakelabel.jobs.console import redact
from lakelabel.jobs.console.progress import ProgressDisplay, Snapshot
from lakelabel.jobs.console.runlog import RunLog, quiet_worker, route_logs
from lakelabel.jobs.console.summary import RunSummary, StepStats
from lakelabel.jobs.isolation import died, died_preparing, run_isolating
from lakelabel.jobs.lake.reading import read_unit
from lakelabel.jobs.lake.shards import ShardError
from lakelabel.jobs.lake.storage import StorageError, add_requests, request_counts, requests_since
from lakelabel.jobs.output.commit import (
    CommitError,
    Coverage,
    RowErrorStopError,
    ShardRecord,
    Units,
    commit_unit,
    first_row_error,
    row_errors,
    stage,
)
from lakelabel.jobs.output.lease import hold
from lakelabel.jobs.output.state import OutputExistsError, RunState, quarantine
from lakelabel.jobs.plan import Plan, make_plan
from lakelabel.jobs.pools import IO_SLOTS, Machine, Pool, cpu_slots, size_pools
from lakelabel.jobs.resume import prepare, write_manifest
from lakelabel.jobs.spec import JobSpec, StepSpec, parse_spec, read_job_file
from lakelabel.operators import Operator
from lakelabel.operators.core.base import use_cpus

if TYPE_CHECKING:
    import fsspec

    from lakelabel.jobs.lake.units import Part, Unit
    from lakelabel.jobs.output.layout import Layout
    from lakelabel.operators.core.base import Preparer

__all__ = ["JobFailedError", "OutputExistsError", "cluster_machine", "connect", "run_job"]

log = logging.getLogger("lakelabel")


class JobFailedError(RuntimeError):
    """The run stopped (``on_error: raise``, or a failure Ray could not retry); committed shards stay valid."""

    def __init__(self, message: str, *, job: str) -> None:
        super().__init__(message)
        self.job = job


_STOPS = (ShardError, RowErrorStopError, CommitError, StorageError)


def _reason(exc: BaseException) -> str:
    """The message of the lakelabel error inside Ray's wrappers, else the outermost message."""
    seen = exc
    for _ in range(10):
        if isinstance(seen, _STOPS):
            cause = getattr(seen, "cause", None)  # Ray's wrapper prints the remote traceback; the cause does not
            return str(cause if isinstance(cause, _STOPS) else seen)
        nested = getattr(seen, "cause", None) or seen.__cause__ or seen.__context__
        if not isinstance(nested, BaseException):
            break
        seen = nested
    return f"{type(exc).__name__}: {exc}"


_IO_CPUS = 0.25  # reads and staging wait on storage, not on a core: four share one CPU slot
_BLOCK_BYTES = 32 << 20  # target in-memory size of a read block


@ray.remote(num_cpus=0)
class _Collector:
    """Counters and node ids sent by every worker, and shards found unreadable while reading; read by the driver."""

    def __init__(self, tasks: dict[str, str]) -> None:
        self.steps = {name: StepStats(name=name, task=task) for name, task in tasks.items()}
        self.unreadable: dict[int, str] = {}
        self.attempts: set[str] = set()
        self.deaths = 0
        self.requests: dict[str, int] = {}

    def sent(self, requests: dict[str, int]) -> None:
        add_requests(self.requests, requests)

    def requests_sent(self) -> dict[str, int]:
        return self.requests

    def add(self, name: str, rows: int, errors: int, seconds: float, node: str) -> None:
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
        self.steps[name].actors += 1

    def unreadable_shard(self, index: int, reason: str) -> None:
        self.unreadable.setdefault(index, reason)

    def snapshot(self) -> tuple[list[StepStats], dict[int, str]]:
        return list(self.steps.values()), self.unreadable

    # The journal of batch attempts (jobs/isolation.py): it outlives the step actors that die.
    def begin(self, key: str) -> bool:
        if key in self.attempts:
            self.deaths += 1
            return True
        self.attempts.add(key)
        return False

    def end(self, key: str) -> None:
        self.attempts.discard(key)

    def forget(self, prefix: str) -> None:
        self.attempts = {key for key in self.attempts if not key.startswith(prefix)}

    def worker_deaths(self) -> int:
        return self.deaths


class _Journal:
    """The collector's journal, called synchronously from a worker (an entry must land before the batch runs)."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def begin(self, key: str) -> bool:
        return ray.get(self.collector.begin.remote(key))

    def end(self, key: str) -> None:
        ray.get(self.collector.end.remote(key))

    def forget(self, prefix: str) -> None:
        ray.get(self.collector.forget.remote(prefix))


class _StepWorker:
    """A Ray Data actor around one operator: the model is loaded once, in ``__init__``."""

    def __init__(self, operator: Operator, collector: Any, *, verbose: bool) -> None:
        quiet_worker(verbose=verbose)
        self.operator = operator
        self.collector = collector
        use_cpus(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
        self.operator.setup()
        ray.get(collector.actor_ready.remote(operator.config.output))

    def __call__(self, batch: pa.Table) -> pa.Table:
        start = time.perf_counter()
        name = self.operator.config.output
        on_death = functools.partial(died, step=name, output_type=self.operator.output_type())
        result = run_isolating(batch, self.operator, _Journal(self.collector), stage=f"model {name}", on_death=on_death)
        elapsed = time.perf_counter() - start
        node = ray.get_runtime_context().get_node_id()
        ray.get(self.collector.add.remote(name, batch.num_rows, row_errors(result, name), elapsed, node))
        return result


class _PrepareWorker:
    """A CPU-only Ray Data actor that decodes a step's media ahead of its model stage."""

    def __init__(self, preparer: Preparer, collector: Any, *, verbose: bool) -> None:
        quiet_worker(verbose=verbose)
        self.preparer = preparer
        self.collector = collector
        self.preparer.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        name = self.preparer.config.output
        return run_isolating(batch, self.preparer, _Journal(self.collector), stage=f"prepare {name}",
                             on_death=functools.partial(died_preparing, step=name))  # fmt: skip


def _report_requests(collector: Any, before: dict[str, int]) -> None:
    sent = requests_since(before)
    if sent:
        ray.get(collector.sent.remote(sent))


def _read(
    fs: fsspec.AbstractFileSystem,
    parts: list[tuple[int, Part]],
    columns: list[str] | None,
    collector: Any,
    *,
    strict: bool,
) -> Any:
    """A read task's body: one unit's blocks; an unreadable part raises (strict) or is reported and left out."""
    shard_rows = sum(part.shard.rows for _, part in parts)
    shard_bytes = sum(part.shard.bytes for _, part in parts)
    rows = max(64, min(8192, _BLOCK_BYTES * max(shard_rows, 1) // max(shard_bytes * 4, 1)))

    def unreadable(index: int, exc: Exception) -> None:
        path = dict(parts)[index].path
        if strict:
            raise ShardError(f"{path}: unreadable Parquet data: {exc}") from None
        ray.get(collector.unreadable_shard.remote(index, f"unreadable Parquet data: {exc}"))

    before = request_counts()
    try:
        yield from read_unit(fs, parts, columns, rows, unreadable)
    finally:
        _report_requests(collector, before)


class _UnitSource(Datasource):
    """One read task per commit unit; rows carry their part's index and their row number in it."""

    def __init__(self, plan: Plan, units: list[Unit], collector: Any) -> None:
        super().__init__()
        self.fs = plan.input_fs
        self.units = units
        self.columns = list(plan.spec.input_columns) if plan.spec.input_columns else None
        self.collector = collector
        self.strict = plan.spec.on_error == "raise"

    @override
    def estimate_inmemory_data_size(self) -> int:
        return sum(unit.bytes for unit in self.units) * 4

    @override
    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        tasks, index = [], 0
        for unit in self.units:
            parts = list(enumerate(unit.parts, start=index))
            index += len(parts)
            read = functools.partial(_read, self.fs, parts, self.columns, self.collector, strict=self.strict)
            paths = tuple(dict.fromkeys(part.path for part in unit.parts))
            metadata = BlockMetadata(num_rows=unit.rows, size_bytes=unit.bytes * 4, exec_stats=None, input_files=paths)
            tasks.append(ReadTask(read, metadata))
        return tasks


def _stage(
    batch: pa.Table, layout: Layout, units: Units, paths: list[str], collector: Any, *, strict: bool
) -> pa.Table:
    if strict and (error := first_row_error(batch, paths)):
        raise RowErrorStopError(f"on_error: raise: {error}")
    before = request_counts()
    try:
        return stage(batch, layout, units)
    finally:
        _report_requests(collector, before)


def connect(min_cpus: int = 1, *, verbose: bool = False) -> None:
    """Attach to ``RAY_ADDRESS`` when set (or to a Ray already initialised); else start a local Ray.

    Without ``RAY_ADDRESS`` a fresh local instance is started even if a cluster runs on this machine
    (``RAY_ADDRESS=auto`` attaches to that one), so a stale cluster record never captures a job. Workers' output
    reaches this console only when ``verbose``; otherwise it stays in Ray's session logs (:func:`worker_logs`).
    """
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        log.info("attaching to the Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=verbose)
        return
    cpus = max((os.cpu_count() or 1) + IO_SLOTS, min_cpus)
    log.info("starting a local Ray with %d CPU slot(s)", cpus)
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=verbose)


def cluster_machine() -> Machine:
    """The connected Ray's CPU and GPU slots, for sizing the steps' pools (``jobs/pools.py``); connects if needed.

    A Ray of this machine alone counts at most one slot per core plus ``IO_SLOTS``, however many slots it was
    started with: more single-threaded actors than cores would only take turns on them.
    """
    connect()
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    address = os.environ.get("RAY_ADDRESS")
    nodes = [node["NodeID"] for node in ray.nodes() if node.get("Alive")]
    label = f"the Ray cluster at {address}" if address else "the local Ray"
    label += f": {cpus:g} CPU slot(s)" + (f", {gpus:g} GPU(s)" if gpus else "") + f" on {len(nodes)} node(s)"
    cores = (os.cpu_count() or 1) + IO_SLOTS
    if nodes == [ray.get_runtime_context().get_node_id()] and cpus > cores:
        label += f", counted as {cores} (this machine's {cores - IO_SLOTS} cores + {IO_SLOTS} for I/O)"
        cpus = cores
    return Machine(cpus=cpus, gpus=gpus, label=label)


def _sized(plan: Plan, rows: int) -> list[Pool]:
    """Each step's pool on the connected cluster, for the ``rows`` this run processes."""
    return plan.pools(cluster_machine(), rows=rows)


def worker_logs() -> str:
    """Where this Ray session keeps its workers' output (on each node, for a cluster)."""
    node = ray._private.worker._global_node  # Ray Data finds its own log directory the same way
    if node is not None:
        return f"{node.get_session_dir_path()}/logs"
    return f"<Ray temp dir>/{ray.get_runtime_context().get_session_name()}/logs"


@contextmanager
def _ray_data_console(*, verbose: bool) -> Iterator[None]:
    """Ray Data's progress bars only when verbose; otherwise its logged progress (non-terminal) goes to the log file."""
    context = ray.data.DataContext.get_current()
    previous = context.enable_progress_bars
    if not verbose:
        context.enable_progress_bars = not sys.stdout.isatty()  # a terminal would get tqdm bars, not log records
    try:
        yield
    finally:
        context.enable_progress_bars = previous


def _pipeline(
    plan: Plan, units: list[Unit], table: Units, pools: list[Pool], collector: Any, *, verbose: bool
) -> ray.data.Dataset:
    spec = plan.spec
    # Reads and staging run a bounded number of tasks at a time, like the model pools: memory stays flat
    # however many shards the job has.
    io_tasks = max(2, *(pool.high for pool in pools))
    rows = [unit.rows for unit in units]
    reads = max(1, min(io_tasks, len(units)))  # one read task per commit unit
    dataset = ray.data.read_datasource(_UnitSource(plan, units, collector), num_cpus=_IO_CPUS, concurrency=reads)
    batch = 1
    for step, operator, pool in zip(spec.steps, plan.operators, pools, strict=True):
        low, high = pool.low, pool.high
        batch = batch_rows(step, operator, rows, actors=high)
        preparer = operator.preparer()
        if preparer is not None:
            dataset = dataset.map_batches(
                _PrepareWorker,
                fn_constructor_kwargs={"preparer": preparer, "collector": collector, "verbose": verbose},
                batch_format="pyarrow",
                batch_size=batch,
                compute=ActorPoolStrategy(min_size=1, max_size=high),
                num_cpus=preparer.resources().num_cpus,
                num_gpus=0,
            )
        gpus = pool.gpus
        # A CPU actor computes for seconds per batch: a second batch queued on it would wait while another actor
        # idles. A GPU actor keeps Ray's prefetch, so its next batch is there when the current one ends.
        in_flight = None if gpus else 1
        dataset = dataset.map_batches(
            _StepWorker,
            fn_constructor_kwargs={"operator": operator, "collector": collector, "verbose": verbose},
            batch_format="pyarrow",
            batch_size=batch,
            compute=ActorPoolStrategy(min_size=low, max_size=high, max_tasks_in_flight_per_actor=in_flight),
            num_cpus=pool.cpus,
            num_gpus=gpus,
        )
    layout = plan.layout
    stages = max(1, min(io_tasks, math.ceil(sum(rows) / batch)))  # the last step's batches are staging's blocks
    return dataset.map_batches(
        _stage,
        fn_kwargs={
            "layout": layout,
            "units": table,
            "paths": [record.input for record in table.records],
            "collector": collector,
            "strict": spec.on_error == "raise",
        },
        batch_format="pyarrow",
        batch_size=None,  # each block as it comes: a unit commits as soon as its last rows are back
        num_cpus=_IO_CPUS,
        compute=TaskPoolStrategy(size=stages),
    )


def _commit_task(
    layout: Layout, units: Units, unit: int, skip: frozenset[int], first_rows: dict[int, float]
) -> tuple[list[ShardRecord], dict[str, int]]:
    before = request_counts()
    records = commit_unit(layout, units, unit, skip=skip, first_rows=first_rows)
    return records, requests_since(before)


_commit = ray.remote(num_cpus=0, max_retries=3)(_commit_task)
_COMMITS_IN_FLIGHT = 4


class _UnitCommits:
    """The driver's side of the commit loop: which parts are back, which units to commit, what was committed."""

    def __init__(self, plan: Plan, state: RunState, parts: list[Part]) -> None:
        self.layout = plan.layout
        self.sink = plan.sink
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
        self.shared = ray.put(self.table)
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
        self.started.add(unit)
        self.queued.append((unit, skip))
        self.launch()

    def launch(self) -> None:  # a bounded number of commits at a time: each is a worker process
        while self.queued and len(self.commits) < _COMMITS_IN_FLIGHT:
            unit, skip = self.queued.popleft()
            seen = self.coverage.first_seen
            first = {index: seen[index] for index in self.table.members[unit] if index in seen}
            self.commits[_commit.remote(self.layout, self.shared, unit, skip, first)] = unit

    def finished(self, unit: int, done: list[ShardRecord]) -> None:
        if unit in self.committed:
            return  # committed twice (a retried task): the same files, written whole both times
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
        if not self.commits:
            return
        refs = list(self.commits)
        done, _ = ray.wait(refs, num_returns=1 if wait else len(refs), timeout=None if wait else 0)
        for ref in done:
            unit = self.commits.pop(ref)
            written, sent = ray.get(ref)
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


def _process(
    plan: Plan, state: RunState, summary: RunSummary, pools: list[Pool], *, verbose: bool
) -> list[ShardRecord]:
    """Stream the pending units through the steps, committing each unit as its rows come back."""
    layout = plan.layout
    parts = [part for unit in state.units for part in unit.parts]
    # Pinned to the driver's node: losing a worker node must not take the counters with it.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    tasks = {step.output: step.task for step in plan.spec.steps}
    collector = _Collector.options(scheduling_strategy=here).remote(tasks)
    loop = _UnitCommits(plan, state, parts)
    begun = time.perf_counter()

    def poll() -> Snapshot:
        steps, _ = ray.get(collector.snapshot.remote())
        done = loop.parts_done
        return Snapshot(time.perf_counter() - begun, steps, summary.rows_in, done, len(parts))

    try:
        with ProgressDisplay(poll, verbose=verbose):
            for batch in _pipeline(plan, state.units, loop.table, pools, collector, verbose=verbose).iter_batches(
                batch_format="pyarrow", batch_size=None
            ):
                loop.staged(batch)
            loop.without(ray.get(collector.snapshot.remote())[1])
            while loop.commits:
                loop.collect(wait=True)
    except Exception as exc:
        raise JobFailedError(redact.redact(_reason(exc)), job=plan.spec.name) from exc
    steps, unreadable = ray.get(collector.snapshot.remote())
    add_requests(summary.requests, loop.requests)
    add_requests(summary.requests, ray.get(collector.requests_sent.remote()))
    left_out: dict[str, str] = {}
    for index, reason in unreadable.items():
        left_out.setdefault(parts[index].path, reason)
    for index, part in enumerate(parts):
        if not loop.records[index].committed_at and part.path not in left_out:
            what = "row(s)" if part.whole else f"row(s) of row groups {part.first_group}..{(part.end_group or 1) - 1}"
            left_out[part.path] = (
                f"{loop.coverage.staged_rows(index)} of {part.rows} {what} came back from the pipeline"
            )
    for path, reason in left_out.items():
        quarantine(layout, path, reason)
        summary.quarantined.append((path, reason))
    summary.steps.extend(steps)
    summary.units_processed = len(loop.committed)
    return [record for record in loop.records if record.committed_at]


def run_job(spec: JobSpec | str | Path, *, verbose: bool = False, wait: float = 0.0) -> RunSummary:
    """Run ``spec`` (a job spec, or a job file's path) to completion and return its summary.

    Input shards are checked before any model loads. Shards already done by an earlier run of the same spec are
    skipped (``output.mode: resume``); the manifest ``_SUCCESS`` is written when every shard is committed or
    quarantined. The console gets a start line naming the run's log file, progress and warnings; Ray's and the
    models' own output goes to the log file unless ``verbose``. The run holds the output's lease throughout
    (``jobs/output/lease.py``): a second run of the output refuses, or waits up to ``wait`` seconds for it. Log
    records and the error a run ends with carry no credentials (``jobs/console/redact.py``).
    Ray starts (or is attached to) while the plan reads the shards' footers; given a job file, also while its steps
    are checked (which imports their libraries: seconds for torch and transformers). A file that is not YAML is
    refused before Ray starts.
    """
    redact.install()
    started = time.perf_counter()
    before = request_counts()  # this process's requests; workers report theirs (jobs/lake/storage.py counts them)
    # A spec's pools tell the local Ray's slots before it starts; a job file's are known once its steps are checked.
    load: Callable[[], JobSpec]
    slots: int | None
    if isinstance(spec, JobSpec):
        load = functools.partial(_given, spec)
        slots = _local_slots(spec.steps, [step.operator() for step in spec.steps])
    else:
        data, base = read_job_file(spec)
        load, slots = functools.partial(parse_spec, data, base=base), None
    handle, name = tempfile.mkstemp(prefix="lakelabel-start-", suffix=".log")
    os.close(handle)
    early = Path(name)
    try:
        with route_logs(early, verbose=verbose), ThreadPoolExecutor(1, thread_name_prefix="lakelabel-plan") as planner:
            planning = planner.submit(lambda: make_plan(load()))
            ours = not ray.is_initialized()
            try:
                connect(min_cpus=slots or 1, verbose=verbose)  # in this thread: Ray's start wants the main thread
            except BaseException:
                planning.cancel()
                raise
            try:
                plan = planning.result()
            except BaseException:
                if ours:  # a refused spec or input leaves no Ray of its own behind
                    ray.shutdown()
                raise
            if slots is None and ours:
                _reconnect_if_short(_local_slots(plan.spec.steps, plan.operators), verbose=verbose)
        with hold(plan.layout, uri=plan.spec.output_uri, seconds=plan.spec.lease_seconds, wait=wait):
            summary, workers = _run_held(plan, started, before, early, verbose=verbose)
    finally:
        early.unlink(missing_ok=True)
    # The summary's count ends here, the lease released and the log published; the manifest's ends before its write.
    summary.requests = _merged(workers, requests_since(before))
    return summary


def _merged(*counts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for more in counts:
        add_requests(total, more)
    return total


def _given(spec: JobSpec) -> JobSpec:
    return spec


def _local_slots(steps: Sequence[StepSpec], operators: list[Operator]) -> int:
    """CPU slots a local Ray needs for the steps' set pools (unset ones are sized to what it gets)."""
    return cpu_slots(size_pools(steps, operators, Machine.local(), rows=0), operators)


def _reconnect_if_short(slots: int, *, verbose: bool) -> None:
    """Restart the local Ray this run started with fewer CPU slots than the job's set pools need (a cluster stays)."""
    if os.environ.get("RAY_ADDRESS") or ray.cluster_resources().get("CPU", 0) >= slots:
        return
    log.info("restarting the local Ray with %d CPU slot(s) for the steps' concurrency", slots)
    ray.shutdown()
    connect(min_cpus=slots, verbose=verbose)


def _run_held(
    plan: Plan, started: float, before: dict[str, int], early: Path, *, verbose: bool
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
        shutil.copyfileobj(source, target)  # Ray's start-up records, logged while the plan was made
    try:
        with route_logs(run_log.local, verbose=verbose), _ray_data_console(verbose=verbose):
            _run(plan, state, summary, run_log, verbose=verbose)
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
            f"{plan.sink.label}: table commit failed ({_reason(exc)}); "
            "the shard files are committed and the next run registers them",
            job=plan.spec.name,
        ) from exc


def _run(plan: Plan, state: RunState, summary: RunSummary, run_log: RunLog, *, verbose: bool) -> None:
    console = {"console": True}
    pending = len({part.path for part in state.pending})
    skipped = summary.shards_skipped
    to_do = f"{pending} shard(s) to process" + (f", {skipped} already done" if skipped else "")
    if len(state.units) != len(state.pending) or pending != len(state.pending):
        to_do += f" in {len(state.units)} commit unit(s)"
    if not state.pending:
        log.info("job %s run %s: %s; log: %s", plan.spec.name, state.run_id, to_do, run_log.shown, extra=console)
        return
    pools = _sized(plan, summary.rows_in)  # run_job connected while the plan was made
    needed = plan.cpu_slots(pools)
    log.info("job %s run %s: %s (%d rows); log: %s; Ray's worker logs: %s", plan.spec.name, state.run_id,
             to_do, summary.rows_in, run_log.shown, worker_logs(), extra=console)  # fmt: skip
    available = ray.cluster_resources().get("CPU", 0)
    if available < needed:
        log.warning(
            "the Ray cluster has %g CPU slot(s); this job's actor pools and read/write tasks need %d",
            available,
            needed,
        )
    for step, pool in zip(plan.spec.steps, pools, strict=True):
        log.info("step %s: %s actor(s) with %g CPU(s) and %g GPU(s) each: %s", step.output, pool.range, pool.cpus,
                 pool.gpus, pool.reason)  # fmt: skip
    records = _process(plan, state, summary, pools, verbose=verbose)
    plan.layout.remove(plan.layout.staging_root, recursive=True)  # what is left belongs to no shard
    summary.shards_processed = len({record.input for record in records})
    summary.rows_out = sum(record.rows_out for record in records)
    summary.row_errors = sum(record.row_errors for record in records)
