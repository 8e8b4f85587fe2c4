"""Apache Iceberg tables through pyiceberg: any catalog (REST, Glue, Hive, SQL) from its properties.

Input: the data files of one snapshot (``input.snapshot``, else the current one), each a shard. A later run
checks every snapshot between the one its last run read and this one: appends only, or it is refused naming the
snapshots. Data files with delete files (row-level deletes) are refused too. Output: see
``lakelabel.jobs.lake.table_sink``; a missing table is created by its first commit (``create_table_transaction`` +
``add_files``, one snapshot), and columns the table lacks are added in the same transaction as the data.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from lakelabel.jobs.lake.base import Source, TableChangeError
from lakelabel.jobs.lake.shards import ShardError
from lakelabel.jobs.lake.storage import filesystem, split_uri
from lakelabel.jobs.lake.table_sink import TableSink

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from lakelabel.jobs.lake.tablespec import TableSpec
    from lakelabel.jobs.records import ShardRecord
    from lakelabel.jobs.spec import JobSpec, StorageSpec

_RETRIES = 8
log = logging.getLogger("lakelabel")


def load_catalog(table: TableSpec, storage: StorageSpec) -> Catalog:
    """The catalog from the job's properties; the S3 endpoint and region default to the job's ``storage``."""
    from pyiceberg.catalog import load_catalog as load  # noqa: PLC0415 - the iceberg extra

    properties = table.catalog_properties
    name = properties.pop("name", None) or "default"  # pyiceberg's own default; a SQL catalog keys tables by it
    endpoint = storage.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        properties.setdefault("s3.endpoint", endpoint)
    region = storage.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        properties.setdefault("s3.region", region)
    try:
        return load(name, **properties)
    except Exception as exc:  # noqa: BLE001 - any catalog's own error, reported with the catalog named
        raise ShardError(f"catalog {table.catalog_name}: cannot open it: {type(exc).__name__}: {exc}") from None


def _load(catalog: Catalog, table: TableSpec, where: str) -> Table:
    from pyiceberg.exceptions import NoSuchTableError  # noqa: PLC0415

    try:
        return catalog.load_table(table.table or "")
    except NoSuchTableError:
        raise ShardError(f"{where}.table: no table {table.table} in catalog {table.catalog_name}") from None


class IcebergSource(Source):
    """The data files of one snapshot of an Iceberg table."""

    def __init__(self, table: TableSpec, storage: StorageSpec) -> None:
        self.spec = table
        self.label = table.label()
        self.table = _load(load_catalog(table, storage), table, "input")
        snapshot = (
            self.table.snapshot_by_id(table.snapshot) if table.snapshot is not None else self.table.current_snapshot()
        )
        if snapshot is None:
            problem = f"has no snapshot {table.snapshot}" if table.snapshot is not None else "has no data (no snapshot)"
            raise ShardError(f"input.{'snapshot' if table.snapshot is not None else 'table'}: {self.label} {problem}")
        self.snapshot = snapshot
        self.fs, self.root = filesystem(self.table.location(), storage)
        self.root = self.root.rstrip("/")

    def shard_paths(self) -> list[str]:
        """The snapshot's data files; a data file with delete files is refused (its deleted rows would be read)."""
        paths, deleted = [], []
        for task in self.table.scan(snapshot_id=self.snapshot.snapshot_id).plan_files():
            paths.append(split_uri(task.file.file_path)[1])
            if task.delete_files:
                deleted.append(task.file.file_path)
        if deleted:
            raise TableChangeError(
                f"input: {self.label} snapshot {self.snapshot.snapshot_id}: {len(deleted)} data file(s) have "
                f"row-level delete files ({', '.join(deleted[:3])}); lakelabel reads data files whole and would "
                "annotate deleted rows: compact the table first (rewrite without delete files)"
            )
        return sorted(paths)

    def position(self) -> dict[str, Any]:
        """The table and the snapshot read."""
        return {"format": "iceberg", "table": self.spec.table, "snapshot": self.snapshot.snapshot_id}

    def check_since(self, previous: dict[str, Any] | None) -> list[str]:
        """Appends only between the snapshot the last run read and this one, else ``TableChangeError``."""
        current = self.snapshot.snapshot_id
        if not previous or previous.get("format") != "iceberg" or previous.get("snapshot") is None:
            return [f"snapshot {current}: every data file (no earlier run of this job recorded a snapshot)"]
        last = previous["snapshot"]
        if last == current:
            return [f"snapshot {current}: the snapshot the last run read"]
        between, found = self._chain(current, last)
        if not found:
            if self._chain(last, current)[1]:
                return [f"snapshot {current}: older than snapshot {last} the last run read (time travel)"]
            raise TableChangeError(
                f"input: {self.label}: snapshot {last}, which the last run of this job read, is not an ancestor of "
                f"snapshot {current} (the table was rolled back or its history expired); refusing an incremental "
                "run over an unknown change: write to a new output"
            )
        changed = [
            snapshot
            for snapshot in between
            if snapshot.summary is None
            or snapshot.summary.operation.value != "append"
            or int(snapshot.summary.get("added-delete-files") or 0)
        ]
        if changed:
            named = ", ".join(
                f"{s.snapshot_id} ({s.summary.operation.value if s.summary else 'unknown'})" for s in changed
            )
            raise TableChangeError(
                f"input: {self.label} changed by more than appends since snapshot {last}, which the last run "
                f"read: snapshot(s) {named}; refusing to annotate deleted rows or skip rewritten ones: "
                "write to a new output to process the table as it is now"
            )
        return [f"snapshot {current}: {len(between)} append snapshot(s) since snapshot {last}, read by the last run"]

    def _chain(self, start: int, stop: int) -> tuple[list[Any], bool]:
        """Snapshots from ``start`` back to (not including) ``stop``, and whether ``stop`` was reached."""
        chain, snapshot = [], self.table.snapshot_by_id(start)
        while snapshot is not None and snapshot.snapshot_id != stop:
            chain.append(snapshot)
            parent = snapshot.parent_snapshot_id
            snapshot = self.table.snapshot_by_id(parent) if parent is not None else None
        return chain, snapshot is not None


