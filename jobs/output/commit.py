"""Exactly-once output: rows carry their part and row number; a commit unit commits once all of its rows are back.

A *part* is a whole input file or a row-group range of a big one; a *unit* is one part or a bundle of small files
(``jobs/lake/units.py``). Each part becomes one output file and one completion record; each unit is one read, one
commit and one record object.

1. ``read_unit`` (``jobs/lake/reading.py``) reads a unit in blocks, tagging each row with its part's index and its row
   number in the part.
2. ``stage`` (after the last step) commits at once each unit the batch holds whole (no staging round trip);
   of any other unit it writes the batch's rows as one staged piece, and returns which row ranges it staged.
3. ``Coverage`` (on the driver) adds up the ranges; a part whose rows ``[0, n)`` are all staged is complete, and a
   unit whose parts are all complete is committed by ``commit_unit``.
4. Committing reads the unit's pieces, keeps each row number once, restores row order, writes each part's Parquet
   file in one atomic write, then the unit's record object (all its parts' records), then removes the pieces.

A killed run leaves pieces and perhaps part files without a record: the next run redoes exactly those parts.
Nothing here knows Ray; the runner calls these from its stages.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import ipc

from lakelabel.jobs.output.layout import Layout, write_atomic, write_atomic_many
from lakelabel.jobs.records import ROW_COLUMN, SHARD_COLUMN, ShardRecord
from lakelabel.operators import ERROR_COLUMN

if TYPE_CHECKING:
    import fsspec

    from lakelabel.jobs.lake.units import Unit

_PIECE = ".arrow"


class CommitError(RuntimeError):
    """A shard's staged rows do not add up to the shard."""


class RowErrorStopError(RuntimeError):
    """A row error under ``on_error: raise``."""


def _ranges(rows: np.ndarray) -> list[int]:
    """Sorted row numbers as flattened ``[start, end)`` pairs: ``[0, 1, 2, 7, 8]`` -> ``[0, 3, 7, 9]``."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [len(rows)]))
    return [int(v) for pair in zip(rows[starts], rows[ends - 1] + 1, strict=True) for v in pair]


def row_errors(batch: pa.Table, step: str | None = None) -> int:
    """Rows of ``batch`` carrying an error of ``step`` (any step when None)."""
    if ERROR_COLUMN not in batch.column_names or batch.num_rows == 0:
        return 0
    column = batch.column(ERROR_COLUMN)
    if step is None:
        return int(pc.sum(pc.greater(pc.list_value_length(column), 0)).as_py() or 0)
    steps = pc.struct_field(pc.list_flatten(column), "step")
    return int(pc.sum(pc.equal(steps, step)).as_py() or 0)


def first_row_error(batch: pa.Table, paths: list[str]) -> str | None:
    """The first row error of ``batch`` as ``shard row N: step 'x': message``, or None."""
    if ERROR_COLUMN not in batch.column_names:
        return None
    for errors, shard, row in zip(
        batch.column(ERROR_COLUMN).to_pylist(),
        batch.column(SHARD_COLUMN).to_pylist(),
        batch.column(ROW_COLUMN).to_pylist(),
        strict=True,
    ):
        if errors:
            return f"{paths[shard]} row {row}: step '{errors[0]['step']}': {errors[0]['message']}"
    return None


@dataclass(frozen=True)
class Units:
    """What staging and committing need to know of the run's units; cheap to ship to tasks.

    Parts are numbered over the whole run (the number rows carry); ``members[u]`` are unit ``u``'s parts.
    """

    keys: list[str]
    members: list[list[int]]
    records: list[ShardRecord]
    """A record to fill, per part."""
    columns: list[list[str]]
    column_of: list[int]
    """Per part, its output columns: an index into ``columns``."""

    @classmethod
    def of(cls, units: list[Unit], records: list[ShardRecord], columns: list[list[str]]) -> Units:
        """From the run's units, one record and one column list per part (numbered in unit order)."""
        members, index = [], 0
        for unit in units:
            members.append(list(range(index, index + len(unit.parts))))
            index += len(unit.parts)
        distinct: dict[tuple[str, ...], int] = {}
        column_of = [distinct.setdefault(tuple(names), len(distinct)) for names in columns]
        return cls([unit.key for unit in units], members, records, [list(names) for names in distinct], column_of)

    def unit_of(self) -> np.ndarray:
        """The unit of each part."""
        found = np.zeros(len(self.records), np.int32)
        for unit, parts in enumerate(self.members):
            found[parts] = unit
        return found


