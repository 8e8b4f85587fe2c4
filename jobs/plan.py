"""What a job will do, worked out without loading a model or writing anything.

``lakelabel plan JOB.yaml`` prints it; ``lakelabel run`` makes the same plan first, so bad shards and missing
columns are reported by path before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakelabel.jobs.blocks import BATCHES_PER_ACTOR, batch_rows
from lakelabel.jobs.lake import Sink, Source, open_sink, open_source
from lakelabel.jobs.lake.shards import Quarantined, Shard, ShardError, inspect_shards, refuse
from lakelabel.jobs.lake.units import Part, Unit, bundle, split_parts
from lakelabel.jobs.output.layout import unsafe_key
from lakelabel.jobs.output.provenance import operator_code, operator_label, spec_hash
from lakelabel.jobs.pools import Machine, Pool, cpu_slots, size_pools
from lakelabel.jobs.records import done_parts
from lakelabel.operators import ERROR_COLUMN, ERROR_TYPE, Operator
from lakelabel.operators.registry import CLASS, lookup

if TYPE_CHECKING:
    import fsspec

    from lakelabel.jobs.output.layout import Layout
    from lakelabel.jobs.spec import JobSpec, StepSpec


@dataclass(frozen=True)
class Plan:
    """A validated job bound to its storage: shards found, footers read, operators built (models not loaded)."""

    spec: JobSpec
    source: Source
    shards: list[Shard]
    operators: list[Operator]
    sink: Sink
    quarantined: list[Quarantined]
    since: list[str]
    """For a table input: what changed since the last run (appends only, else the plan was refused)."""

    @property
    def input_fs(self) -> fsspec.AbstractFileSystem:
        """Where the shards are read from."""
        return self.source.fs

    @property
    def layout(self) -> Layout:
        """Where shard files and records are committed."""
        return self.sink.layout

    @property
    def rows(self) -> int:
        """Rows over all shards, from the footers."""
        return sum(shard.rows for shard in self.shards)

    def parts(self) -> list[Part]:
        """Every shard's parts: the shard whole, or row-group ranges of it when it is above ``input.split_bytes``."""
        return split_parts(self.shards, self.layout.key, split_bytes=self.spec.split_bytes)

    def units(self, parts: list[Part]) -> list[Unit]:
        """Commit units over ``parts``: small files bundled up to ``input.bundle_bytes`` and one model batch."""
        rows = [part.rows for part in parts]
        batch = min(
            (batch_rows(step, operator, rows) for step, operator in zip(self.spec.steps, self.operators, strict=True)),
            default=1,
        )
        return bundle(parts, bundle_bytes=self.spec.bundle_bytes, bundle_rows=batch)

    def pools(self, machine: Machine, *, rows: int | None = None) -> list[Pool]:
        """Each step's model pool on ``machine``: the step's ``concurrency``, else sized (``jobs/pools.py``).

        Sized for ``rows`` rows (default: every shard's).
        """
        return size_pools(self.spec.steps, self.operators, machine, rows=self.rows if rows is None else rows)

    def cpu_slots(self, pools: list[Pool]) -> int:
        """CPU slots the job needs to make progress: every pool at its minimum, plus one for reads and writes."""
        return cpu_slots(pools, self.operators)

    def batch_sizes(self, pools: list[Pool], *, rows: list[int] | None = None) -> list[int]:
        """Rows per batch of each step, for its pool (``jobs/blocks.py``), fitted to ``rows`` (default: the shards').

        A run computes them once, over its pending units, and hands them to the engine.
        """
        rows = [shard.rows for shard in self.shards] if rows is None else rows
        return [
            batch_rows(step, operator, rows, actors=pool.high)
            for step, operator, pool in zip(self.spec.steps, self.operators, pools, strict=True)
        ]

    def output_columns(self, shard: Shard) -> list[str]:
        """A shard's output columns in order: its own (or the selected ones), each step's, the error column."""
        own = list(self.spec.input_columns) if self.spec.input_columns else shard.schema.names
        return [*own, *(step.output for step in self.spec.steps), ERROR_COLUMN]

    def __str__(self) -> str:
        return self.render()

    def render(self, machine: Machine | None = None) -> str:
        """The plan as text: shards with rows and bytes, steps with columns, types, pools and batch sizes.

        Pools are sized for ``machine`` (default: the local Ray a run would start on this machine).
        """
        spec = self.spec
        done = self.done_keys()
        parts = self.parts()
        pending = {part.path for part in parts if part.key not in done}
        units = self.units([part for part in parts if part.key not in done])
        machine = machine or Machine.local()
        pools = self.pools(machine)
        batches = self.batch_sizes(pools)
        lines = [
            f"job {spec.name}",
            f"input  {self.source.label}: {len(self.shards)} shard(s), {self.rows} rows, "
            f"{sum(shard.path not in pending for shard in self.shards)} already done",
        ]
        lines += [f"  {line}" for line in self.since]
        lines += [
            f"  {shard.path}  {shard.rows} rows  {shard.bytes} bytes" + ("" if shard.path in pending else "  (done)")
            for shard in self.shards
        ]
        lines.append(_units_line(units, spec.bundle_bytes, spec.split_bytes))
        if self.quarantined:
            lines.append(f"quarantined: {len(self.quarantined)} shard(s) left out (on_error: record)")
            lines += [f"  {item.path}: {item.reason}" for item in self.quarantined]
        lines.append(f"pools sized for {machine.label}")
        steps = zip(spec.steps, self.operators, pools, batches, strict=True)
        for index, (step, operator, pool, batch) in enumerate(steps):
            reads = ", ".join(operator.columns())
            lines.append(f"step {index} {_step_name(step)}: {reads} -> {step.output} [{_type_name(operator)}]")
            preparer = operator.preparer()
            if preparer is not None:
                lines.append(
                    f"  stage prepare ({type(preparer).__name__}, decodes {operator.input_kind}): "
                    f"actors 1..{pool.high}, cpus {preparer.resources().num_cpus:g} per actor, gpus 0"
                )
            wants = operator.resources().num_gpus
            gpus = f"{pool.gpus:g}" + (
                " (the cluster has no GPUs)" if wants and not pool.gpus and step.num_gpus is None else ""
            )
            lines.append(
                f"  stage model {step.model or '(none named)'}\n"
                f"    batch_size {batch}, actors {pool.range}, cpus {pool.cpus:g} per actor, gpus {gpus}\n"
                f"    actors: {pool.reason}\n"
                f"    batch_size: {_batch_reason(step, operator, pool, self.rows)}"
            )
        lines.append(f"errors -> {ERROR_COLUMN} [{ERROR_TYPE}]")
        lines.append(f"output {self.sink.label} (mode {spec.output_mode}, on_error {spec.on_error})")
        lines += [f"  {line}" for line in self.sink.status_lines()]
        return "\n".join(lines)

    def done_keys(self) -> set[str]:
        """Parts (whole shards, or row-group ranges) an earlier run of this spec committed, the input file unchanged.

        A run skips them (``lakelabel.jobs.records.done_parts``).
        """
        sizes = {part.key: part.shard.bytes for part in self.parts()}
        return set(done_parts(sizes, self.layout.read_records(), spec_hash(self.spec)))


