"""The table blocks of a job spec: ``format: iceberg`` (a catalog and a table) or ``format: delta`` (a URI).

Example::

    input:
      format: iceberg
      catalog: {type: sql, uri: "sqlite:////lake/catalog.db", warehouse: "s3://lake/warehouse"}
      table: lake.tickets
      snapshot: 6512334        # optional: time travel; default the current snapshot
    output:
      format: delta
      uri: s3://lake/tickets_annotated   # created if missing

``catalog`` holds pyiceberg's catalog properties (what ``.pyiceberg.yaml`` holds, ``name`` optional), so REST,
Glue, Hive and SQL catalogs all work. Nothing here imports pyiceberg or deltalake: a job that needs one and lacks
it is refused at validation with the extra to install.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("parquet", "iceberg", "delta")
_EXTRAS = {"iceberg": ("pyiceberg", "iceberg"), "delta": ("deltalake", "delta")}
_CATALOG_IDENTITY = ("name", "type", "uri", "warehouse")
_PASSWORD = re.compile(r"(://[^:/@]+):[^@/]*@")


class TableSpecError(ValueError):
    """A table block is invalid; the message starts with the field."""


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """Where a table lives: an Iceberg table in a catalog, or a Delta table at a URI."""

    format: str
    uri: str | None = None
    catalog: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold credentials
    table: str | None = None
    snapshot: int | None = None
    version: int | None = None

    @property
    def catalog_properties(self) -> dict[str, str]:
        """The pyiceberg catalog properties, as given (may hold credentials: never log or write them)."""
        return dict(self.catalog)

    @property
    def catalog_name(self) -> str:
        """The catalog's ``name``, else its ``type``."""
        props = self.catalog_properties
        return props.get("name") or props.get("type") or "default"

    def label(self) -> str:
        """For messages: ``iceberg table lake.tickets (catalog sql)`` or ``delta table s3://lake/t``."""
        if self.format == "iceberg":
            return f"iceberg table {self.table} (catalog {self.catalog_name})"
        return f"delta table {self.uri}"

    def identity(self) -> dict[str, Any]:
        """What names the table, without credentials: part of the spec hash and the provenance."""
        if self.format == "iceberg":
            props = self.catalog_properties
            catalog = {key: redact(props[key]) for key in _CATALOG_IDENTITY if key in props}
            return {"format": "iceberg", "catalog": catalog, "table": self.table}
        return {"format": "delta", "uri": self.uri}


def redact(value: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return _PASSWORD.sub(r"\1:***@", value)


def _integer(block: dict[str, Any], key: str, where: str) -> int | None:
    value = block.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TableSpecError(f"{where}.{key}: an integer >= 0, got {value!r}")
    return value


def require_extra(table_format: str, where: str) -> None:
    """Refuse a table format whose library is not installed, naming the extra that brings it."""
    module, extra = _EXTRAS[table_format]
    if importlib.util.find_spec(module) is None:
        raise TableSpecError(
            f"{where}.format: {table_format} needs the '{extra}' extra ({module} is not installed): "
            f"pip install 'lakelabel[{extra}]'"
        )


def parse_table(block: dict[str, Any], where: str, *, reading: bool) -> TableSpec:
    """Validate an ``input``/``output`` block whose ``format`` is ``iceberg`` or ``delta``."""
    table_format = block["format"]
    if table_format == "iceberg":
        catalog = block.get("catalog")
        if not isinstance(catalog, dict) or not catalog:
            raise TableSpecError(
                f"{where}.catalog: required for format iceberg, a mapping of pyiceberg catalog "
                "properties (e.g. {type: sql, uri: 'sqlite:///catalog.db', warehouse: ...})"
            )
        for key, value in catalog.items():
            if not isinstance(key, str) or isinstance(value, dict | list) or value is None:
                raise TableSpecError(f"{where}.catalog.{key}: a catalog property is a string, number or boolean")
        table = block.get("table")
        if not isinstance(table, str) or "." not in table.strip(". "):
            raise TableSpecError(f"{where}.table: required for format iceberg, 'namespace.table', got {table!r}")
        if block.get("version") is not None:
            raise TableSpecError(f"{where}.version: Delta only; an Iceberg table travels by snapshot")
        snapshot = _integer(block, "snapshot", where)
        if snapshot is not None and not reading:
            raise TableSpecError(f"{where}.snapshot: only an input table can be read at a snapshot")
        spec = TableSpec(
            format="iceberg",
            catalog=tuple(
                sorted(
                    (key, str(value).lower() if isinstance(value, bool) else str(value))
                    for key, value in catalog.items()
                )
            ),
            table=table.strip(),
            snapshot=snapshot,
        )
    else:
        uri = block.get("uri")
        if not isinstance(uri, str) or not uri.strip():
            raise TableSpecError(f"{where}.uri: required for format delta, the table's URI")
        for key in ("catalog", "table", "snapshot"):
            if key in block:
                raise TableSpecError(f"{where}.{key}: Iceberg only; a Delta table is named by uri (and version)")
        version = _integer(block, "version", where)
        if version is not None and not reading:
            raise TableSpecError(f"{where}.version: only an input table can be read at a version")
        spec = TableSpec(format="delta", uri=uri.strip().rstrip("/"), version=version)
    require_extra(table_format, where)
    return spec
