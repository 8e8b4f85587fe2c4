"""The runner: the one module that knows Ray. It turns a job spec into a Ray Data streaming pipeline.

read_parquet (local or S3 through fsspec) -> one actor-pool ``map_batches`` per step -> write_parquet.
Each step's operator is shipped to its actors as a cheap config and loads its model once per actor. Ray Data's
progress display stays on; the run ends with a ``RunSummary``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

if not os.environ.get("RAY_ADDRESS"):
    # A Ray that lakelabel starts itself serves this machine only: bind it to loopback, not the host's address.
    # Read by Ray at import time; a cluster (RAY_ADDRESS) is unaffected.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray
from ray.data import ActorPoolStrategy

from jobs.plan import Plan, make_plan
from jobs.storage import arrow_filesystem
from jobs.summary import RunSummary, StepStats
from operators import ERROR_COLUMN, Operator

if TYPE_CHECKING:
    from jobs.spec import JobSpec
    from operators.base import Preparer

log = logging.getLogger("lakelabel")

_OUT = "__rows_out__"


class OutputExistsError(RuntimeError):
    """The output prefix already holds Parquet files and the job's mode forbids mixing."""


@ray.remote(num_cpus=0)
class _Collector:
    """Counters sent by every worker, read once by the driver at the end."""

    def __init__(self) -> None:
        self.stats: dict[str, list[float]] = {}

    def add(self, name: str, rows: int, errors: int, seconds: float) -> None:
        row = self.stats.setdefault(name, [0, 0, 0.0, 0])
        row[0] += rows
        row[1] += errors
        row[2] += seconds
        row[3] += 1

    def snapshot(self) -> dict[str, list[float]]:
        return self.stats


def _errors_from(batch: pa.Table, step: str | None) -> int:
    """Rows of ``batch`` carrying an error of ``step`` (any step when None)."""
    if ERROR_COLUMN not in batch.column_names or batch.num_rows == 0:
        return 0
    column = batch.column(ERROR_COLUMN)
    if step is None:
        return int(pc.sum(pc.greater(pc.list_value_length(column), 0)).as_py() or 0)
    steps = pc.struct_field(pc.list_flatten(column), "step")
    return int(pc.sum(pc.equal(steps, step)).as_py() or 0)


class _StepWorker:
    """A Ray Data actor around one operator: the model is loaded once, in ``__init__``."""

    def __init__(self, operator: Operator, collector: Any) -> None:
        self.operator = operator
        self.collector = collector
        self.operator.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        start = time.perf_counter()
        result = self.operator(batch)
        elapsed = time.perf_counter() - start
        name = self.operator.config.output
        ray.get(self.collector.add.remote(name, batch.num_rows, _errors_from(result, name), elapsed))
        return result


class _PrepareWorker:
    """A CPU-only Ray Data actor that decodes a step's media ahead of its model stage."""

    def __init__(self, preparer: Preparer) -> None:
        self.preparer = preparer
        self.preparer.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.preparer(batch)


def _tally(batch: pa.Table, collector: Any) -> pa.Table:
    ray.get(collector.add.remote(_OUT, batch.num_rows, _errors_from(batch, None), 0.0))
    return batch


def required_cpus(plan: Plan) -> int:
    """CPU slots the job needs to make progress: one per actor of every pool at its minimum, plus one for tasks."""
    slots = 1
    for step, operator in zip(plan.spec.steps, plan.operators, strict=True):
        cpus = step.num_cpus if step.num_cpus is not None else operator.resources().num_cpus
        slots += step.concurrency[0] * int(cpus)
        preparer = operator.preparer()
        if preparer is not None:
            slots += int(preparer.resources().num_cpus)
    return slots


def connect(min_cpus: int = 1) -> None:
    """Attach to ``RAY_ADDRESS`` when set (or to a Ray already initialised); else start a local Ray.

    Without ``RAY_ADDRESS`` a fresh local instance is started even if a cluster runs on this machine
    (``RAY_ADDRESS=auto`` attaches to that one), so a stale cluster record never captures a job.
    """
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        log.info("attaching to the Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=True)
        return
    cpus = max(os.cpu_count() or 1, min_cpus)
    log.info("starting a local Ray with %d CPU slot(s)", cpus)
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=True)


def _gpus(step_gpus: float | None, operator: Operator) -> float:
    if step_gpus is not None:
        return step_gpus
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    return operator.resources().num_gpus if has_gpus else 0.0


def _prepare_output(plan: Plan) -> None:
    existing = plan.existing_output()
    if not existing:
        return
    if plan.spec.output_mode != "overwrite":
        raise OutputExistsError(
            f"output.uri: {plan.spec.output_uri} already holds {len(existing)} Parquet file(s); "
            "set output.mode: overwrite to replace them"
        )
    plan.output_fs.rm(plan.output_path, recursive=True)


def run_job(spec: JobSpec) -> RunSummary:
    """Run ``spec`` to completion and return its summary. Input shards are checked before any model loads."""
    started = time.perf_counter()
    plan = make_plan(spec)
    _prepare_output(plan)
    connect(min_cpus=required_cpus(plan))
    available = ray.cluster_resources().get("CPU", 0)
    if available < required_cpus(plan):
        log.warning(
            "the Ray cluster has %g CPU slot(s); this job's actor pools and a read/write task need %d to make progress",
            available,
            required_cpus(plan),
        )
    collector = _Collector.remote()
    dataset = ray.data.read_parquet(
        [shard.path for shard in plan.shards],
        filesystem=arrow_filesystem(plan.input_fs),
        columns=list(spec.input_columns) if spec.input_columns else None,
        partitioning=None,  # output = the shards' own columns; hive path segments add none
    )
    for step, operator in zip(spec.steps, plan.operators, strict=True):
        low, high = step.concurrency
        preparer = operator.preparer()
        if preparer is not None:
            dataset = dataset.map_batches(
                _PrepareWorker,
                fn_constructor_kwargs={"preparer": preparer},
                batch_format="pyarrow",
                batch_size=step.batch_size,
                compute=ActorPoolStrategy(min_size=1, max_size=high),
                num_cpus=preparer.resources().num_cpus,
                num_gpus=0,
            )
        dataset = dataset.map_batches(
            _StepWorker,
            fn_constructor_kwargs={"operator": operator, "collector": collector},
            batch_format="pyarrow",
            batch_size=step.batch_size,
            compute=ActorPoolStrategy(min_size=low, max_size=high),
            num_cpus=step.num_cpus if step.num_cpus is not None else operator.resources().num_cpus,
            num_gpus=_gpus(step.num_gpus, operator),
        )
    dataset = dataset.map_batches(_tally, fn_kwargs={"collector": collector}, batch_format="pyarrow")
    dataset.write_parquet(plan.output_path, filesystem=arrow_filesystem(plan.output_fs))
    stats = ray.get(collector.snapshot.remote())
    summary = RunSummary(
        job=spec.name,
        output_uri=spec.output_uri,
        shards=len(plan.shards),
        rows_in=plan.rows,
        rows_out=int(stats.get(_OUT, [0])[0]),
        row_errors=int(stats.get(_OUT, [0, 0])[1]),
        wall_seconds=time.perf_counter() - started,
    )
    for step in spec.steps:
        rows, errors, seconds, batches = stats.get(step.output, [0, 0, 0.0, 0])
        summary.steps.append(
            StepStats(
                name=step.output,
                task=step.task,
                rows=int(rows),
                row_errors=int(errors),
                busy_seconds=float(seconds),
                batches=int(batches),
            )
        )
    return summary
