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

from lakelabel.jobs.lake.storage import StorageError, whole_kwargs

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
    groups: tuple[tuple[int, int], ...] = ()
    """Rows and compressed bytes of each row group, in order (what a big file is split by)."""


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


def _type_conflicts(shards: list[Shard], columns: list[str]) -> dict[str, str]:
    """Shards whose column type differs from the other shards' (e.g. raw bytes here, ``struct<bytes, path>`` there).

    The type most shards hold is the column's type (on a tie, the first shard's); each other shard gets a reason.
    """
    order = {shard.path: index for index, shard in enumerate(shards)}
    problems: dict[str, str] = {}
    for column in columns:
        by_type: dict[str, list[str]] = {}
        for shard in shards:
            if column in shard.schema.names and not pa.types.is_null(type_ := shard.schema.field(column).type):
                by_type.setdefault(str(type_), []).append(shard.path)
        if len(by_type) < 2:
            continue
        kinds = "; ".join(f"{type_} in {', '.join(paths)}" for type_, paths in sorted(by_type.items()))
        common = max(by_type, key=lambda type_: (len(by_type[type_]), -order[by_type[type_][0]]))
        for type_, paths in by_type.items():
            for path in paths if type_ != common else ():
                problems.setdefault(path, f"column '{column}' has different types across shards: {kinds}")
    return problems


def is_file(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """Whether ``path`` is a file; unlike ``fs.isfile``, a storage error is raised, not taken for "no"."""
    try:
        return fs.info(path)["type"] == "file"
    except FileNotFoundError:
        return False


def list_shards(fs: fsspec.AbstractFileSystem, path: str, *, sizes: dict[str, int] | None = None) -> list[str]:
    """Parquet files under a directory or prefix, matching a glob, or the single file named; sorted.

    ``sizes``, when given, is filled with each file's size from the listing (so reading a footer needs no HEAD).
    """
    if _GLOB & set(path):
        found = fs.glob(path, detail=True)
    elif is_file(fs, path):
        return [path]
    else:
        found = fs.find(path, detail=True)
    paths = sorted(
        item for item in found if item.endswith(".parquet") and not posixpath.basename(item).startswith(("_", "."))
    )
    if sizes is not None:
        sizes.update({item: found[item]["size"] for item in paths if found[item].get("size") is not None})
    return paths


def shard_root(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The directory shard paths are taken relative to: the prefix, a glob's fixed part, or a file's directory."""
    if _GLOB & set(path):
        fixed = path[: min(path.index(char) for char in _GLOB if char in path)]
        return fixed.rsplit("/", 1)[0] if "/" in fixed else ""
    if is_file(fs, path):
        return posixpath.dirname(path)
    return path.rstrip("/")


_WHOLE_BYTES = 1 << 20  # a file this small is fetched whole to read its footer: one request, not two


def read_footer(fs: fsspec.AbstractFileSystem, path: str, size: int | None = None) -> Shard:
    """Rows, size and schema of one shard from its footer (``size``: the file's size, if the listing gave it)."""
    if size is not None and size <= _WHOLE_BYTES:
        data = fs.cat_file(path, **whole_kwargs(fs))
        return _shard(path, len(data), pq.ParquetFile(pa.BufferReader(data)).metadata)
    with fs.open(path, "rb", **({"size": size} if size is not None else {})) as handle:
        return _shard(path, handle.size, pq.ParquetFile(handle).metadata)


def _shard(path: str, size: int, metadata: pq.FileMetaData) -> Shard:
    groups = tuple(
        (metadata.row_group(index).num_rows, metadata.row_group(index).total_byte_size)
        for index in range(metadata.num_row_groups)
    )
    return Shard(path=path, rows=metadata.num_rows, bytes=size, schema=metadata.schema.to_arrow_schema(),
                 groups=groups)  # fmt: skip


@dataclass(frozen=True)
class Quarantined:
    """A shard left out of the run, with the reason."""

    path: str
    reason: str


def inspect_shards(
    fs: fsspec.AbstractFileSystem,
    paths: list[str],
    columns: list[str],
    kinds: dict[str, str],
    *,
    selected: list[str] | None = None,
    sizes: dict[str, int] | None = None,
) -> tuple[list[Shard], list[Quarantined]]:
    """Read every footer of ``paths``; check ``columns`` exist and hold what ``kinds`` says.

    Every column read (``selected``, or all of them when None) must have one type across the shards. ``sizes``:
    file sizes the listing gave.

    ``kinds`` maps a column to ``text``, ``image`` or ``audio`` (strings, or encoded media). Returns the usable
    shards and the unusable ones with their reasons (unreadable footer, missing column, wrong type, a type that
    differs from the other shards'), both sorted by path.
    """
    problems: dict[str, str] = {}

    def check(shard_path: str) -> Shard | None:
        try:
            shard = read_footer(fs, shard_path, (sizes or {}).get(shard_path))
        except StorageError:
            raise  # the store is failing, not the shard
        except (OSError, pa.ArrowException) as exc:
            problems[shard_path] = f"unreadable Parquet: {exc}"
            return None
        for column in columns:
            if column not in shard.schema.names:
                problems[shard_path] = f"column '{column}' is missing (has: {', '.join(shard.schema.names)})"
                return None
            if column in kinds:
                accepts, wanted = _KIND_CHECKS[kinds[column]]
                type_ = shard.schema.field(column).type
                if not accepts(type_):
                    problems[shard_path] = f"column '{column}' is {type_}, not {wanted}"
                    return None
        return shard

    with ThreadPoolExecutor(max_workers=16) as pool:
        shards = [shard for shard in pool.map(check, paths) if shard is not None]
    read = selected or sorted({name for shard in shards for name in shard.schema.names})
    problems.update(_type_conflicts(shards, read))
    usable = [shard for shard in shards if shard.path not in problems]
    return usable, [Quarantined(path, reason) for path, reason in sorted(problems.items())]


def refuse(quarantined: list[Quarantined]) -> None:
    """Raise one ``ShardError`` listing every unusable shard with its reason (the ``on_error: raise`` policy)."""
    if quarantined:
        raise ShardError("bad input shards:\n  " + "\n  ".join(f"{q.path}: {q.reason}" for q in quarantined))
