"""What Iceberg and Delta outputs share: shard files inside the table's location, and the exactly-once table commit.

Each shard is committed as for a prefix (its Parquet file in one atomic write, then its record) under
``<table location>/lakelabel/``; then the files are registered in the table, in batches of ``output.commit_every``
shards and once more at the end. The table is the truth about what it holds: before each commit the files it
already references are read back, and only committed shard files of this spec that it lacks are added. So a run
killed after its files but before (or during) the table commit loses nothing, and one killed right after it does
not register them twice. Each commit carries the run id and its batch number as the idempotence key (Iceberg:
snapshot summary properties; Delta: an app transaction), and the provenance.
"""

from __future__ import annotations

import json
import logging
import time
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from lakelabel.jobs.lake.base import Sink
from lakelabel.jobs.lake.storage import split_uri
from lakelabel.jobs.output.layout import Layout
from lakelabel.jobs.output.provenance import spec_hash
from lakelabel.jobs.output.state import OutputExistsError
from lakelabel.jobs.records import ShardRecord

if TYPE_CHECKING:
    import fsspec
    import pyarrow as pa

    from lakelabel.jobs.lake.tablespec import TableSpec
    from lakelabel.jobs.output.state import RunState
    from lakelabel.jobs.spec import JobSpec

log = logging.getLogger("lakelabel")
_CONSOLE = {"console": True}  # table commits are shown on the console beside the progress lines

FILES_DIR = "lakelabel"
"""Shard files and lakelabel's state live under ``<table location>/lakelabel/``."""


