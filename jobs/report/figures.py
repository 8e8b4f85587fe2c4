"""The figures of a report, computed by streaming an output's Parquet files: per step, per error message, per shard.

What a step's column holds is read from its Arrow type (the types ``transformers.pipeline()``'s fields give, see
docs/tasks.md), so every task gets the figures that fit it:

* a label (``label`` / ``labels[0]`` / the first of a ranked list's ``label`` / fill-mask's ``token_str``) and its
  ``score``: label counts and a score histogram (the best of each row);
* entities (``entity_group``) or detections (``label`` with a ``box``): counts per type, a histogram of every
  entity's score and of entities per row;
* generated text (``generated_text``, ``summary_text``, ``translation_text``, a transcript's ``text``, an answer):
  a histogram of lengths in characters (and of answer scores);
* embeddings (a fixed-size list of floats): a histogram of their L2 norms.

Histograms have :data:`BINS` equal bins from the series' minimum to its maximum, the last bin closed; a value
``x`` falls in bin ``min(floor((x - min) / (max - min) * BINS), BINS - 1)`` (bin 0 when all values are equal).
Two passes read the files: the first finds counts, extremes and sums, the second fills the bins. Memory is
bounded by one batch of rows and by the number of distinct labels and messages kept (:data:`DISTINCT`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakelabel.jobs.output.commit import row_errors
from lakelabel.operators.core.columns import ERROR_COLUMN

__all__ = ["BINS", "DISTINCT", "Figures", "Series", "StepFigures", "kind_of"]

BINS = 20
DISTINCT = 1000
"""Distinct labels (or error messages) counted one by one per step; the rest are summed under :data:`OTHER`."""
OTHER = "(other)"
TEXT_FIELDS = ("generated_text", "summary_text", "translation_text", "text", "answer")


@dataclass
class Series:
    """A numeric series: count, extremes and mean after the first pass, the histogram after the second."""

    count: int = 0
    min: float = math.inf
    max: float = -math.inf
    total: float = 0.0
    bins: list[int] = field(default_factory=list)

    def observe(self, values: np.ndarray) -> None:
        """First pass: count and extremes."""
        if values.size:
            self.count += int(values.size)
            self.min = min(self.min, float(values.min()))
            self.max = max(self.max, float(values.max()))
            self.total += float(values.sum())

    def fill(self, values: np.ndarray) -> None:
        """Second pass: the histogram."""
        if not self.bins:
            self.bins = [0] * BINS
        if not values.size:
            return
        span = self.max - self.min
        index = np.zeros(values.size, np.int64) if span <= 0 else np.floor((values - self.min) / span * BINS)
        index = np.clip(index.astype(np.int64), 0, BINS - 1)
        for position, hits in zip(*np.unique(index, return_counts=True), strict=True):
            self.bins[int(position)] += int(hits)

    def to_json(self) -> dict[str, Any]:
        """As JSON: ``edges`` has ``len(bins) + 1`` values."""
        if not self.count:
            return {"count": 0, "min": None, "max": None, "mean": None, "edges": [], "bins": []}
        span = self.max - self.min
        edges = [self.min + span * i / BINS for i in range(BINS + 1)] if span > 0 else [self.min, self.max]
        bins = self.bins if span > 0 else [self.count]
        return {
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": self.total / self.count,
            "edges": edges,
            "bins": bins,
        }


def _numbers(array: pa.Array) -> np.ndarray:
    return pc.drop_null(array).to_numpy(zero_copy_only=False).astype(np.float64)


def _first(lists: pa.Array) -> pa.Array:
    """The first element of every non-empty list."""
    return pc.list_flatten(pc.list_slice(lists, 0, 1))


def _fields(kind: pa.DataType) -> set[str]:
    return {kind.field(i).name for i in range(kind.num_fields)} if pa.types.is_struct(kind) else set()


_STRUCT_KINDS = ((("label", "score"), "label"), (("labels", "scores"), "zero-shot"), (("answer", "score"), "answer"))
_LIST_KINDS = (
    (("entity_group",), "entities"),
    (("entity",), "entities"),
    (("box",), "detections"),
    (("token_str",), "fill-mask"),
    (("label", "score"), "ranked"),
    (("answer", "score"), "answers"),
)


def _match(names: set[str], kinds: tuple[tuple[tuple[str, ...], str], ...], text: str) -> str | None:
    found = next((kind for needed, kind in kinds if set(needed) <= names), None)
    return found or (text if names & set(TEXT_FIELDS) else None)


def kind_of(column: pa.DataType) -> str:
    """What a step column holds, from its Arrow type.

    One of ``label``, ``ranked``, ``zero-shot``, ``entities``, ``detections``, ``fill-mask``, ``answer``,
    ``answers``, ``text``, ``texts``, ``embedding`` or ``other``.
    """
    if pa.types.is_fixed_size_list(column) and pa.types.is_floating(column.value_type):
        return "embedding"
    kind = _match(_fields(column), _STRUCT_KINDS, "text")
    if kind is None and (pa.types.is_list(column) or pa.types.is_large_list(column)):
        kind = _match(_fields(column.value_type), _LIST_KINDS, "texts")
    return kind or "other"


def _text_field(kind: pa.DataType) -> str:
    return next(name for name in TEXT_FIELDS if name in _fields(kind))


def _bounded(counter: Counter[str], counts: Iterable[tuple[str | None, int]]) -> None:
    for value, hits in counts:
        key = value if value is not None else "(null)"
        if key in counter or len(counter) < DISTINCT:
            counter[key] += hits
        else:
            counter[OTHER] += hits


def _value_counts(array: pa.Array) -> Iterator[tuple[str | None, int]]:
    if not len(array):
        return
    counted = pc.value_counts(array)
    yield from zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True)


Extract = Callable[[pa.Array], tuple[pa.Array | None, dict[str, np.ndarray]]]
"""From a step's column (nulls dropped): the labels to count, and the numeric series by name."""