def stage(batch: pa.Table, layout: Layout, units: Units) -> pa.Table:
    """Commit each unit ``batch`` holds whole; stage the rows of every other unit it holds as one piece per unit.

    Returns one row per staged part (``part``, its ``ranges``) and one per unit committed here (``part`` its
    first part, ``committed`` its records as JSON).
    """
    parts, ranges, committed = [], [], []
    unit_ids = units.unit_of()[batch.column(SHARD_COLUMN).to_numpy()]
    for unit in np.unique(unit_ids).tolist():
        piece = batch.filter(pa.array(unit_ids == unit)).sort_by(
            [(SHARD_COLUMN, "ascending"), (ROW_COLUMN, "ascending")]
        )
        if _whole(piece, units, unit):
            records = _commit_table(layout, units, unit, piece)
            parts.append(units.members[unit][0])
            ranges.append([])
            committed.append(json.dumps([record.to_json() for record in records]))
            continue
        numbers, rows = piece.column(SHARD_COLUMN).to_numpy(), piece.column(ROW_COLUMN).to_numpy()
        sink = io.BytesIO()
        with ipc.new_file(sink, piece.schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
            writer.write_table(piece)
        name = f"{numbers[0]:08d}.{rows[0]:012d}-{numbers[-1]:08d}.{rows[-1]:012d}{_PIECE}"
        write_atomic(layout.fs, f"{layout.staging_dir(units.keys[unit])}/{name}", sink.getvalue())
        bounds = np.flatnonzero(np.diff(numbers)) + 1
        for start, end in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [len(numbers)])), strict=True):
            parts.append(int(numbers[start]))
            ranges.append(_ranges(rows[start:end]))
            committed.append(None)
    return pa.table(
        {
            "part": pa.array(parts, pa.int32()),
            "ranges": pa.array(ranges, pa.list_(pa.int64())),
            "committed": pa.array(committed, pa.string()),
        }
    )


def _whole(piece: pa.Table, units: Units, unit: int) -> bool:
    """Whether ``piece`` (sorted by part and row) holds every row of every part of ``unit``."""
    numbers, rows = piece.column(SHARD_COLUMN).to_numpy(), piece.column(ROW_COLUMN).to_numpy()
    for part in units.members[unit]:
        start, end = np.searchsorted(numbers, [part, part + 1])
        if len(np.unique(rows[start:end])) != units.records[part].rows_in:
            return False
    return True


class Coverage:
    """Which rows of each part are staged; says when a part has all of them."""

    def __init__(self, rows: dict[int, int]) -> None:
        self.rows = rows
        self.seen: dict[int, list[tuple[int, int]]] = {}
        self.first_seen: dict[int, float] = {}

    def add(self, staged: pa.Table) -> list[int]:
        """Record staged ranges; return the parts that just became complete."""
        complete = []
        for shard, flat in zip(staged.column("part").to_pylist(), staged.column("ranges").to_pylist(), strict=True):
            self.first_seen.setdefault(shard, time.time())
            spans = self.seen.setdefault(shard, [])
            was = self.covered(shard)
            spans.extend(zip(flat[::2], flat[1::2], strict=True))
            spans[:] = _merge(spans)
            if not was and self.covered(shard):
                complete.append(shard)
        return complete

    def covered(self, shard: int) -> bool:
        """True when rows ``[0, n)`` of the part are all staged."""
        return self.seen.get(shard, []) == [(0, self.rows[shard])]

    def staged_rows(self, shard: int) -> int:
        """Distinct rows of the part staged so far."""
        return sum(end - start for start, end in self.seen.get(shard, []))


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _read_pieces(fs: fsspec.AbstractFileSystem, directory: str) -> list[pa.Table]:
    if not fs.exists(directory):
        return []
    paths = sorted(path for path in fs.find(directory) if path.endswith(_PIECE))
    return [ipc.open_file(pa.BufferReader(data)).read_all() for data in fs.cat(paths).values()] if paths else []


