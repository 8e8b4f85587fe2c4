"""Reading a commit unit: its parts' rows in blocks, each row tagged with its part and its row number in it.

Example::

    for block in read_unit(fs, [(0, part)], columns=None, block_rows=4096, unreadable=report):
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakelabel.jobs.lake.storage import StorageError, whole_kwargs
from lakelabel.jobs.records import ROW_COLUMN, SHARD_COLUMN

if TYPE_CHECKING:
    import fsspec

    from lakelabel.jobs.lake.units import Part


BLOCK_BYTES = 32 << 20
"""Target in-memory size of a read block."""


def block_rows(parts: list[Part]) -> int:
    """Rows per read block for a unit of ``parts``: about ``BLOCK_BYTES`` in memory (Parquet grows ~4x decoded)."""
    rows = sum(part.shard.rows for part in parts)
    size = sum(part.shard.bytes for part in parts)
    return max(64, min(8192, BLOCK_BYTES * max(rows, 1) // max(size * 4, 1)))


def _tag(batch: pa.RecordBatch | pa.Table, index: int, first: int) -> pa.Table:
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    rows = table.num_rows
    table = table.append_column(SHARD_COLUMN, pa.array(np.full(rows, index, np.int32)))
    return table.append_column(ROW_COLUMN, pa.array(np.arange(first, first + rows, dtype=np.int64)))


def read_shard(
    fs: fsspec.AbstractFileSystem,
    path: str,
    index: int,
    columns: list[str] | None,
    block_rows: int,
    *,
    row_groups: list[int] | None = None,
    size: int | None = None,
) -> Iterator[pa.Table]:
    """Blocks of at most ``block_rows`` rows of one file (or of its ``row_groups``), tagged with ``index``.

    Row numbers count from the first row read. ``size``: the file's size, known from planning (spares a request).
    """
    first = 0
    with fs.open(path, "rb", **({"size": size} if size is not None else {})) as handle:
        batches = pq.ParquetFile(handle).iter_batches(
            batch_size=block_rows, row_groups=row_groups, columns=columns, use_threads=False
        )
        for batch in batches:
            yield _tag(batch, index, first)
            first += batch.num_rows


def read_unit(
    fs: fsspec.AbstractFileSystem,
    parts: list[tuple[int, Part]],
    columns: list[str] | None,
    block_rows: int,
    unreadable: Callable[[int, Exception], None],
) -> Iterator[pa.Table]:
    """Blocks of a unit's parts ``(index, part)``, tagged like :func:`read_shard`.

    A bundle's small files are fetched concurrently, each read whole, and packed into blocks of about
    ``block_rows`` rows. A part that cannot be read is passed to ``unreadable`` (which raises, or records it) and
    left out; a failing store (``StorageError``) stops the read.
    """
    if len(parts) == 1:
        index, part = parts[0]
        try:
            yield from read_shard(
                fs, part.path, index, columns, block_rows, row_groups=part.row_groups(), size=part.shard.bytes
            )
        except StorageError:
            raise
        except (OSError, pa.ArrowException) as exc:
            unreadable(index, exc)
        return
    fetched = fs.cat([part.path for _, part in parts], on_error="return", **whole_kwargs(fs))
    held: list[pa.Table] = []
    for index, part in parts:
        data = fetched.get(part.path, FileNotFoundError(part.path))
        try:
            if isinstance(data, Exception):
                raise data
            table = pq.read_table(pa.BufferReader(data), columns=columns, use_threads=False)
        except StorageError:
            raise
        except (OSError, pa.ArrowException) as exc:
            unreadable(index, exc)
            continue
        held.append(_tag(table, index, 0))
        if sum(table.num_rows for table in held) >= block_rows:
            yield pa.concat_tables(held, promote_options="default")
            held = []
    if held:
        yield pa.concat_tables(held, promote_options="default")
