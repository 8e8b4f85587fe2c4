"""The operator contract: one task over one column, a picklable config, the model loaded once per worker.

An operator is constructed cheaply on the driver (it validates its options and nothing else), shipped to a
worker, where ``setup()`` loads the model once, and then called on Arrow batches::

    op = TextClassification(OperatorConfig(model="./my-model", input="text", output="sentiment"))
    op.setup()
    annotated = op(pa.table({"text": ["great!", None]}))

A subclass writes three things: ``output_type()``, ``load()`` and ``annotate(items)``. Everything else — null
inputs, the per-row error column, isolating a row that makes the model fail — lives here, so that a bad row never
disappears and never stops the job.

Image and audio operators also return a ``Preparer`` from ``preparer()``: a CPU stage that decodes the media and
runs the model's processor, so that a GPU worker only runs the model. The runner places it as its own stage ahead
of the model; called directly, the operator runs it inline. Its per-row output travels between the two stages in
an internal column (named by ``prepared_column``) and never reaches the output.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from lakelabel.operators.core.columns import add_errors, column_values, scatter, set_column
from lakelabel.operators.core.errors import ModelLoadError, OptionError
from lakelabel.operators.core.legacy import translate

__all__ = [
    "INPUT_KINDS",
    "ModelLoadError",
    "Operator",
    "OperatorConfig",
    "OptionError",
    "Prepared",
    "Preparer",
    "Resources",
    "RowFailures",
    "prepared_column",
    "use_cpus",
]

log = logging.getLogger("lakelabel")

INPUT_KINDS = ("text", "image", "audio")
"""What an operator's input column holds: strings, or encoded media (bytes, or ``struct<bytes, path>``)."""

Prepared = dict[str, np.ndarray]
"""One row after a ``Preparer``: named arrays (pixel values, a waveform, an original size, ...)."""