class IcebergSink(TableSink):
    """Annotated shard files registered in an Iceberg table with ``add_files``."""

    def __init__(self, table: TableSpec, storage: StorageSpec, input_root: str, spec: JobSpec | None = None) -> None:
        self.catalog = load_catalog(table, storage)
        self.identifier = table.table or ""
        location = self._location()
        fs, _ = filesystem(location, storage)
        super().__init__(spec, table, input_root, fs, location)

    def _location(self) -> str:
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError  # noqa: PLC0415

        try:
            return self.catalog.load_table(self.identifier).location()
        except NoSuchTableError:
            pass
        namespace, name = self.identifier.rsplit(".", 1)
        try:
            return self.catalog._resolve_table_location(None, namespace, name)  # type: ignore[attr-defined]
        except (AttributeError, NoSuchNamespaceError):
            warehouse = self.catalog.properties.get("warehouse")
            if not warehouse:
                raise ShardError(
                    f"output.table: {self.identifier} does not exist and catalog {self.table_name()} has no "
                    "warehouse to create it in: create the table first, or set catalog.warehouse"
                ) from None
            return f"{warehouse.rstrip('/')}/{namespace.replace('.', '/')}/{name}"

    def table_name(self) -> str:
        """The catalog's name for messages."""
        return self.catalog.name

    def exists(self) -> bool:
        """True when the catalog has the table."""
        return self.catalog.table_exists(self.identifier)

    def registered(self) -> set[str]:
        """The data files of the table's current snapshot."""
        table = self.catalog.load_table(self.identifier)
        if table.current_snapshot() is None:
            return set()
        return {split_uri(task.file.file_path)[1] for task in table.scan().plan_files()}

    def commit_files(
        self, files: list[tuple[str, ShardRecord]], schema: pa.Schema, properties: dict[str, str], batch: int
    ) -> str:
        """One snapshot adding ``files``; retried on a concurrent commit (optimistic concurrency)."""
        from pyiceberg.exceptions import CommitFailedException, TableAlreadyExistsError  # noqa: PLC0415

        uris = [uri for uri, _ in files]
        for attempt in range(_RETRIES):
            try:
                return self._commit_once(uris, schema, properties, batch)
            except (CommitFailedException, TableAlreadyExistsError) as exc:
                if attempt == _RETRIES - 1:
                    raise
                log.info("%s: another writer committed first (%s); retrying on the new snapshot", self.label,
                         type(exc).__name__)  # fmt: skip
                time.sleep(0.2 * 2**attempt)
                held = self.registered()
                uris = [uri for uri in uris if split_uri(uri)[1] not in held]
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _commit_once(self, uris: list[str], schema: pa.Schema, properties: dict[str, str], batch: int) -> str:
        namespace = self.identifier.rsplit(".", 1)[0]
        if not self.exists():
            self.catalog.create_namespace_if_not_exists(namespace)
            transaction = self.catalog.create_table_transaction(self.identifier, schema, location=self.location)
            transaction.add_files(uris, snapshot_properties=properties)
            transaction.commit_transaction()
        else:
            table = self.catalog.load_table(self.identifier)
            for snapshot in table.snapshots():
                summary = snapshot.summary
                if (
                    summary
                    and summary.get("lakelabel.run-id") == properties["lakelabel.run-id"]
                    and summary.get("lakelabel.batch") == str(batch)
                ):
                    return f"snapshot {snapshot.snapshot_id}"  # this batch is in already
            if not uris:
                return self.table_position()
            with table.transaction() as transaction:
                if set(schema.names) - set(table.schema().column_names):
                    with transaction.update_schema() as update:
                        update.union_by_name(schema)
                transaction.add_files(uris, snapshot_properties=properties)
        return self.table_position()

    def table_position(self) -> str:
        """``snapshot <id>``."""
        snapshot = self.catalog.load_table(self.identifier).current_snapshot()
        return f"snapshot {snapshot.snapshot_id}" if snapshot else "no snapshot"
