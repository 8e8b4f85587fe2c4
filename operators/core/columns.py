"""Arrow columns of an annotated batch: reading an input column, placing an output, the per-row error column."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

ERROR_COLUMN = "lakelabel_errors"
"""Per-row errors of every step: ``list<struct<step: string, message: string>>``, empty when the row is clean."""

ERROR_TYPE = pa.list_(pa.struct([("step", pa.string()), ("message", pa.string())]))


def column_values(batch: pa.Table, name: str) -> list[Any]:
    """The values of column ``name``; ``a.b`` reads field ``b`` of struct column ``a`` (nested as deep as needed)."""
    if name in batch.column_names:
        return batch.column(name).to_pylist()
    head, _, rest = name.partition(".")
    if not rest or head not in batch.column_names:
        raise KeyError(f"input column '{name}' is not in the batch (has: {', '.join(batch.column_names)})")
    values = batch.column(head).to_pylist()
    for part in rest.split("."):
        values = [value.get(part) if isinstance(value, dict) else None for value in values]
    return values


def equal_lists(flat: pa.Array, width: int) -> pa.ListArray:
    """Cut ``flat`` into consecutive lists of ``width`` values each (one list per row)."""
    offsets = pa.array(range(0, len(flat) + 1, width), pa.int32())
    return pa.ListArray.from_arrays(offsets, flat)


def scatter(values: pa.Array, rows: list[int], length: int, type_: pa.DataType) -> pa.Array:
    """Place ``values`` at ``rows`` of a column of ``length`` rows; every other row is null."""
    if len(rows) == length:
        return values
    null_slot = len(values)
    indices = [null_slot] * length
    for position, row in enumerate(rows):
        indices[row] = position
    padded = pa.concat_arrays([values.cast(type_), pa.nulls(1, type_)])
    return padded.take(pa.array(indices, pa.int64()))


def set_column(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    """``table`` with column ``name`` replaced in place, or appended when it is new."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


def add_errors(table: pa.Table, step: str, errors: dict[int, str]) -> pa.Table:
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
