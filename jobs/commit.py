"""Exactly-once output: rows carry their shard and row number; a shard commits once all of its rows are back.

1. ``read_shard`` reads a shard in blocks, tagging each row with the shard's index and its row number.
2. ``stage`` (after the last step) writes each batch's rows, per shard, as a staged piece named by its row range,
   and returns which row ranges it staged.
3. ``Coverage`` (on the driver) adds up the ranges; a shard whose rows ``[0, n)`` are all staged is complete.
4. ``commit_shard`` reads the shard's pieces, keeps each row number once, restores row order, writes the shard's
   Parquet file in one atomic write, then its completion record, then removes the pieces.

A killed run leaves pieces and perhaps a shard file without a record: the next run redoes exactly those shards.
Nothing here knows Ray; the runner calls these from its stages.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import ipc

from jobs.layout import Layout, write_atomic
from operators import ERROR_COLUMN

if TYPE_CHECKING:
    import fsspec

SHARD_COLUMN = "__lakelabel_shard__"
ROW_COLUMN = "__lakelabel_row__"
_PIECE = ".arrow"


class CommitError(RuntimeError):
    """A shard's staged rows do not add up to the shard."""


class RowErrorStopError(RuntimeError):
    """A row error under ``on_error: raise``."""


def read_shard(
    fs: fsspec.AbstractFileSystem, path: str, index: int, columns: list[str] | None, block_rows: int
) -> Iterator[pa.Table]:
    """Blocks of at most ``block_rows`` rows of one shard, each row tagged with ``index`` and its row number."""
    first = 0
    with fs.open(path, "rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=block_rows, columns=columns, use_threads=False):
            rows = batch.num_rows
            table = pa.Table.from_batches([batch])
            table = table.append_column(SHARD_COLUMN, pa.array(np.full(rows, index, np.int32)))
            yield table.append_column(ROW_COLUMN, pa.array(np.arange(first, first + rows, dtype=np.int64)))
            first += rows


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


def stage(batch: pa.Table, layout: Layout, keys: list[str]) -> pa.Table:
    """Write ``batch`` as one staged piece per shard it holds; return ``shard`` and ``ranges`` of each piece."""
    shards, ranges = [], []
    for index in pc.unique(batch.column(SHARD_COLUMN)).to_pylist():
        piece = batch.filter(pc.equal(batch.column(SHARD_COLUMN), index)).sort_by(ROW_COLUMN)
        rows = piece.column(ROW_COLUMN).to_numpy()
        sink = io.BytesIO()
        with ipc.new_file(sink, piece.schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
            writer.write_table(piece)
        name = f"{layout.staging_dir(keys[index])}/{rows[0]:012d}-{rows[-1]:012d}{_PIECE}"
        write_atomic(layout.fs, name, sink.getvalue())
        shards.append(index)
        ranges.append(_ranges(rows))
    return pa.table({"shard": pa.array(shards, pa.int32()), "ranges": pa.array(ranges, pa.list_(pa.int64()))})


class Coverage:
    """Which rows of each shard are staged; says when a shard has all of them."""

    def __init__(self, rows: dict[int, int]) -> None:
        self.rows = rows
        self.seen: dict[int, list[tuple[int, int]]] = {}
        self.first_seen: dict[int, float] = {}

    def add(self, staged: pa.Table) -> list[int]:
        """Record staged ranges; return the shards that just became complete."""
        complete = []
        for shard, flat in zip(staged.column("shard").to_pylist(), staged.column("ranges").to_pylist(), strict=True):
            self.first_seen.setdefault(shard, time.time())
            spans = self.seen.setdefault(shard, [])
            was = self.covered(shard)
            spans.extend(zip(flat[::2], flat[1::2], strict=True))
            spans[:] = _merge(spans)
            if not was and self.covered(shard):
                complete.append(shard)
        return complete

    def covered(self, shard: int) -> bool:
        """True when rows ``[0, n)`` of the shard are all staged."""
        return self.seen.get(shard, []) == [(0, self.rows[shard])]

    def staged_rows(self, shard: int) -> int:
        """Distinct rows of the shard staged so far."""
        return sum(end - start for start, end in self.seen.get(shard, []))


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@dataclass
class ShardRecord:
    """The completion record of one shard: written after its data, read back by resume, status and the manifest."""

    key: str
    input: str
    input_bytes: int
    spec_hash: str
    run_id: str
    rows_in: int
    rows_out: int = 0
    row_errors: int = 0
    files: list[str] = field(default_factory=list)
    first_row_at: float | None = None
    committed_at: float = 0.0
    commit_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """As a JSON object."""
        return asdict(self)


def _read_pieces(fs: fsspec.AbstractFileSystem, directory: str) -> list[pa.Table]:
    if not fs.exists(directory):
        return []
    paths = sorted(path for path in fs.find(directory) if path.endswith(_PIECE))
    return [ipc.open_file(pa.BufferReader(data)).read_all() for data in fs.cat(paths).values()] if paths else []


def commit_shard(layout: Layout, record: ShardRecord, columns: list[str]) -> ShardRecord:
    """Assemble a complete shard from its pieces, write its Parquet file and then its record.

    ``columns`` are the output's columns in order (the shard's own, then each step's, then the error column).
    Raises ``CommitError`` if the pieces do not hold every row number of the shard exactly.
    """
    started = time.perf_counter()
    staging = layout.staging_dir(record.key)
    pieces = _read_pieces(layout.fs, staging)
    if record.rows_in:
        table = pa.concat_tables(pieces, promote_options="default").sort_by(ROW_COLUMN)
        rows = table.column(ROW_COLUMN).to_numpy()
        _, first = np.unique(rows, return_index=True)
        if len(first) != len(rows):
            table = table.take(pa.array(first))  # a row staged twice (a retried task) is kept once
        if table.num_rows != record.rows_in or rows[first[-1]] != record.rows_in - 1:
            raise CommitError(
                f"{record.input}: {table.num_rows} distinct row(s) staged, the shard has {record.rows_in}"
            )
        table = table.select([name for name in columns if name in table.column_names])
        sink = io.BytesIO()
        pq.write_table(table, sink)
        write_atomic(layout.fs, layout.output_file(record.key), sink.getvalue())
        record.rows_out = table.num_rows
        record.row_errors = row_errors(table)
        record.files = [f"{record.key}.parquet"]  # relative to the output prefix
    record.committed_at = time.time()
    record.commit_seconds = time.perf_counter() - started
    layout.write_json(layout.record_file(record.key), record.to_json())
    layout.remove(staging, recursive=True)
    return record
