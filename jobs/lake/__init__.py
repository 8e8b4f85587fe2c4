"""Where a job's data lives: one small interface, one module per format.

A ``Source`` lists the units of work (Parquet files: a prefix's shards, or a table's data files at one snapshot)
and says which position of the input they are (a table snapshot or version), refusing a change since the last run
that is not a plain append. A ``Sink`` owns the output: the ``Layout`` where shard files and their records are
committed one by one, and, for a table, the table commit that registers committed shard files in bounded batches,
exactly once. The runner calls ``Sink.shard_committed`` and ``Sink.finish`` and knows no format.

================  ==========================  ==============================================
format            Source                      Sink
================  ==========================  ==============================================
``parquet``       ``lakelabel.jobs.lake.prefix``         ``lakelabel.jobs.lake.prefix`` (files and records only)
``iceberg``       ``lakelabel.jobs.lake.iceberg``        ``lakelabel.jobs.lake.iceberg`` (``add_files``)
``delta``         ``lakelabel.jobs.lake.delta``          ``lakelabel.jobs.lake.delta`` (``create_write_transaction``)
================  ==========================  ==============================================

A fourth format is one module with a ``Source`` and a ``Sink`` and one line in ``open_source`` / ``open_sink``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from lakelabel.jobs.lake.shards import ShardError

if TYPE_CHECKING:
    import fsspec

    from lakelabel.jobs.output.commit import ShardRecord
    from lakelabel.jobs.output.layout import Layout
    from lakelabel.jobs.output.state import RunState
    from lakelabel.jobs.spec import JobSpec

__all__ = ["Sink", "Source", "TableChangeError", "open_sink", "open_source"]


class TableChangeError(ShardError):
    """The input table changed since the last run in a way an incremental run must not paper over."""


class Source(ABC):
    """The input: Parquet files to process, and the table position they were listed at."""

    fs: fsspec.AbstractFileSystem
    root: str
    """Shard keys (and so output file names) are shard paths relative to this."""
    label: str
    """For messages and the plan: the prefix URI, or the table."""

    @abstractmethod
    def shard_paths(self) -> list[str]:
        """Paths (in ``fs``) of the Parquet files this run reads, sorted."""

    def sizes(self) -> dict[str, int]:
        """Sizes of the files :meth:`shard_paths` listed, where the listing gave them (spares a request each)."""
        return {}

    def position(self) -> dict[str, Any] | None:
        """Where in the table's history the shards were listed (recorded with the run); None for a prefix."""
        return None

    def check_since(self, previous: dict[str, Any] | None) -> list[str]:  # noqa: ARG002 - a prefix has no history
        """Refuse (``TableChangeError``) a change since ``previous`` other than appends; describe the range."""
        return []


class Sink(ABC):
    """The output: where shard files and records go, and what happens when shards have committed."""

    layout: Layout
    label: str
    table_format: str = "parquet"

    def begin(self, state: RunState) -> None:  # noqa: B027 - optional hook
        """Called once the run's state is known, before any shard is processed."""

    def shard_committed(self, record: ShardRecord) -> None:  # noqa: B027 - optional hook
        """Called on the driver each time a shard's file and record are committed."""

    def finish(self) -> dict[str, Any] | None:
        """Called at the end of the run; returns what the table commit did (None for a prefix)."""
        return None

    def status_lines(self, digest: str | None = None) -> list[str]:  # noqa: ARG002 - a prefix has no table
        """Extra lines for ``lakelabel status``: the table and what it holds of spec ``digest``."""
        return []


def open_source(spec: JobSpec) -> Source:
    """The ``Source`` of ``spec.input``."""
    table = spec.input_table
    if table is None:
        from lakelabel.jobs.lake.prefix import PrefixSource  # noqa: PLC0415

        return PrefixSource(spec.input_uri, spec.storage)
    if table.format == "iceberg":
        from lakelabel.jobs.lake.iceberg import IcebergSource  # noqa: PLC0415

        return IcebergSource(table, spec.storage)
    from lakelabel.jobs.lake.delta import DeltaSource  # noqa: PLC0415

    return DeltaSource(table, spec.storage)


def open_sink(spec: JobSpec, input_root: str) -> Sink:
    """The ``Sink`` of ``spec.output``; shard keys are taken relative to ``input_root``."""
    table = spec.output_table
    if table is None:
        from lakelabel.jobs.lake.prefix import PrefixSink  # noqa: PLC0415

        return PrefixSink(spec.output_uri, spec.storage, input_root)
    if table.format == "iceberg":
        from lakelabel.jobs.lake.iceberg import IcebergSink  # noqa: PLC0415

        return IcebergSink(table, spec.storage, input_root, spec)
    from lakelabel.jobs.lake.delta import DeltaSink  # noqa: PLC0415

    return DeltaSink(table, spec.storage, input_root, spec)
