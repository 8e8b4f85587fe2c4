"""The Ray Data adapter: the one module that knows Ray (with the job-submission client, ``jobs/submit.py``).

It turns a plan into a Ray Data streaming pipeline and runs it for the engine-free orchestration in
``jobs/runner.py``: read (one read task per pending commit unit: a bundle of small files, a row-group range of a big
one, or a file; rows tagged with their part and row number) -> one actor-pool ``map_batches`` per step (plus a
CPU-only one ahead of it for media decoding) -> a staging stage that commits each unit a batch holds whole and stages
pieces of the others. The driver follows the staged row ranges (``jobs/commits.py``) and, as each unit's rows are
all in, commits it in a small Ray task. Each step's operator is shipped to its actors as a cheap config and loads its
model once per actor, before the actor counts as ready.

:func:`annotate` puts the same actor pool into a user's own ``ray.data.Dataset``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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

from lakelabel.jobs.commits import Processed, UnitCommits, commit_task
from lakelabel.jobs.console import redact
from lakelabel.jobs.console.progress import ProgressDisplay, Snapshot
from lakelabel.jobs.console.runlog import quiet_worker
from lakelabel.jobs.counters import RunCounters
from lakelabel.jobs.errors import JobFailedError, reason
from lakelabel.jobs.isolation import CallJournal, Journal, died, died_preparing, run_isolating
from lakelabel.jobs.lake.reading import block_rows, read_unit
from lakelabel.jobs.lake.shards import ShardError
from lakelabel.jobs.lake.storage import add_requests, request_counts, requests_since
from lakelabel.jobs.output.commit import RowErrorStopError, Units, first_row_error, row_errors, stage
from lakelabel.jobs.pools import IO_SLOTS, Machine, Pool, annotate_pool
from lakelabel.operators.core.base import use_cpus
from lakelabel.operators.factory import operator as build_operator

if TYPE_CHECKING:
    import fsspec

    from lakelabel.jobs.lake.units import Part, Unit
    from lakelabel.jobs.output.layout import Layout
    from lakelabel.jobs.output.state import RunState
    from lakelabel.jobs.plan import Plan
    from lakelabel.operators.core.base import Operator, Preparer

__all__ = ["RayDataEngine", "annotate", "cluster_machine", "connect"]

log = logging.getLogger("lakelabel")

_IO_CPUS = 0.25  # reads and staging wait on storage, not on a core: four share one CPU slot


_Collector = ray.remote(num_cpus=0)(RunCounters)


def _journal(collector: Any) -> Journal:
    """The collector's journal, called synchronously from a worker (an entry must land before the batch runs)."""
    return CallJournal(lambda method, key: ray.get(getattr(collector, method).remote(key)))