def write_records(layout: Layout, key: str, records: list[ShardRecord]) -> None:
    """Write a unit's record object: a lone part's record as it is, a bundle's records in one object."""
    if len(records) == 1 and records[0].key == key:
        layout.write_json(layout.record_file(key), records[0].to_json())
    else:
        layout.write_json(layout.record_file(key), {"unit": key, "records": [record.to_json() for record in records]})


def _commit_table(
    layout: Layout, units: Units, unit: int, table: pa.Table, *, skip: frozenset[int] = frozenset()
) -> list[ShardRecord]:
    """Write each part of ``unit`` from ``table`` (its rows, sorted by part and row), then the unit's records.

    ``skip``: parts found unreadable, left out. Raises ``CommitError`` if a part's rows are not all there exactly.
    """
    started = time.perf_counter()
    key = units.keys[unit]
    numbers = table.column(SHARD_COLUMN).to_numpy() if table.num_rows else np.zeros(0, np.int32)
    files: dict[str, bytes] = {}
    records = []
    for part in units.members[unit]:
        if part in skip:
            continue
        record = ShardRecord(**units.records[part].to_json())
        record.unit = key
        if record.rows_in:
            start, end = np.searchsorted(numbers, [part, part + 1])
            rows_table = table.slice(start, end - start)
            rows = rows_table.column(ROW_COLUMN).to_numpy()
            _, first = np.unique(rows, return_index=True)
            if len(first) != len(rows):
                rows_table = rows_table.take(pa.array(first))  # a row staged twice (a retried task) is kept once
            if rows_table.num_rows != record.rows_in or rows[first[-1]] != record.rows_in - 1:
                raise CommitError(
                    f"{_where(record)}: {rows_table.num_rows} distinct row(s) staged, it has {record.rows_in}"
                )
            columns = units.columns[units.column_of[part]]
            rows_table = rows_table.select([name for name in columns if name in rows_table.column_names])
            sink = io.BytesIO()
            pq.write_table(rows_table, sink)
            files[layout.output_file(record.key)] = sink.getvalue()
            record.rows_out = rows_table.num_rows
            record.row_errors = row_errors(rows_table)
            record.files = [f"{record.key}.parquet"]  # relative to the output prefix
        records.append(record)
    write_atomic_many(layout.fs, files)
    now, seconds = time.time(), time.perf_counter() - started
    for record in records:
        record.committed_at, record.commit_seconds = now, seconds
    write_records(layout, key, records)
    return records


def _where(record: ShardRecord) -> str:
    if record.row_groups is None:
        return f"{record.input}"
    return f"{record.input} row groups {record.row_groups[0]}..{record.row_groups[1] - 1}"


def commit_unit(
    layout: Layout,
    units: Units,
    unit: int,
    *,
    skip: frozenset[int] = frozenset(),
    first_rows: dict[int, float] | None = None,
) -> list[ShardRecord]:
    """Assemble a complete unit from its staged pieces, write its parts' Parquet files and then its records.

    ``skip``: parts found unreadable, left out. ``first_rows``: when each part's first rows were staged.
    Raises ``CommitError`` if the pieces do not hold every row number of a part exactly.
    """
    staging = layout.staging_dir(units.keys[unit])
    pieces = _read_pieces(layout.fs, staging)
    table = (
        pa.concat_tables(pieces, promote_options="default").sort_by(
            [(SHARD_COLUMN, "ascending"), (ROW_COLUMN, "ascending")]
        )
        if pieces
        else pa.table({SHARD_COLUMN: pa.array([], pa.int32()), ROW_COLUMN: pa.array([], pa.int64())})
    )
    for part, at in (first_rows or {}).items():
        units.records[part].first_row_at = at
    records = _commit_table(layout, units, unit, table, skip=skip)
    layout.remove(staging, recursive=True)
    return records
