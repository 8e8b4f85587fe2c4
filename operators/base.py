"""The operator contract: one task over one column, a picklable config, the model loaded once per worker.

An operator is constructed cheaply on the driver (it validates its options and nothing else), shipped to a
worker, where ``setup()`` loads the model once, and then called on Arrow batches::

    op = TextClassification(OperatorConfig(model="./my-model", input="text", output="sentiment"))
    op.setup()
    annotated = op(pa.table({"text": ["great!", None]}))

A subclass writes three things: ``output_type()``, ``load()`` and ``annotate(texts)``. Everything else — null
inputs, the per-row error column, isolating a row that makes the model fail — lives here, so that a bad row never
disappears and never stops the job.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

log = logging.getLogger("lakelabel")

ERROR_COLUMN = "lakelabel_errors"
"""Per-row errors of every step: ``list<struct<step: string, message: string>>``, empty when the row is clean."""

ERROR_TYPE = pa.list_(pa.struct([("step", pa.string()), ("message", pa.string())]))


class OptionError(ValueError):
    """A step's ``options`` hold an unknown key or a value the task cannot use."""


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What one worker of a step needs. ``num_gpus`` is used only where the cluster has GPUs."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None


@dataclass(frozen=True, kw_only=True)
class OperatorConfig:
    """Everything an operator needs, cheap to pickle: no model, no tokenizer, no tensors.

    Attributes:
        model: a Hugging Face Hub id (``org/name``) or a local directory holding ``config.json``.
        input: the column read; it must hold strings.
        output: the column written.
        options: the task's keyword arguments, named as ``transformers.pipeline()`` names them.
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: ``auto`` (float16 on CUDA, float32 on CPU), ``float32``, ``float16`` or ``bfloat16``.
        revision: the Hub revision (branch, tag or commit) to load.
        trust_remote_code: run code shipped with the model; off unless the job says otherwise.
        use_safetensors: load only ``*.safetensors`` weights; pickled weights are refused unless this is off.
    """

    model: str
    input: str
    output: str
    options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    dtype: str = "auto"
    revision: str | None = None
    trust_remote_code: bool = False
    use_safetensors: bool = True


class Operator(ABC):
    """Base of every task operator. Subclasses set ``task`` and ``defaults`` and write three methods."""

    task: ClassVar[str]
    defaults: ClassVar[Mapping[str, Any]] = {}
    """Every option the task accepts, with its default. Any other key is an error naming the key."""

    uses_gpu: ClassVar[bool] = True
    """Whether the model benefits from a GPU; the runner asks for one only where the cluster has GPUs."""

    def __init__(self, config: OperatorConfig) -> None:
        unknown = sorted(set(config.options) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise OptionError(
                f"step '{config.output}' ({self.task}): unknown option(s) {', '.join(unknown)}; known options: {known}"
            )
        self.config = config
        self.options: dict[str, Any] = {**self.defaults, **config.options}
        self.validate_options()
        self._ready = False

    # -- what a subclass writes ---------------------------------------------------------------------------
    def validate_options(self) -> None:  # noqa: B027 - optional hook
        """Check option values cheaply (no model); raise ``OptionError`` naming the option."""

    def refuse(self, text: str) -> str | None:
        """A reason to refuse ``text`` where ``pipeline()`` refuses it (the row gets an error), else None."""
        del text
        return None

    @abstractmethod
    def output_type(self) -> pa.DataType:
        """The Arrow type of the output column. May read the model's config, never its weights."""

    @abstractmethod
    def load(self) -> None:
        """Load the model and tokenizer onto the worker's device. Called once per worker."""

    @abstractmethod
    def annotate(self, texts: list[str]) -> pa.Array:
        """Annotate non-null texts; return an array of ``output_type()`` with one value per text."""

    # -- the contract the runner uses ---------------------------------------------------------------------
    def resources(self) -> Resources:
        """The resources one worker of this operator asks for."""
        return Resources(num_cpus=1.0, num_gpus=1.0 if self.uses_gpu else 0.0)

    def setup(self) -> None:
        """Load the model once; later calls do nothing."""
        if not self._ready:
            self.load()
            self._ready = True

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Return ``batch`` with the output column added (or replaced) and the error column updated."""
        self.setup()
        name = self.config.input
        if name not in batch.column_names:
            raise KeyError(f"step '{self.config.output}': input column '{name}' is not in the batch")
        values = batch.column(name).to_pylist()
        errors: dict[int, str] = {}
        rows: list[int] = []
        for i, value in enumerate(values):
            if isinstance(value, str):
                reason = self.refuse(value)
                if reason is None:
                    rows.append(i)
                else:
                    errors[i] = reason
            elif value is None:
                errors[i] = f"input column '{name}' is null"
            else:
                errors[i] = f"input column '{name}' holds {type(value).__name__}, not a string"
        annotated = self._annotate_isolating([values[i] for i in rows], rows, errors)
        column = _scatter(annotated, rows, len(values), self.output_type())
        batch = _set_column(batch, self.config.output, column)
        return _add_errors(batch, self.config.output, errors)

    def _annotate_isolating(self, texts: list[str], rows: list[int], errors: dict[int, str]) -> pa.Array:
        """Annotate the batch; if it fails, annotate row by row so only the failing rows get nulls."""
        if not texts:
            return pa.nulls(0, self.output_type())
        try:
            return self.annotate(texts)
        except Exception as exc:  # noqa: BLE001 - fall back to isolating the failing rows
            log.warning(
                "step '%s': a batch of %d rows failed (%s: %s); retrying row by row",
                self.config.output,
                len(texts),
                type(exc).__name__,
                exc,
            )
        parts = []
        for text, row in zip(texts, rows, strict=True):
            try:
                parts.append(self.annotate([text]))
            except Exception as exc:  # noqa: BLE001 - the error is recorded on the row
                errors[row] = f"{type(exc).__name__}: {exc}"
                parts.append(pa.nulls(1, self.output_type()))
        return pa.concat_arrays(parts)


def equal_lists(flat: pa.Array, width: int) -> pa.ListArray:
    """Cut ``flat`` into consecutive lists of ``width`` values each (one list per row)."""
    offsets = pa.array(range(0, len(flat) + 1, width), pa.int32())
    return pa.ListArray.from_arrays(offsets, flat)


def _scatter(values: pa.Array, rows: list[int], length: int, type_: pa.DataType) -> pa.Array:
    """Place ``values`` at ``rows`` of a column of ``length`` rows; every other row is null."""
    if len(rows) == length:
        return values
    null_slot = len(values)
    indices = [null_slot] * length
    for position, row in enumerate(rows):
        indices[row] = position
    padded = pa.concat_arrays([values.cast(type_), pa.nulls(1, type_)])
    return padded.take(pa.array(indices, pa.int64()))


def _set_column(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


def _add_errors(table: pa.Table, step: str, errors: dict[int, str]) -> pa.Table:
    """Append this step's row errors to the error column, which is kept as the last column."""
    if ERROR_COLUMN in table.column_names:
        column = table.column(ERROR_COLUMN)
        table = table.drop_columns([ERROR_COLUMN])
    else:
        column = pa.array([[]] * table.num_rows, ERROR_TYPE)
    if errors:
        existing = column.to_pylist()
        for row, message in errors.items():
            existing[row] = [*(existing[row] or []), {"step": step, "message": message}]
        column = pa.array(existing, ERROR_TYPE)
    return table.append_column(ERROR_COLUMN, column)