class _StepWorker:
    """A Ray Data actor around one operator: the model is loaded once, in ``__init__``."""

    def __init__(self, operator: Operator, collector: Any, *, verbose: bool, threads: float | None = None) -> None:
        quiet_worker(verbose=verbose)
        self.operator = operator
        self.collector = collector
        use_cpus(threads or ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
        self.operator.setup()
        ray.get(collector.actor_ready.remote(operator.config.output))

    def __call__(self, batch: pa.Table) -> pa.Table:
        start = time.perf_counter()
        name = self.operator.config.output
        on_death = functools.partial(died, step=name, output_type=self.operator.output_type())
        result = run_isolating(batch, self.operator, _journal(self.collector), stage=f"model {name}", on_death=on_death)
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
        return run_isolating(batch, self.preparer, _journal(self.collector), stage=f"prepare {name}",
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

    def unreadable(index: int, exc: Exception) -> None:
        path = dict(parts)[index].path
        if strict:
            raise ShardError(f"{path}: unreadable Parquet data: {exc}") from None
        ray.get(collector.unreadable_shard.remote(index, f"unreadable Parquet data: {exc}"))

    before = request_counts()
    try:
        yield from read_unit(fs, parts, columns, block_rows([part for _, part in parts]), unreadable)
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
    reaches this console only when ``verbose``; else it stays in Ray's session logs (``RayDataEngine.worker_logs``).
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
    """The connected Ray's CPU and GPU slots, for sizing the steps' pools; connects if needed."""
    connect()
    resources = ray.cluster_resources()
    nodes = [node["NodeID"] for node in ray.nodes() if node.get("Alive")]
    return Machine.of_cluster(
        resources.get("CPU", 0.0), resources.get("GPU", 0.0), nodes=len(nodes),
        local=nodes == [ray.get_runtime_context().get_node_id()], address=os.environ.get("RAY_ADDRESS"),
    )  # fmt: skip


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


def _model_stages(
    dataset: ray.data.Dataset,
    operator: Operator,
    collector: Any,
    *,
    verbose: bool,
    batch: int,
    pool: tuple[int, int, float, float],
    prepare_cpus: float | None = None,
    threads: float | None = None,
) -> ray.data.Dataset:
    """A step's stages: its media decoding (if any) on CPU actors, then its model on ``pool``: min, max, cpus, gpus."""
    low, high, cpus, gpus = pool
    preparer = operator.preparer()
    if preparer is not None:
        dataset = dataset.map_batches(
            _PrepareWorker,
            fn_constructor_kwargs={"preparer": preparer, "collector": collector, "verbose": verbose},
            batch_format="pyarrow",
            batch_size=batch,
            compute=ActorPoolStrategy(min_size=1, max_size=high),
            num_cpus=preparer.resources().num_cpus if prepare_cpus is None else prepare_cpus,
            num_gpus=0,
        )
    # A CPU actor computes for seconds per batch: a second batch queued on it would wait while another actor
    # idles. A GPU actor keeps Ray's prefetch, so its next batch is there when the current one ends.
    return dataset.map_batches(
        _StepWorker,
        fn_constructor_kwargs={"operator": operator, "collector": collector, "verbose": verbose, "threads": threads},
        batch_format="pyarrow",
        batch_size=batch,
        compute=ActorPoolStrategy(min_size=low, max_size=high, max_tasks_in_flight_per_actor=None if gpus else 1),
        num_cpus=cpus,
        num_gpus=gpus,
    )


def _pipeline(
    plan: Plan,
    units: list[Unit],
    table: Units,
    pools: list[Pool],
    batches: list[int],
    *,
    collector: Any,
    verbose: bool,
) -> ray.data.Dataset:
    spec = plan.spec
    # Reads and staging run a bounded number of tasks at a time, like the model pools: memory stays flat
    # however many shards the job has.
    io_tasks = max(2, *(pool.high for pool in pools))
    rows = [unit.rows for unit in units]
    reads = max(1, min(io_tasks, len(units)))  # one read task per commit unit
    dataset = ray.data.read_datasource(_UnitSource(plan, units, collector), num_cpus=_IO_CPUS, concurrency=reads)
    for operator, pool, batch in zip(plan.operators, pools, batches, strict=True):
        sizes = (pool.low, pool.high, pool.cpus, pool.gpus)
        dataset = _model_stages(dataset, operator, collector, verbose=verbose, batch=batch, pool=sizes)
    layout = plan.layout
    stages = max(1, min(io_tasks, math.ceil(sum(rows) / batches[-1])))  # the last step's batches are staging's blocks
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


_commit = ray.remote(num_cpus=0, max_retries=3)(commit_task)


class _RayCommits:
    """Unit commits as small Ray tasks; the run's unit table shipped once as an object reference."""

    def share(self, units: Units) -> Any:
        return ray.put(units)

    def submit(self, layout: Layout, units: Any, unit: int, skip: frozenset[int], first: dict[int, float]) -> Any:
        return _commit.remote(layout, units, unit, skip, first)

    def done(self, handles: list[Any], *, block: bool) -> list[tuple[Any, Any]]:
        ready, _ = ray.wait(handles, num_returns=1 if block else len(handles), timeout=None if block else 0)
        return [(ref, ray.get(ref)) for ref in ready]


class RayDataEngine:
    """What the orchestration (``jobs/runner.py``) asks of Ray: start or attach, size, run, stop."""

    def __init__(self) -> None:
        self.ours = False

    def start(self, min_cpus: int, *, verbose: bool) -> None:
        """Attach to a Ray (``RAY_ADDRESS``, or one already initialised in this process), else start a local one."""
        self.ours = not ray.is_initialized()
        connect(min_cpus, verbose=verbose)

    def stop(self) -> None:
        """Stop the local Ray this run started (a caller's Ray or a cluster stays)."""
        if self.ours:
            ray.shutdown()

    def ensure_slots(self, slots: int, *, verbose: bool) -> None:
        """Restart the local Ray this run started when it has fewer CPU slots than the job's set pools need."""
        if not self.ours or os.environ.get("RAY_ADDRESS") or ray.cluster_resources().get("CPU", 0) >= slots:
            return
        log.info("restarting the local Ray with %d CPU slot(s) for the steps' concurrency", slots)
        ray.shutdown()
        connect(min_cpus=slots, verbose=verbose)

    def machine(self) -> Machine:
        """The connected Ray's slots, for sizing the pools."""
        return cluster_machine()

    def cpu_slots(self) -> float:
        """CPU slots of the connected Ray."""
        return ray.cluster_resources().get("CPU", 0)

    def worker_logs(self) -> str:
        """Where this Ray session keeps its workers' output (on each node, for a cluster)."""
        node = ray._private.worker._global_node  # Ray Data finds its own log directory the same way
        if node is not None:
            return f"{node.get_session_dir_path()}/logs"
        return f"<Ray temp dir>/{ray.get_runtime_context().get_session_name()}/logs"

    def console(self, *, verbose: bool) -> contextlib.AbstractContextManager[None]:
        """Ray Data's own progress output for the run."""
        return _ray_data_console(verbose=verbose)

    def process(self, plan: Plan, state: RunState, pools: list[Pool], batches: list[int], *, rows: int,
                verbose: bool) -> Processed:  # fmt: skip
        """Stream the pending units through the steps, committing each unit as its rows come back."""
        parts = [part for unit in state.units for part in unit.parts]
        # Pinned to the driver's node: losing a worker node must not take the counters with it.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        collector = _Collector.options(scheduling_strategy=here).remote(
            {step.output: step.task for step in plan.spec.steps}
        )
        loop = UnitCommits(plan, state, parts, _RayCommits())
        begun = time.perf_counter()

        def poll() -> Snapshot:
            steps, _ = ray.get(collector.snapshot.remote())
            return Snapshot(time.perf_counter() - begun, steps, rows, loop.parts_done, len(parts))

        try:
            with ProgressDisplay(poll, verbose=verbose):
                dataset = _pipeline(plan, state.units, loop.table, pools, batches, collector=collector, verbose=verbose)
                for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                    loop.staged(batch)
                loop.drain(ray.get(collector.snapshot.remote())[1])
        except Exception as exc:
            raise JobFailedError(redact.redact(reason(exc)), job=plan.spec.name) from exc
        steps, unreadable = ray.get(collector.snapshot.remote())
        requests = dict(loop.requests)
        add_requests(requests, ray.get(collector.requests_sent.remote()))
        return Processed(parts=parts, commits=loop, steps=steps, unreadable=unreadable, requests=requests)


def annotate(
    ds: ray.data.Dataset,
    *,
    task: str,
    model: str,
    input: str,
    output: str,
    options: dict[str, Any] | None = None,
    concurrency: int | tuple[int, int] | None = None,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    batch_size: int | None = None,
    dtype: str | None = None,
    device: str = "auto",
    revision: str | None = None,
    verbose: bool = False,
) -> ray.data.Dataset:
    """``ds`` with column ``output`` added by ``task``'s model over column ``input``, on lakelabel's actor pool.

    Models load once per actor, before it counts as ready; bad rows get a null and a message in ``lakelabel_errors``;
    a row that kills its worker is isolated. The actors hold no CPU slot (a GPU step holds its ``num_gpus``): their
    number is bounded by ``concurrency`` (``N`` or ``(min, max)``; default one up to the CPU slots less one), so the
    rest of the pipeline always finds a slot. Other arguments: :func:`lakelabel.operator`'s; see docs/python-api.md::

        ds = lakelabel.annotate(ds, task="text-classification", model="./model", input="text", output="label")
    """
    operator = build_operator(
        task, model=model, input=input, output=output, options=options, dtype=dtype, device=device, revision=revision
    )
    connect(verbose=verbose)
    cluster = ray.cluster_resources()
    low, high, gpus, threads = annotate_pool(
        operator, cpus=cluster.get("CPU", 1), gpus=cluster.get("GPU", 0), concurrency=concurrency,
        num_gpus=num_gpus, num_cpus=num_cpus,
    )  # fmt: skip
    collector = _Collector.remote({output: operator.task})
    return _model_stages(
        ds, operator, collector, verbose=verbose, batch=batch_size or operator.batch_size,
        pool=(low, high, 0, gpus), prepare_cpus=0, threads=threads,
    )  # fmt: skip
