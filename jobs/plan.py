"""What a job will do, worked out without loading a model or writing anything.

``lakelabel plan JOB.yaml`` prints it; ``lakelabel run`` makes the same plan first, so bad shards and missing
columns are reported by path before any model is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.blocks import batch_rows
from jobs.layout import Layout, unsafe_key
from jobs.shards import Quarantined, Shard, ShardError, inspect_shards, refuse, shard_root
from jobs.storage import filesystem
from operators import ERROR_COLUMN, ERROR_TYPE, Operator

if TYPE_CHECKING:
    import fsspec

    from jobs.spec import JobSpec


@dataclass(frozen=True)
class Plan:
    """A validated job bound to its storage: shards found, footers read, operators built (models not loaded)."""

    spec: JobSpec
    input_fs: fsspec.AbstractFileSystem
    shards: list[Shard]
    operators: list[Operator]
    output_fs: fsspec.AbstractFileSystem
    output_path: str
    layout: Layout
    quarantined: list[Quarantined]

    @property
    def rows(self) -> int:
        """Rows over all shards, from the footers."""
        return sum(shard.rows for shard in self.shards)

    def cpu_slots(self) -> int:
        """CPU slots the job needs to make progress: one per actor of every pool at its minimum, plus one for tasks."""
        slots = 1
        for step, operator in zip(self.spec.steps, self.operators, strict=True):
            cpus = step.num_cpus if step.num_cpus is not None else operator.resources().num_cpus
            slots += step.concurrency[0] * math.ceil(cpus)
            preparer = operator.preparer()
            if preparer is not None:
                slots += int(preparer.resources().num_cpus)
        return slots

    def output_columns(self, shard: Shard) -> list[str]:
        """A shard's output columns in order: its own (or the selected ones), each step's, the error column."""
        own = list(self.spec.input_columns) if self.spec.input_columns else shard.schema.names
        return [*own, *(step.output for step in self.spec.steps), ERROR_COLUMN]

    def render(self) -> str:
        """The plan as text: shards with rows and bytes, steps with columns, types and resources."""
        spec = self.spec
        lines = [
            f"job {spec.name}",
            f"input  {spec.input_uri}: {len(self.shards)} shard(s), {self.rows} rows",
        ]
        lines += [f"  {shard.path}  {shard.rows} rows  {shard.bytes} bytes" for shard in self.shards]
        if self.quarantined:
            lines.append(f"quarantined: {len(self.quarantined)} shard(s) left out (on_error: record)")
            lines += [f"  {item.path}: {item.reason}" for item in self.quarantined]
        for index, (step, operator) in enumerate(zip(spec.steps, self.operators, strict=True)):
            wants = operator.resources()
            gpus = step.num_gpus if step.num_gpus is not None else f"{wants.num_gpus:g} if the cluster has GPUs"
            cpus = step.num_cpus if step.num_cpus is not None else wants.num_cpus
            reads = ", ".join(operator.columns())
            lines.append(f"step {index} {step.task}: {reads} -> {step.output} [{_type_name(operator)}]")
            preparer = operator.preparer()
            if preparer is not None:
                lines.append(
                    f"  stage prepare ({type(preparer).__name__}, decodes {operator.input_kind}): "
                    f"actors 1..{step.concurrency[1]}, cpus {preparer.resources().num_cpus:g} per actor, gpus 0"
                )
            batch = batch_rows(step, operator, [shard.rows for shard in self.shards])
            lines.append(
                f"  stage model {step.model}\n"
                f"    batch_size {batch}, actors {step.concurrency[0]}..{step.concurrency[1]}, "
                f"cpus {cpus:g} per actor, gpus {gpus}"
            )
        lines.append(f"errors -> {ERROR_COLUMN} [{ERROR_TYPE}]")
        lines.append(f"output {spec.output_uri} (mode {spec.output_mode}, on_error {spec.on_error})")
        return "\n".join(lines)


def _type_name(operator: Operator) -> str:
    try:
        return str(operator.output_type())
    except Exception as exc:  # noqa: BLE001 - the plan still shows everything else
        return f"unknown until the model's config can be read: {exc}"


def make_plan(spec: JobSpec) -> Plan:
    """Find and check the input shards and build the operators.

    Unusable shards are quarantined (``on_error: record``) or raise one ``ShardError`` naming each (``raise``).
    """
    input_fs, input_path = filesystem(spec.input_uri, spec.storage)
    columns = spec.source_columns()
    operators = [step.operator() for step in spec.steps]
    kinds = {
        column: operator.input_kind if column == operator.config.input else "text"
        for operator in reversed(operators)
        for column in operator.columns()
        if column in columns
    }
    selected = list(spec.input_columns) if spec.input_columns else None
    shards, quarantined = inspect_shards(input_fs, input_path, spec.input_uri, columns, kinds, selected=selected)
    if spec.on_error == "raise":
        refuse(quarantined)
    output_fs, output_path = filesystem(spec.output_uri, spec.storage)
    root = shard_root(input_fs, input_path)
    if type(output_fs) is type(input_fs) and f"{output_path}/".startswith(f"{root}/"):
        raise ShardError(
            f"output.uri: {spec.output_uri} lies inside the input {spec.input_uri}; its files would be read as input"
        )
    layout = Layout(fs=output_fs, root=output_path, input_root=root)
    for shard in [shard for shard in shards if unsafe_key(layout.relative_key(shard.path))]:
        shards.remove(shard)
        reason = f"output key would leave the output prefix: {unsafe_key(layout.relative_key(shard.path))}"
        quarantined.append(Quarantined(shard.path, reason))
    if spec.on_error == "raise":
        refuse(quarantined)
    return Plan(
        spec=spec,
        input_fs=input_fs,
        shards=shards,
        operators=operators,
        output_fs=output_fs,
        output_path=output_path,
        layout=layout,
        quarantined=quarantined,
    )