def _extractor(kind: str, column: pa.DataType) -> Extract:  # noqa: PLR0911 - one branch per kind
    def lengths(texts: pa.Array) -> np.ndarray:
        return _numbers(pc.utf8_length(texts))

    if kind == "label":
        return lambda a: (pc.struct_field(a, "label"), {"score": _numbers(pc.struct_field(a, "score"))})
    if kind == "ranked":
        return lambda a: (pc.struct_field(_first(a), "label"), {"score": _numbers(pc.struct_field(_first(a), "score"))})
    if kind == "fill-mask":
        return lambda a: (
            pc.struct_field(_first(a), "token_str"),
            {"score": _numbers(pc.struct_field(_first(a), "score"))},
        )
    if kind == "zero-shot":
        return lambda a: (
            _first(pc.struct_field(a, "labels")),
            {"score": _numbers(_first(pc.struct_field(a, "scores")))},
        )
    if kind in {"entities", "detections"}:
        name = "label" if kind == "detections" else "entity_group"
        if name not in _fields(column.value_type):
            name = "entity"
        return lambda a: (
            pc.struct_field(pc.list_flatten(a), name),
            {
                "score": _numbers(pc.struct_field(pc.list_flatten(a), "score")),
                "per_row": _numbers(pc.list_value_length(a)),
            },
        )
    if kind in {"answer", "answers"}:
        best = _first if kind == "answers" else (lambda a: a)
        return lambda a: (
            None,
            {
                "score": _numbers(pc.struct_field(best(a), "score")),
                "length": lengths(pc.struct_field(best(a), "answer")),
            },
        )
    if kind == "text":
        text = _text_field(column)
        return lambda a: (None, {"length": lengths(pc.struct_field(a, text))})
    if kind == "texts":
        text = _text_field(column.value_type)
        return lambda a: (None, {"length": lengths(pc.struct_field(_first(a), text))})
    if kind == "embedding":
        width = column.list_size

        def norms(a: pa.Array) -> tuple[None, dict[str, np.ndarray]]:
            values = pc.list_flatten(a).to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, width)
            return None, {"norm": np.sqrt(np.einsum("ij,ij->i", values, values))}

        return norms
    return lambda _: (None, {})