def _units_line(units: list[Unit], bundle_bytes: int, split_bytes: int) -> str:
    bundles = sum(len(unit.parts) > 1 for unit in units)
    ranges = sum(not unit.parts[0].whole for unit in units)
    return (
        f"units  {len(units)} commit unit(s) to process: {bundles} bundle(s) of small files "
        f"(input.bundle_bytes {bundle_bytes}), {ranges} row-group range(s) of big files "
        f"(input.split_bytes {split_bytes}), {len(units) - bundles - ranges} whole file(s)"
    )


def _batch_reason(step: StepSpec, operator: Operator, pool: Pool, rows: int) -> str:
    if step.batch_size:
        return "set by the step"
    return (
        f"unset: the operator's {operator.batch_size} rows, lowered to give each of {pool.high} actor(s) at least "
        f"{BATCHES_PER_ACTOR} of the job's {rows} rows' batches, fitted to whole shards or even parts of one"
    )


def _step_name(step: StepSpec) -> str:
    """The step's task; for an operator not built in, also its class and where its code comes from."""
    code = operator_code(step)
    if code is None:
        return step.task
    if lookup(step.task).origin == CLASS:  # the step's operator: module:Class
        label = operator_label(code)
        return f"operator {label}" if code["class"] == step.task else f"operator {step.task} ({label})"
    return f"{step.task} (operator {operator_label(code)})"  # an installed entry point


def _type_name(operator: Operator) -> str:
    try:
        return str(operator.output_type())
    except Exception as exc:  # noqa: BLE001 - the plan still shows everything else
        return f"unknown until the model's config can be read: {exc}"


def make_plan(spec: JobSpec, *, operators: list[Operator] | None = None) -> Plan:
    """Find and check the input shards and build the operators (``operators``: the steps' own, built already).

    Unusable shards are quarantined (``on_error: record``) or raise one ``ShardError`` naming each (``raise``).
    """
    source = open_source(spec)
    operators = operators if operators is not None else [step.operator() for step in spec.steps]
    columns = spec.source_columns(operators)
    kinds = {
        column: operator.input_kind if column == operator.config.input else "text"
        for operator in reversed(operators)
        for column in operator.columns()
        if column in columns
    }
    selected = list(spec.input_columns) if spec.input_columns else None
    paths = source.shard_paths()
    shards, quarantined = inspect_shards(source.fs, paths, columns, kinds, selected=selected, sizes=source.sizes())
    if spec.on_error == "raise":
        refuse(quarantined)
    sink = open_sink(spec, source.root)
    root, layout = source.root, sink.layout
    if type(layout.fs) is type(source.fs) and f"{layout.root}/".startswith(f"{root}/"):
        raise ShardError(
            f"output.uri: {spec.output_uri} lies inside the input {spec.input_uri}; its files would be read as input"
        )
    for shard in [shard for shard in shards if unsafe_key(layout.relative_key(shard.path))]:
        shards.remove(shard)
        reason = f"output key would leave the output prefix: {unsafe_key(layout.relative_key(shard.path))}"
        quarantined.append(Quarantined(shard.path, reason))
    if spec.on_error == "raise":
        refuse(quarantined)
    previous = layout.read_json(layout.run_file) or {}
    since = source.check_since(previous.get("input_position") if previous.get("spec_hash") == spec_hash(spec) else None)
    return Plan(
        spec=spec,
        source=source,
        shards=shards,
        operators=operators,
        sink=sink,
        quarantined=quarantined,
        since=since,
    )
