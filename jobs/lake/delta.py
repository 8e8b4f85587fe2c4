"""Delta Lake tables through deltalake (delta-rs), local or on S3 (conditional PUTs: no lock service needed).

Input: the data files of one version (``input.version``, else the latest), each a shard; a later run checks every
commit since the version its last run read: appends only (plus metadata-only commits), or it is refused naming the
versions. Partitioned tables (partition values live outside the data files), column mapping and deletion vectors
are refused. Output: see ``lakelabel.jobs.lake.table_sink``; a missing table is created by its first commit
(``create_table_with_add_actions``), later commits are ``create_write_transaction`` appends.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from lakelabel.jobs.lake.base import Source, TableChangeError
from lakelabel.jobs.lake.shards import ShardError
from lakelabel.jobs.lake.storage import filesystem, split_uri
from lakelabel.jobs.lake.table_sink import TableSink

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable

    from lakelabel.jobs.lake.tablespec import TableSpec
    from lakelabel.jobs.records import ShardRecord
    from lakelabel.jobs.spec import JobSpec, StorageSpec

_APPENDS = {"WRITE", "STREAMING UPDATE", "CREATE TABLE", "CREATE OR REPLACE TABLE"}
_METADATA_ONLY = {
    "SET TBLPROPERTIES",
    "UPGRADE PROTOCOL",
    "ADD CONSTRAINT",
    "ADD FEATURE",
    "ADD COLUMN",
    "UPDATE TABLE METADATA",
}
_REFUSED_FEATURES = {"deletionVectors": "deletion vectors", "columnMapping": "column mapping"}


def storage_options(uri: str, storage: StorageSpec) -> dict[str, str]:
    """delta-rs object-store options from the job's ``storage`` block and the AWS variables (never logged)."""
    if split_uri(uri)[0] != "s3":
        return {}
    options: dict[str, str] = {}
    endpoint = storage.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    region = storage.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    options["AWS_REGION"] = region or "us-east-1"
    if storage.profile:
        options["AWS_PROFILE"] = storage.profile
    if storage.anon:
        options["AWS_SKIP_SIGNATURE"] = "true"
    return options


def _open(uri: str, options: dict[str, str], version: int | None = None) -> DeltaTable | None:
    from deltalake import DeltaTable  # noqa: PLC0415 - the delta extra
    from deltalake.exceptions import TableNotFoundError  # noqa: PLC0415

    try:
        return DeltaTable(uri, version=version, storage_options=options)
    except TableNotFoundError:
        return None


def _table_uri(uri: str) -> str:
    protocol, path = split_uri(uri)
    return path if protocol == "file" else uri


