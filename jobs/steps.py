"""A job's step: ``StepSpec``, and reading one from the spec's ``steps`` list (its task or operator, model, options).

A step names a built-in or installed task (``task:``) or a class of your own (``operator: module:Class``); its
operator is built once while the step is read (options checked, no model loaded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakelabel.jobs.fields import SpecError, mapping, number, only, string
from lakelabel.operators import (
    ModelLoadError,
    Operator,
    OperatorConfig,
    OptionError,
    UnknownTaskError,
    default_model,
    lookup,
    resolve,
)
from lakelabel.operators.core.hub import check_hub_model
from lakelabel.operators.registry import BUILT_IN, Entry

__all__ = ["StepSpec", "read_step"]

log = logging.getLogger("lakelabel")

_STEP_KEYS = {
    "task", "operator", "model", "input", "output", "options", "batch_size", "num_gpus", "num_cpus", "concurrency",
    "device", "dtype", "revision", "trust_remote_code", "use_safetensors",
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class StepSpec:
    """One model over one column."""

    task: str
    """What ``lakelabel.operators.registry.resolve`` takes: a built-in task's own name, an installed entry point's
    name, or ``module:Class`` (the step's ``operator:``)."""
    model: str
    """A Hub id or a local directory; empty for an operator of your own whose step names no model."""
    input: str
    output: str
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    """Rows per batch; ``None``: sized by ``lakelabel.jobs.blocks.batch_rows``."""
    num_gpus: float | None = None
    num_cpus: float | None = None
    concurrency: tuple[int, int] | None = None
    """Actors ``(min, max)``; ``None``: sized to the cluster by ``lakelabel.jobs.pools.size_pools``."""
    device: str = "auto"
    dtype: str = "auto"
    revision: str | None = None
    trust_remote_code: bool = False
    use_safetensors: bool = True

    def operator(self) -> Operator:
        """Build the (cheap, picklable) operator for this step; loads no model."""
        config = OperatorConfig(
            model=self.model,
            input=self.input,
            output=self.output,
            options=self.options,
            device=self.device,
            dtype=self.dtype,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            use_safetensors=self.use_safetensors,
        )
        return resolve(self.task)(config)


def _concurrency(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (number(value, where, integer=True, minimum=1),) * 2
    if isinstance(value, list) and len(value) == 2:
        low, high = (number(v, where, integer=True, minimum=1) for v in value)
        if low > high:
            raise SpecError(f"{where}: [min, max] with min <= max, got {value!r}")
        return (low, high)
    raise SpecError(f"{where}: an integer or a [min, max] pair, got {value!r}")


def _model(value: str, base: Path) -> str:
    """A local directory (absolute, ``./`` or ``../``, or existing beside the spec) or a Hub id as given."""
    path = Path(value).expanduser()
    if value.startswith(("/", "./", "../", "~")) or (base / path).is_dir():
        return str(path if path.is_absolute() else (base / path).resolve())
    return value


def _default_model(task: str, revision: Any, where: str) -> tuple[str, str]:
    """``pipeline(task)``'s default model and revision (the step's revision, if set), checked to be reachable."""
    try:
        model, default_revision = default_model(task)
    except UnknownTaskError as exc:
        raise SpecError(f"{where}.model: {exc}") from None
    revision = revision if isinstance(revision, str) and revision.strip() else default_revision
    log.warning(
        "%s: no model given; using transformers' default for %s: %s at revision %s", where, task, model, revision
    )
    try:
        check_hub_model(model, revision)
    except ModelLoadError as exc:
        raise SpecError(
            f"{where}.model: not set, so {exc}; set model to a local directory or a cached Hub id"
        ) from None
    return model, revision


def _operator_name(block: dict[str, Any], where: str) -> tuple[str, str]:
    """The step's field naming its operator (``task`` or ``operator``) and the name it gives."""
    given = [key for key in ("task", "operator") if block.get(key) is not None]
    if len(given) != 1:
        which = "both" if given else "neither"
        raise SpecError(
            f"{where}: a step names exactly one of task (a built-in or installed task) and operator (module:Class of "
            f"your own); it names {which}"
        )
    field = given[0]
    name = string(block, field, where) or ""
    if field == "task" and ":" in name:
        raise SpecError(f"{where}.task: '{name}' names a class; write it as operator: {name}")
    if field == "operator" and ":" not in name:
        raise SpecError(
            f"{where}.operator: '{name}' is not module:Class (for example my_ops.text:Upper); a task name goes in task"
        )
    return field, name


def read_step(raw: Any, index: int, base: Path) -> tuple[StepSpec, Operator]:
    """``steps[index]`` of a spec, checked, and its operator; ``base`` resolves a relative model directory."""
    where = f"steps[{index}]"
    block = mapping(raw, where)
    only(block, _STEP_KEYS, where)
    field, name = _operator_name(block, where)
    values: dict[str, Any] = {key: string(block, key, where) for key in ("input", "output")}
    try:  # imports a class of your own (no model loads): an import error is the spec's, at plan time
        entry = lookup(name)
        resolve(name)
    except UnknownTaskError as exc:
        raise SpecError(f"{where}.{field}: {exc}") from None
    values["task"] = entry.name
    model = string(block, "model", where, required=False)
    if model is None and entry.origin == BUILT_IN:
        model, values["revision"] = _default_model(values["task"], block.get("revision"), where)
    values["model"] = _model(model, base) if model else ""  # an operator of your own may need no model
    options = block.get("options") or {}
    values["options"] = mapping(options, f"{where}.options")
    if "batch_size" in block:
        values["batch_size"] = number(block["batch_size"], f"{where}.batch_size", integer=True, minimum=1)
    for key in ("num_gpus", "num_cpus"):
        if block.get(key) is not None:
            values[key] = float(number(block[key], f"{where}.{key}"))
    if "concurrency" in block:
        values["concurrency"] = _concurrency(block["concurrency"], f"{where}.concurrency")
    for key in ("device", "dtype", "revision"):
        if block.get(key) is not None:
            values[key] = string(block, key, where)
    for key in ("trust_remote_code", "use_safetensors"):
        if key in block:
            if not isinstance(block[key], bool):
                raise SpecError(f"{where}.{key}: must be true or false")
            values[key] = block[key]
    step = StepSpec(**values)
    return step, _build(step, entry, f"{where}.{field}")


def _build(step: StepSpec, entry: Entry, where: str) -> Operator:
    """Build the step's operator once (options checked, no model loaded); ``where`` names its task or operator."""
    try:
        return step.operator()
    except OptionError as exc:
        raise SpecError(f"{where.rpartition('.')[0]}.options: {exc}") from None
    except Exception as exc:
        if entry.origin == BUILT_IN:
            raise
        raise SpecError(f"{where}: {entry.target} could not be built: {type(exc).__name__}: {exc}") from None