class RowFailures(Exception):  # noqa: N818 - not an error of the batch: it carries the batch's result
    """Raised by ``annotate`` when some rows have no value: the batch's array (nulls there) and each one's reason.

    For a model whose output is checked after the batch ran (a reply that must parse as JSON), so that one bad
    row does not make the whole batch run again row by row. ``reasons`` maps positions in ``annotate``'s input.
    """

    def __init__(self, array: pa.Array, reasons: Mapping[int, str]) -> None:
        super().__init__(f"{len(reasons)} row(s) without a value")
        self.array = array
        self.reasons = dict(reasons)


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
        model: a Hugging Face Hub id (``org/name``) or a local directory holding ``config.json``; empty for an
            operator of your own whose step names no model.
        input: the column read: strings for text tasks, encoded media for image and audio tasks. ``a.b`` reads
            field ``b`` of struct column ``a`` (for example ``transcript.text``).
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
    """Base of every task operator. Subclasses set ``task`` and ``defaults`` and write three methods.

    An operator of your own (a job's ``operator: module:Class``, or an installed entry point) is the same: a
    subclass that writes ``output_type()``, ``load()`` and ``annotate()``, and may set ``defaults`` and
    ``validate_options()``; ``task`` may stay unset, and its messages then name the class.
    """

    task: ClassVar[str] = ""
    """The built-in task this operator implements; empty for an operator of your own."""
    defaults: ClassVar[Mapping[str, Any]] = {}
    """Every option the task accepts, with its default. Any other key is an error naming the key."""

    batch_size: ClassVar[int] = 64
    """Rows per batch handed to an actor when the job does not say. Text encoders take more: they sort each batch
    by length, and a larger window means less padding."""

    uses_gpu: ClassVar[bool] = True
    """Whether the model benefits from a GPU; the runner asks for one only where the cluster has GPUs."""

    input_kind: ClassVar[str] = "text"
    """One of ``INPUT_KINDS``: what the input column must hold (checked in every shard's schema before a run)."""

    def __init__(self, config: OperatorConfig) -> None:
        kind = self.task or f"{type(self).__module__}:{type(self).__qualname__}"
        options = translate(self.task, config.options, f"step '{config.output}' ({kind})")
        if options != dict(config.options):
            config = replace(config, options=options)
        unknown = sorted(set(config.options) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise OptionError(
                f"step '{config.output}' ({kind}): unknown option(s) {', '.join(unknown)}; known options: {known}"
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

    def columns(self) -> tuple[str, ...]:
        """Every column this operator reads (the input, plus e.g. a question column)."""
        return (self.config.input,)

    def row_values(self, batch: pa.Table) -> list[Any]:
        """One value per row, handed to ``check`` and then (if accepted) to ``annotate`` or the preparer."""
        return column_values(batch, self.config.input)

    def check(self, value: Any) -> str | None:
        """A reason this row cannot be annotated (recorded as its error), else None. Default: by ``input_kind``."""
        name = self.config.input
        if value is None:
            return f"input column '{name}' is null"
        if self.input_kind == "text":
            if not isinstance(value, str):
                return f"input column '{name}' holds {type(value).__name__}, not a string"
            return self.refuse(value)
        if isinstance(value, dict):
            has_media = value.get("bytes") is not None or bool(value.get("path"))
            return None if has_media else f"input column '{name}' holds neither bytes nor a path"
        if not isinstance(value, bytes):
            return f"input column '{name}' holds {type(value).__name__}, not encoded {self.input_kind} bytes"
        return None

    def preparer(self) -> Preparer | None:
        """The CPU stage that decodes this operator's input ahead of the model, or None (text tasks)."""
        return None

    @abstractmethod
    def output_type(self) -> pa.DataType:
        """The Arrow type of the output column. May read the model's config, never its weights."""

    @abstractmethod
    def load(self) -> None:
        """Load the model and tokenizer onto the worker's device. Called once per worker."""

    @abstractmethod
    def annotate(self, texts: list[Any]) -> pa.Array:
        """Annotate accepted rows; return an array of ``output_type()`` with one value per row.

        Rows arrive as ``row_values`` made them (strings for text tasks) or, with a preparer, as its ``Prepared``.
        """

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
        errors: dict[int, str] = {}
        preparer = self._preparer()
        if preparer is None:
            values = self.row_values(batch)
            rows: list[int] = []
            for i, value in enumerate(values):
                reason = self.check(value)
                if reason is None:
                    rows.append(i)
                else:
                    errors[i] = reason
            items = [values[i] for i in rows]
        else:
            prepared = prepared_column(self.config.output)
            if prepared not in batch.column_names:
                batch = preparer(batch)  # run inline; the preparer records its own row errors
            blobs = batch.column(prepared).to_pylist()
            batch = batch.drop_columns([prepared])
            rows = [i for i, blob in enumerate(blobs) if blob is not None]
            items = [load_arrays(blobs[i]) for i in rows]
        annotated = self._annotate_isolating(items, rows, errors)
        column = scatter(annotated, rows, batch.num_rows, self.output_type())
        batch = set_column(batch, self.config.output, column)
        return add_errors(batch, self.config.output, errors)

    def _preparer(self) -> Preparer | None:
        if not hasattr(self, "_inline_preparer"):
            self._inline_preparer = self.preparer()
        return self._inline_preparer

    def _annotate_isolating(self, texts: list[Any], rows: list[int], errors: dict[int, str]) -> pa.Array:
        """Annotate the batch; if it fails, annotate row by row so only the failing rows get nulls."""
        if not texts:
            return pa.nulls(0, self.output_type())
        try:
            return self.annotate(texts)
        except RowFailures as failures:
            errors.update({rows[position]: reason for position, reason in failures.reasons.items()})
            return failures.array
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
            except RowFailures as failures:
                errors[row] = next(iter(failures.reasons.values()))
                parts.append(failures.array)
            except Exception as exc:  # noqa: BLE001 - the error is recorded on the row
                errors[row] = f"{type(exc).__name__}: {exc}"
                parts.append(pa.nulls(1, self.output_type()))
        return pa.concat_arrays(parts)


class Preparer(ABC):
    """A CPU stage ahead of a model: turns each row's input into ``Prepared`` arrays, once per row.

    Built by ``Operator.preparer()`` (cheap, picklable); ``setup()`` loads what it needs (an image processor, a
    feature extractor) once per worker. A row it cannot prepare (undecodable, empty or truncated media) gets a
    null in the prepared column and a row error under the step's name; the model stage skips it.
    """

    def __init__(self, operator: Operator) -> None:
        self.operator = operator
        self._ready = False

    @property
    def config(self) -> OperatorConfig:
        """The config of the operator this stage prepares for."""
        return self.operator.config

    def resources(self) -> Resources:
        """One CPU per preparing worker, never a GPU."""
        return Resources(num_cpus=1.0)

    def load(self) -> None:  # noqa: B027 - optional hook
        """Load the processor (never the model). Called once per worker."""

    @abstractmethod
    def prepare(self, value: Any) -> Prepared:
        """Prepare one accepted row; raise (``MediaError`` or any exception) to give the row an error."""

    def setup(self) -> None:
        """Load once; later calls do nothing."""
        if not self._ready:
            self.load()
            self._ready = True

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Return ``batch`` with the prepared column added and row errors recorded under the step's name."""
        self.setup()
        step = self.config.output
        values = self.operator.row_values(batch)
        errors: dict[int, str] = {}
        blobs: list[bytes | None] = []
        for i, value in enumerate(values):
            reason = self.operator.check(value)
            if reason is None:
                try:
                    blobs.append(save_arrays({k: np.ascontiguousarray(v) for k, v in self.prepare(value).items()}))
                    continue
                except Exception as exc:  # noqa: BLE001 - recorded on the row; the job goes on
                    reason = f"{type(exc).__name__}: {exc}"
            errors[i] = reason
            blobs.append(None)
        batch = set_column(batch, prepared_column(step), pa.array(blobs, pa.large_binary()))
        return add_errors(batch, step, errors)


def prepared_column(step: str) -> str:
    """The internal column that carries a step's prepared rows from its CPU stage to its model stage."""
    return f"__lakelabel_prepared__{step}"


def use_cpus(cpus: float) -> None:
    """Run torch's CPU kernels on as many threads as the worker was given CPUs (at least one)."""
    import torch  # noqa: PLC0415 - only model workers need torch; readers and writers import this module too

    torch.set_num_threads(max(1, int(cpus)))