class DeltaSource(Source):
    """The data files of one version of a Delta table."""

    def __init__(self, table: TableSpec, storage: StorageSpec) -> None:
        self.spec = table
        self.label = table.label()
        self.uri = _table_uri(table.uri or "")
        self.options = storage_options(self.uri, storage)
        try:
            found = _open(self.uri, self.options, table.version)
        except Exception as exc:  # noqa: BLE001 - delta-rs reports a missing version as a generic error
            raise ShardError(f"input.version: {self.label} has no version {table.version}: {exc}") from None
        if found is None:
            raise ShardError(f"input.uri: no Delta table at {table.uri}")
        self.table = found
        partitions = self.table.metadata().partition_columns
        if partitions:
            raise ShardError(
                f"input: {self.label} is partitioned by {', '.join(partitions)}; partition values live outside its "
                "data files, which lakelabel reads as they are: not supported"
            )
        features = set(self.table.protocol().reader_features or [])
        for feature, name in _REFUSED_FEATURES.items():
            if feature in features:
                raise ShardError(
                    f"input: {self.label} uses {name} ({feature}); lakelabel reads data files whole "
                    "and does not support it"
                )
        self.fs, self.root = filesystem(table.uri or "", storage)
        self.root = self.root.rstrip("/")

    def shard_paths(self) -> list[str]:
        """The version's data files."""
        return sorted(split_uri(uri)[1] for uri in self.table.file_uris())

    def position(self) -> dict[str, Any]:
        """The table and the version read."""
        return {"format": "delta", "uri": self.spec.uri, "version": self.table.version()}

    def check_since(self, previous: dict[str, Any] | None) -> list[str]:
        """Appends only between the version the last run read and this one, else ``TableChangeError``."""
        current = self.table.version()
        if not previous or previous.get("format") != "delta" or previous.get("version") is None:
            return [f"version {current}: every data file (no earlier run of this job recorded a version)"]
        last = previous["version"]
        if last == current:
            return [f"version {current}: the version the last run read"]
        if last > current:
            return [f"version {current}: older than version {last} the last run read (time travel)"]
        latest = _open(self.uri, self.options)
        history = {entry["version"]: entry for entry in (latest.history() if latest else [])}
        missing = [version for version in range(last + 1, current + 1) if version not in history]
        if missing:
            raise TableChangeError(
                f"input: {self.label}: the history of version(s) {missing[0]}..{missing[-1]} since version {last}, "
                "which the last run read, is gone (log cleaned up); refusing an incremental run over an unknown "
                "change: write to a new output"
            )
        changed = []
        for version in range(last + 1, current + 1):
            entry = history[version]
            operation = entry.get("operation", "")
            mode = (entry.get("operationParameters") or {}).get("mode", "Append")
            if operation in _METADATA_ONLY or (operation in _APPENDS and mode in {"Append", "ErrorIfExists"}):
                continue
            changed.append(f"{version} ({operation}{f' {mode}' if operation in _APPENDS else ''})")
        if changed:
            raise TableChangeError(
                f"input: {self.label} changed by more than appends since version {last}, which the last run read: "
                f"version(s) {', '.join(changed)}; refusing to annotate deleted rows or skip rewritten ones: "
                "write to a new output to process the table as it is now"
            )
        return [f"version {current}: {current - last} append commit(s) since version {last}, read by the last run"]


class DeltaSink(TableSink):
    """Annotated shard files registered in a Delta table, one transaction per batch."""

    def __init__(self, table: TableSpec, storage: StorageSpec, input_root: str, spec: JobSpec | None = None) -> None:
        self.uri = _table_uri(table.uri or "")
        self.options = storage_options(self.uri, storage)
        fs, _ = filesystem(table.uri or "", storage)
        super().__init__(spec, table, input_root, fs, table.uri or "")

    def _table(self) -> DeltaTable | None:
        return _open(self.uri, self.options)

    def exists(self) -> bool:
        """True when the table has a log."""
        return self._table() is not None

    def registered(self) -> set[str]:
        """The data files of the table's latest version."""
        table = self._table()
        return {split_uri(uri)[1] for uri in table.file_uris()} if table else set()

    def commit_files(
        self, files: list[tuple[str, ShardRecord]], schema: pa.Schema, properties: dict[str, str], batch: int
    ) -> str:
        """One commit adding ``files``, with the run id as an app transaction (delta-rs retries conflicts)."""
        from deltalake import Schema  # noqa: PLC0415
        from deltalake.transaction import (  # noqa: PLC0415
            AddAction,
            CommitProperties,
            Transaction,
            create_table_with_add_actions,
        )

        app_id = f"lakelabel-{properties['lakelabel.run-id']}"
        table = self._table()
        done = table.transaction_version(app_id) if table is not None else None
        if table is not None and done is not None and done >= batch:
            return f"version {table.version()}"  # this batch is in already
        now = int(time.time() * 1000)
        actions = [
            AddAction(
                path=f"{self.layout.root.rsplit('/', 1)[1]}/{record.files[0]}",
                size=self.layout.fs.size(f"{self.layout.root}/{record.files[0]}"),
                partition_values={},
                modification_time=now,
                data_change=True,
                stats=json.dumps({"numRecords": record.rows_out}),
            )
            for _, record in files
        ]
        commit = CommitProperties(custom_metadata=properties, app_transactions=[Transaction(app_id, batch)])
        if table is None:
            create_table_with_add_actions(
                self.uri,
                Schema.from_arrow(schema),
                actions,
                mode="append",
                storage_options=self.options,
                commit_properties=commit,
            )
        else:
            table.create_write_transaction(actions, mode="append", schema=schema, commit_properties=commit)
        return self.table_position()

    def table_position(self) -> str:
        """``version <n>``."""
        table = self._table()
        return f"version {table.version()}" if table else "no version"
