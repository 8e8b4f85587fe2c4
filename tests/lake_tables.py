"""Helpers for the lake-table tests: a moto S3 server in its own process, input tables, reading outputs back.

The S3 server runs in its own process (not moto's in-process thread): delta-rs holds the GIL during some calls
(``DeltaTable.history``), which would starve an S3 server thread of the same interpreter.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import s3fs

MOTO = Path(sys.executable).with_name("moto_server")


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """A moto S3 server process on a free loopback port; yields its endpoint."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        yield endpoint
    finally:
        process.kill()
        process.wait()


def rows(batch: int, count: int = 24) -> pa.Table:
    """The rows of one append: ids ``batch*1000 + i``, some texts null."""
    ids = [batch * 1000 + i for i in range(count)]
    texts = [None if i % 11 == 4 else f"append {batch} row {i}: the river rose after the storm" for i in ids]
    return pa.table({"id": pa.array(ids, pa.int64()), "text": pa.array(texts, pa.string())})


class Place:
    """Where a test's tables live: a local directory or a bucket on the loopback S3 endpoint."""

    def __init__(self, tmp_path: Path, endpoint: str | None, bucket: str) -> None:
        self.tmp_path = tmp_path
        self.endpoint = endpoint
        if endpoint:
            self.fs = s3fs.S3FileSystem(endpoint_url=endpoint)
            self.fs.mkdir(bucket)
            self.base = f"s3://{bucket}"
        else:
            self.fs = None
            self.base = f"file://{tmp_path}/lake"
            (tmp_path / "lake").mkdir()
        self.catalog_properties = {
            "type": "sql",
            "uri": f"sqlite:///{tmp_path}/catalog.db",
            "warehouse": f"{self.base}/warehouse",
        } | ({"s3.endpoint": endpoint, "s3.region": "us-east-1"} if endpoint else {})

    def uri(self, name: str) -> str:
        """A Delta table's URI (a plain path locally)."""
        return f"{self.base}/{name}" if self.endpoint else f"{self.tmp_path}/lake/{name}"

    def catalog(self):
        from pyiceberg.catalog import load_catalog

        return load_catalog("default", **self.catalog_properties)

    def delta_options(self) -> dict[str, str]:
        if not self.endpoint:
            return {}
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}

    def block(self, table_format: str, name: str) -> dict:
        """The job's input or output block for a table named ``name``."""
        if table_format == "iceberg":
            return {"format": "iceberg", "catalog": dict(self.catalog_properties), "table": f"lake.{name}"}
        return {"format": "delta", "uri": self.uri(name)}

    def append(self, table_format: str, name: str, data: pa.Table) -> None:
        """Append ``data`` to an input table (created on the first append)."""
        if table_format == "iceberg":
            catalog = self.catalog()
            catalog.create_namespace_if_not_exists("lake")
            table = catalog.create_table_if_not_exists(f"lake.{name}", data.schema)
            table.append(data)
        else:
            from deltalake import write_deltalake

            write_deltalake(self.uri(name), data, mode="append", storage_options=self.delta_options())

    def read(self, table_format: str, name: str, *, at: int | None = None) -> pa.Table:
        """A whole table through its own library's reader (``scan().to_arrow()`` / ``to_pyarrow_table()``)."""
        if table_format == "iceberg":
            return self.catalog().load_table(f"lake.{name}").scan(snapshot_id=at).to_arrow()
        from deltalake import DeltaTable

        return DeltaTable(self.uri(name), version=at, storage_options=self.delta_options()).to_pyarrow_table()

    def commits(self, table_format: str, name: str) -> list[dict[str, str]]:
        """The lakelabel properties of every commit of an output table, oldest first."""
        if table_format == "iceberg":
            table = self.catalog().load_table(f"lake.{name}")
            return [
                {k: v for k, v in s.summary.additional_properties.items() if k.startswith("lakelabel.")}
                | {"position": str(s.snapshot_id), "operation": s.summary.operation.value}
                for s in table.snapshots()
            ]
        from deltalake import DeltaTable

        history = DeltaTable(self.uri(name), storage_options=self.delta_options()).history()
        return [
            {k: v for k, v in entry.items() if k.startswith("lakelabel.")}
            | {"position": str(entry["version"]), "operation": entry["operation"]}
            for entry in sorted(history, key=lambda e: e["version"])
        ]


def with_credentials() -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        os.environ.setdefault(key, value)
