"""Where everything of a job lives under its output prefix, and how files there are written whole or not at all.

::

    OUTPUT/<relative path>.parquet          one annotated file per input shard, named after it
    OUTPUT/<rel>.rg00000-00003.parquet      row groups 0 to 3 of a big input file (jobs/lake/units.py)
    OUTPUT/_SUCCESS                         the manifest (JSON), written when a run has seen every shard through
    OUTPUT/_lakelabel/run.json              the latest run: spec, spec hash, planned shards, provenance
    OUTPUT/_lakelabel/shards/<rel>.json     a shard's (or a row-group range's) completion record, after its Parquet
    OUTPUT/_lakelabel/shards/<rel>.bundle-<digest>.json
                                            the completion records of a bundle of small files, in one object
    OUTPUT/_lakelabel/quarantine/<rel>.json a shard left out of the latest run, with the reason
    OUTPUT/_lakelabel/staging/<unit>/       pieces of a commit unit in flight (Arrow IPC), removed when it commits
    OUTPUT/_lakelabel/logs/<run id>.log     a run's log (jobs/console/runlog.py)
    OUTPUT/_lakelabel/lease.json            the live run's lease (jobs/output/lease.py)

Names starting with ``_`` or ``.`` are skipped by Parquet readers (pyarrow, pandas, Spark, ``datasets``), so readers
of ``OUTPUT/`` see only committed shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fsspec.implementations.local import LocalFileSystem

if TYPE_CHECKING:
    import fsspec

STATE = "_lakelabel"
SUCCESS = "_SUCCESS"
UNSAFE = f"{STATE}/unsafe"
_ENCODED_SEPARATORS = ("%2f", "%5c", "%2e", "%00")


def unsafe_key(key: str) -> str | None:
    """Why an output key derived from an input path could leave the output prefix, or None when it cannot.

    Refused: absolute keys, ``.``/``..``/empty segments, backslashes, NUL, and percent-encoded separators or dots
    (``%2F``, ``%5C``, ``%2E``), which a store or a later tool may decode into ``/`` or ``..``.
    """
    if key.startswith("/") or "\\" in key or "\0" in key:
        return f"key {key!r} is absolute or holds a backslash or NUL"
    if any(segment in {"", ".", ".."} for segment in key.split("/")):
        return f"key {key!r} has an empty, '.' or '..' segment"
    if any(encoded in key.lower() for encoded in _ENCODED_SEPARATORS):
        return f"key {key!r} holds a percent-encoded separator or dot"
    return None


@dataclass(frozen=True)
class Layout:
    """Paths under one output prefix; ``input_root`` is what input shard paths are taken relative to."""

    fs: fsspec.AbstractFileSystem
    root: str
    input_root: str

    def key(self, shard_path: str) -> str:
        """``raw/day=1/part-0.parquet`` under input root ``raw`` -> ``day=1/part-0``.

        A path whose key could leave the output prefix (see :func:`unsafe_key`) gets ``_unsafe/<sha256 of the path>``
        instead: plans quarantine such shards, and no file of theirs can land outside the prefix.
        """
        key = self.relative_key(shard_path)
        if unsafe_key(key):
            return f"{UNSAFE}/{hashlib.sha256(shard_path.encode()).hexdigest()[:32]}"
        return key

    def relative_key(self, shard_path: str) -> str:
        """The key as the input path gives it, unchecked."""
        relative = posixpath.relpath(shard_path, self.input_root) if self.input_root else shard_path.lstrip("/")
        return relative.removesuffix(".parquet")

    def output_file(self, key: str) -> str:
        """The annotated Parquet file of a shard."""
        return f"{self.root}/{key}.parquet"

    def record_file(self, key: str) -> str:
        """The completion record of a shard."""
        return f"{self.root}/{STATE}/shards/{key}.json"

    def quarantine_file(self, key: str) -> str:
        """Why a shard was left out of the latest run."""
        return f"{self.root}/{STATE}/quarantine/{key}.json"

    def staging_dir(self, key: str) -> str:
        """Pieces of a shard written by the pipeline before it commits."""
        return f"{self.staging_root}/{key}"

    @property
    def staging_root(self) -> str:
        """Where every shard's pieces are staged."""
        return f"{self.root}/{STATE}/staging"

    @property
    def run_file(self) -> str:
        """The latest run's spec, plan and provenance."""
        return f"{self.root}/{STATE}/run.json"

    @property
    def success_file(self) -> str:
        """The manifest."""
        return f"{self.root}/{SUCCESS}"

    def files(self) -> list[str]:
        """Every file under the prefix (none when it does not exist), except the run's lease (``output/lease.py``)."""
        lease = f"{self.root}/{STATE}/lease.json"
        return [path for path in self.fs.find(self.root) if path != lease] if self.fs.exists(self.root) else []

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file or a directory if it is there."""
        if self.fs.exists(path):
            self.fs.rm(path, recursive=recursive)

    def read_json(self, path: str) -> dict[str, Any] | None:
        """A JSON file's content, or None when it does not exist."""
        try:
            return json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            return None

    def read_json_under(self, directory: str) -> list[dict[str, Any]]:
        """Every ``*.json`` under a directory (fetched concurrently on object stores)."""
        if not self.fs.exists(directory):
            return []
        paths = [path for path in self.fs.find(directory) if path.endswith(".json")]
        return [json.loads(data) for data in self.fs.cat(paths, on_error="omit").values()] if paths else []

    @property
    def records_root(self) -> str:
        """Where completion records live."""
        return f"{self.root}/{STATE}/shards"

    def read_record_files(self) -> dict[str, list[dict[str, Any]]]:
        """Each completion-record object and the records it holds (one, or a bundle's ``records``)."""
        if not self.fs.exists(self.records_root):
            return {}
        paths = [path for path in self.fs.find(self.records_root) if path.endswith(".json")]
        found = self.fs.cat(paths, on_error="omit") if paths else {}
        return {path: _records_in(json.loads(data)) for path, data in found.items()}

    def read_records(self, files: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
        """Every completion record, sorted by key; a key recorded twice (an input changed since) keeps the latest.

        ``files``: what :meth:`read_record_files` returned, if it was read already.
        """
        latest: dict[str, dict[str, Any]] = {}
        for records in (self.read_record_files() if files is None else files).values():
            for record in records:
                held = latest.get(record["key"])
                if held is None or record.get("committed_at", 0) >= held.get("committed_at", 0):
                    latest[record["key"]] = record
        return [latest[key] for key in sorted(latest)]

    def write_json(self, path: str, value: dict[str, Any]) -> None:
        """Write JSON whole or not at all."""
        write_atomic(self.fs, path, json.dumps(value, indent=1, sort_keys=True).encode())


def _records_in(value: dict[str, Any]) -> list[dict[str, Any]]:
    return list(value["records"]) if "records" in value else [value]


def write_atomic_many(fs: fsspec.AbstractFileSystem, files: dict[str, bytes]) -> None:
    """:func:`write_atomic` for each of ``files``; on an object store the PUTs go out concurrently."""
    if not files:
        return
    if isinstance(fs, LocalFileSystem) or len(files) == 1:
        for path, data in files.items():
            write_atomic(fs, path, data)
        return
    fs.pipe(files)


def write_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Make ``path`` appear with all of ``data`` or not at all.

    Object stores: one PUT (or one multipart upload, completed in one call), so the object is visible whole or not
    at all. Local files: written to a hidden temporary beside the target, flushed to disk, then renamed over it.
    """
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return
    directory, name = posixpath.split(path)
    os.makedirs(directory, exist_ok=True)  # noqa: PTH103 - fsspec paths are strings
    temporary = f"{directory}/.{name}.tmp-{uuid.uuid4().hex}"
    with open(temporary, "wb") as handle:  # noqa: PTH123
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)  # noqa: PTH105


def remove_temporaries(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Remove hidden temporaries a killed local write of ``path`` left behind."""
    directory, name = posixpath.split(path)
    if isinstance(fs, LocalFileSystem) and fs.exists(directory):
        for leftover in fs.glob(f"{directory}/.{name}.tmp-*"):
            fs.rm(leftover)