@dataclass
class StepFigures:
    """One step: rows, null annotations, label counts and numeric series."""

    name: str
    task: str
    kind: str
    rows: int = 0
    nulls: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    series: dict[str, Series] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        """As JSON; labels and error messages most frequent first (ties by name)."""
        return {
            "name": self.name,
            "task": self.task,
            "kind": self.kind,
            "rows": self.rows,
            "nulls": self.nulls,
            "labels": dict(sorted(self.labels.items(), key=lambda item: (-item[1], item[0]))),
            "series": {name: series.to_json() for name, series in sorted(self.series.items())},
            "errors": dict(sorted(self.errors.items(), key=lambda item: (-item[1], item[0]))),
            "rows_with_errors": sum(self.errors.values()),
        }


@dataclass
class Figures:
    """Every step's figures over all rows of the output; built by :meth:`first_pass` then :meth:`second_pass`."""

    steps: list[StepFigures]
    rows: int = 0
    rows_with_errors: int = 0
    extractors: dict[str, Extract] = field(default_factory=dict)

    @classmethod
    def for_schema(cls, schema: pa.Schema, tasks: dict[str, str]) -> Figures:
        """Figures for the steps ``tasks`` (output column -> task) found in ``schema``."""
        steps, extractors = [], {}
        for name, task in tasks.items():
            kind = kind_of(schema.field(name).type) if name in schema.names else "other"
            steps.append(StepFigures(name=name, task=task, kind=kind))
            if name in schema.names:
                extractors[name] = _extractor(kind, schema.field(name).type)
        return cls(steps=steps, extractors=extractors)

    @property
    def columns(self) -> list[str]:
        """The columns the passes read."""
        return [*self.extractors, ERROR_COLUMN]

    def first_pass(self, batch: pa.RecordBatch) -> None:
        """Count rows, nulls, labels, errors; observe the series' extremes."""
        self.rows += batch.num_rows
        names = batch.schema.names
        errors = batch.column(names.index(ERROR_COLUMN)) if ERROR_COLUMN in names else None
        if errors is not None:
            self.rows_with_errors += row_errors(batch)
            flat = pc.list_flatten(errors)
            pairs = pc.binary_join_element_wise(pc.struct_field(flat, "step"), pc.struct_field(flat, "message"), "\0")
            per_step: dict[str, Counter[str]] = {}
            for pair, hits in _value_counts(pairs):
                step, message = (pair or "\0").split("\0", 1)
                _bounded(per_step.setdefault(step, Counter()), [(message, hits)])
        for step in self.steps:
            step.rows += batch.num_rows
            if errors is not None:
                _bounded(step.errors, per_step.get(step.name, Counter()).items())
            if step.name not in self.extractors:
                continue
            column = batch.column(names.index(step.name))
            step.nulls += column.null_count
            labels, series = self.extractors[step.name](pc.drop_null(column))
            if labels is not None:
                _bounded(step.labels, _value_counts(labels))
            for name, values in series.items():
                step.series.setdefault(name, Series()).observe(values)

    def second_pass(self, batch: pa.RecordBatch) -> None:
        """Fill the histograms."""
        names = batch.schema.names
        for step in self.steps:
            if step.name not in self.extractors:
                continue
            _, series = self.extractors[step.name](pc.drop_null(batch.column(names.index(step.name))))
            for name, values in series.items():
                step.series[name].fill(values)

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "rows": self.rows,
            "rows_with_errors": self.rows_with_errors,
            "steps": [step.to_json() for step in self.steps],
        }