class TableSink(Sink):
    """A table output; subclasses read what the table holds and make one commit of new files."""

    def __init__(
        self, spec: JobSpec | None, table: TableSpec, input_root: str, fs: fsspec.AbstractFileSystem, location: str
    ) -> None:
        self.spec = spec  # None: opened for ``lakelabel status`` only
        self.table = table
        self.table_format = table.format
        self.label = table.label()
        self.location = location.rstrip("/")
        scheme, path = split_uri(self.location)
        self.scheme = scheme
        self.layout = Layout(fs=fs, root=f"{path.rstrip('/')}/{FILES_DIR}", input_root=input_root)
        self.state: RunState | None = None
        self.waiting: list[ShardRecord] = []
        self.commits: list[dict[str, Any]] = []

    # --- what a format implements -------------------------------------------------------------------------

    @abstractmethod
    def exists(self) -> bool:
        """True when the table exists."""

    @abstractmethod
    def registered(self) -> set[str]:
        """Paths (filesystem paths, no scheme) of the data files the table's current snapshot or version holds."""

    @abstractmethod
    def commit_files(
        self, files: list[tuple[str, ShardRecord]], schema: pa.Schema, properties: dict[str, str], batch: int
    ) -> str:
        """Add ``files`` (URI, record) to the table in one commit; return the new snapshot or version."""

    @abstractmethod
    def table_position(self) -> str:
        """The table's current snapshot or version, for status."""

    # --- shared -----------------------------------------------------------------------------------------

    def file_uri(self, record: ShardRecord) -> str:
        """A shard file's full URI, as the table references it."""
        path = f"{self.layout.root}/{record.files[0]}"
        return f"{self.scheme}://{path}" if self.scheme != "file" else f"file://{path}"

    def begin(self, state: RunState) -> None:
        """Refuse to redo a shard whose old file the table still references (its input changed in place)."""
        self.state = state
        if not self.exists():
            return
        if self.spec is not None and self.spec.output_mode == "error_if_exists":
            raise OutputExistsError(f"output: {self.label} exists and output.mode is error_if_exists")
        registered = self.registered()
        stale = sorted({part.path for part in state.pending if self.layout.output_file(part.key) in registered})
        if stale:
            raise OutputExistsError(
                f"output: {self.label} already holds the annotated file of {len(stale)} shard(s) whose input "
                f"changed since ({', '.join(stale[:5])}); refusing to rewrite files a table references: "
                "write to a new table"
            )

    def shard_committed(self, record: ShardRecord) -> None:
        """Commit to the table each time ``output.commit_every`` shards are waiting."""
        self.waiting.append(record)
        assert self.spec is not None, "a sink opened for status commits nothing"
        if len(self.waiting) >= self.spec.commit_every:
            self._commit(self.waiting)
            self.waiting = []

    def finish(self) -> dict[str, Any]:
        """Register every committed shard file of this spec the table lacks, this run's and earlier runs'."""
        assert self.spec is not None, "a sink opened for status commits nothing"
        digest = spec_hash(self.spec)
        self.layout.fs.invalidate_cache()
        records = [ShardRecord(**raw) for raw in self.layout.read_records()]
        self._commit([record for record in records if record.spec_hash == digest and record.files])
        self.waiting = []
        return {
            "format": self.table_format,
            "table": self.label,
            "commits": self.commits,
            "position": self.table_position(),
        }

    def _commit(self, records: list[ShardRecord]) -> None:
        records = [record for record in records if record.files]
        if not records:
            return
        self.layout.fs.invalidate_cache()  # shard files were written by other processes since the last listing
        held = self.registered() if self.exists() else set()
        fresh = [record for record in records if f"{self.layout.root}/{record.files[0]}" not in held]
        new = sorted(((self.file_uri(record), record) for record in fresh), key=lambda item: item[0])
        if not new:
            return
        assert self.state is not None, "begin() is called before any commit"
        batch = len(self.commits)
        properties = self._properties(new, batch)
        schema = self._schema(new[0][1])
        log.info(
            "registering %d shard file(s) in %s (run %s, batch %d)",
            len(new),
            self.label,
            self.state.run_id,
            batch,
            extra=_CONSOLE,
        )
        started = time.perf_counter()
        position = self.commit_files(new, schema, properties, batch)
        log.info(
            "table commit done: %s now at %s (%d file(s), %.2f s)",
            self.label,
            position,
            len(new),
            time.perf_counter() - started,
            extra=_CONSOLE,
        )
        self.commits.append(
            {"batch": batch, "files": len(new), "rows": sum(r.rows_out for _, r in new), "position": position}
        )

    def _schema(self, record: ShardRecord) -> pa.Schema:
        with self.layout.fs.open(f"{self.layout.root}/{record.files[0]}", "rb") as handle:
            return pq.read_schema(handle)

    def _properties(self, files: list[tuple[str, ShardRecord]], batch: int) -> dict[str, str]:
        """Provenance and the idempotence key; every value a string (Iceberg summaries hold only strings)."""
        assert self.state is not None
        assert self.spec is not None
        provenance = self.state.provenance
        run = self.layout.read_json(self.layout.run_file) or {}
        return {
            "lakelabel.run-id": self.state.run_id,
            "lakelabel.batch": str(batch),
            "lakelabel.job": self.spec.name,
            "lakelabel.spec-hash": self.state.spec_hash,
            "lakelabel.shards": str(len(files)),
            "lakelabel.rows": str(sum(record.rows_out for _, record in files)),
            "lakelabel.models": json.dumps(provenance["models"], sort_keys=True),
            "lakelabel.versions": json.dumps(provenance["versions"], sort_keys=True),
            "lakelabel.input": json.dumps(run.get("input_position") or {"uri": self.spec.input_uri}, sort_keys=True),
            "lakelabel.input-since": json.dumps(run.get("input_since"), sort_keys=True),
        }

    def status_lines(self, digest: str | None = None) -> list[str]:
        """The table, its position, and how many committed shard files of spec ``digest`` (this job's) it holds."""
        if not self.exists():
            return [f"table: {self.label} does not exist yet (created by the first table commit)"]
        digest = digest or spec_hash(self.spec)
        records = [r for r in self.layout.read_records() if r["spec_hash"] == digest and r["files"]]
        held = self.registered()
        inside = sum(f"{self.layout.root}/{r['files'][0]}" in held for r in records)
        return [
            f"table: {self.label} at {self.table_position()}: {inside} of {len(records)} committed shard file(s) "
            f"registered, {len(records) - inside} awaiting the table commit (the next run registers them)"
        ]
