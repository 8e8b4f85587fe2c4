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

A fourth format is one module with a ``Source`` and a ``Sink`` (``lakelabel.jobs.lake.base``) and one line in
``open_source`` / ``open_sink``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakelabel.jobs.lake.base import Sink, Source, TableChangeError

if TYPE_CHECKING:
    from lakelabel.jobs.spec import JobSpec

__all__ = ["Sink", "Source", "TableChangeError", "open_sink", "open_source"]


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
