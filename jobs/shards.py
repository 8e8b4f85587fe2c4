"""Finding input shards and reading their Parquet footers: rows, bytes and schema, without reading data.

This runs before any model loads, so a missing column or an unreadable shard is reported by path at once.
"""

from __future__ import annotations

import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import fsspec

_GLOB = set("*?[")


class ShardError(RuntimeError):
    """Input shards are missing or unusable; the message lists each shard path with its problem."""


@dataclass(frozen=True)
class Shard:
    """One Parquet file of the input."""

    path: str
    rows: int
    bytes: int
    schema: pa.Schema


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_null(type_)


def _is_binary(type_: pa.DataType) -> bool:
    return pa.types.is_binary(type_) or pa.types.is_large_binary(type_) or pa.types.is_null(type_)


def _is_media(type_: pa.DataType) -> bool:
    """Encoded bytes, or the ``struct<bytes, path>`` of ``datasets``' Image and Audio features."""
    if pa.types.is_struct(type_):
        index = type_.get_field_index("bytes")
        return index >= 0 and _is_binary(type_.field(index).type)
    return _is_binary(type_)


_KIND_CHECKS = {"text": (_is_text, "a string"), "image": (_is_media, "encoded image bytes or struct<bytes, path>"),
                "audio": (_is_media, "encoded audio bytes or struct<bytes, path>")}  # fmt: skip


def _type_conflicts(shards: list[Shard], columns: list[str]) -> list[str]:
    """Columns whose type differs between shards (e.g. raw bytes in one, ``struct<bytes, path>`` in another)."""
    problems = []
    for column in columns:
        by_type: dict[str, list[str]] = {}
        for shard in shards:
            if column in shard.schema.names and not pa.types.is_null(type_ := shard.schema.field(column).type):
                by_type.setdefault(str(type_), []).append(shard.path)
        if len(by_type) > 1:
            kinds = "; ".join(f"{type_} in {', '.join(paths)}" for type_, paths in sorted(by_type.items()))
            problems.append(f"column '{column}' has different types across shards: {kinds}")
    return problems


def list_shards(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    """Parquet files under a directory or prefix, matching a glob, or the single file named; sorted."""
    if _GLOB & set(path):
        found = fs.glob(path)
    elif fs.isfile(path):
        return [path]
    else:
        found = fs.find(path)
    return sorted(
        item for item in found if item.endswith(".parquet") and not posixpath.basename(item).startswith(("_", "."))
    )


def read_footer(fs: fsspec.AbstractFileSystem, path: str) -> Shard:
    """Rows, size and schema of one shard from its footer."""
    with fs.open(path, "rb") as handle:
        metadata = pq.ParquetFile(handle).metadata
        return Shard(path=path, rows=metadata.num_rows, bytes=fs.size(path), schema=metadata.schema.to_arrow_schema())


def inspect_shards(
    fs: fsspec.AbstractFileSystem, path: str, uri: str, columns: list[str], kinds: dict[str, str]
) -> list[Shard]:
    """Read every footer; check ``columns`` exist and hold what ``kinds`` says. One error lists every bad shard.

    ``kinds`` maps a column to ``text``, ``image`` or ``audio`` (strings, or encoded media).
    """
    paths = list_shards(fs, path)
    if not paths:
        raise ShardError(f"input.uri: no Parquet shards (*.parquet) found at {uri}")
    problems: list[str] = []

    def check(shard_path: str) -> Shard | None:
        try:
            shard = read_footer(fs, shard_path)
        except (OSError, pa.ArrowException) as exc:
            problems.append(f"{shard_path}: unreadable Parquet: {exc}")
            return None
        for column in columns:
            if column not in shard.schema.names:
                problems.append(f"{shard_path}: column '{column}' is missing (has: {', '.join(shard.schema.names)})")
            elif column in kinds:
                accepts, wanted = _KIND_CHECKS[kinds[column]]
                type_ = shard.schema.field(column).type
                if not accepts(type_):
                    problems.append(f"{shard_path}: column '{column}' is {type_}, not {wanted}")
        return shard

    with ThreadPoolExecutor(max_workers=16) as pool:
        shards = [shard for shard in pool.map(check, paths) if shard is not None]
    problems += _type_conflicts(shards, columns)
    if problems:
        raise ShardError("bad input shards:\n  " + "\n  ".join(sorted(problems)))
    return shards
