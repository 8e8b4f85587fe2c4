"""``lakelabel report OUTPUT``: what came out of a job, as a self-contained HTML page and the same figures as JSON.

The figures are computed from the output itself: its Parquet files are streamed batch by batch (twice: extremes,
then histograms; see ``jobs/report/figures.py``), and the shard records and manifest under ``_lakelabel/`` give the
timings and the provenance. Nothing is taken from a driver's memory, so a report can be made of any output prefix,
at any time, from any machine that reaches it.

Example::

    lakelabel report s3://lake/tickets-annotated/2026-11-21/ --out ./tickets-report
    # -> ./tickets-report/report.html and ./tickets-report/report.json
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from lakelabel.jobs.lake.storage import filesystem
from lakelabel.jobs.output.layout import STATE, Layout
from lakelabel.jobs.report.figures import Figures

if TYPE_CHECKING:
    import fsspec
    import pyarrow as pa

    from lakelabel.jobs.spec import StorageSpec

__all__ = ["BATCH_ROWS", "ReportError", "ReportFiles", "build_report", "report_figures"]

BATCH_ROWS = 4096
"""Rows read at a time: with 1,024-float embeddings a batch is 16 MiB."""
TIMELINE_BINS = 20


class ReportError(RuntimeError):
    """The prefix holds no lakelabel output to report on."""


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written."""

    html: Path
    json: Path


def _batches(fs: fsspec.AbstractFileSystem, paths: list[str], columns: list[str]) -> Iterator[pa.RecordBatch]:
    for path in paths:
        with fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            present = [name for name in columns if name in parquet.schema_arrow.names]
            yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=present, use_threads=False)


def _shards(layout: Layout, manifest: dict[str, Any] | None, run: dict[str, Any]) -> list[dict[str, Any]]:
    if manifest is not None:
        return manifest["shards"]
    records = layout.read_records()
    return sorted((r for r in records if r["spec_hash"] == run["spec_hash"]), key=lambda r: r["key"])


def _timeline(shards: list[dict[str, Any]], run_id: str, started_at: float) -> dict[str, Any]:
    """Rows committed over the latest run's time (rows/s per time bin) and each shard's timings."""
    mine = [shard for shard in shards if shard["run_id"] == run_id and shard.get("committed_at")]
    per_shard = [
        {
            "key": shard["key"],
            "rows": shard["rows_out"],
            "row_errors": shard["row_errors"],
            "committed_after_s": shard["committed_at"] - started_at,
            "first_row_after_s": (shard["first_row_at"] - started_at) if shard.get("first_row_at") else None,
            "commit_seconds": shard["commit_seconds"],
            "rows_per_second": _rate(shard),
        }
        for shard in sorted(mine, key=lambda s: s["committed_at"])
    ]
    if not per_shard:
        return {"bin_seconds": 0.0, "rows_per_second": [], "shards": [], "shards_from_earlier_runs": len(shards)}
    end = max(item["committed_after_s"] for item in per_shard)
    width = end / TIMELINE_BINS if end > 0 else 1.0
    rows = [0] * TIMELINE_BINS
    for item in per_shard:
        rows[min(int(item["committed_after_s"] / width), TIMELINE_BINS - 1)] += item["rows"]
    return {
        "bin_seconds": width,
        "rows_per_second": [count / width for count in rows],
        "shards": per_shard,
        "shards_from_earlier_runs": len(shards) - len(mine),
    }


def _rate(shard: dict[str, Any]) -> float | None:
    """A shard's rows over the seconds from its first rows back from the pipeline to its commit."""
    first = shard.get("first_row_at")
    if not first or shard["committed_at"] <= first:
        return None
    return shard["rows_out"] / (shard["committed_at"] - first)


def report_figures(uri: str, storage: StorageSpec) -> dict[str, Any]:
    """The report's figures for the output at ``uri`` (a prefix; for a table output, the prefix of its files)."""
    fs, root = filesystem(uri, storage)
    layout = Layout(fs=fs, root=root, input_root="")
    run = layout.read_json(layout.run_file)
    if run is None:
        raise ReportError(f"{uri}: no lakelabel run has written here (no {STATE}/run.json)")
    manifest = layout.read_json(layout.success_file)
    shards = _shards(layout, manifest, run)
    paths = [f"{root}/{name}" for shard in shards for name in shard["files"]]
    tasks = {step["output"]: step["task"] for step in run["spec"]["steps"]}
    if paths:
        with fs.open(paths[0], "rb") as handle:
            schema = pq.ParquetFile(handle).schema_arrow
    else:
        import pyarrow as pa  # noqa: PLC0415

        schema = pa.schema([])
    figures = Figures.for_schema(schema, tasks)
    for batch in _batches(fs, paths, figures.columns):
        figures.first_pass(batch)
    for batch in _batches(fs, paths, list(figures.extractors)):
        figures.second_pass(batch)
    finished = manifest is not None and manifest.get("run", {}).get("id") == run["run_id"]
    return {
        "output": uri,
        "job": run["provenance"].get("job"),
        "run_id": run["run_id"],
        "complete": bool(finished and manifest.get("complete")),
        "finished": finished,
        "shards": len(shards),
        "files": len(paths),
        "quarantined": manifest.get("quarantined", []) if manifest else [],
        **figures.to_json(),
        "throughput": {
            "run_seconds": (manifest["run"]["finished_at"] - run["started_at"]) if finished else None,
            "steps": manifest.get("steps", []) if finished else [],
            **_timeline(shards, run["run_id"], run["started_at"]),
        },
        "provenance": run["provenance"],
        "spec": run["spec"],
    }


def build_report(uri: str, storage: StorageSpec, out: str | Path) -> ReportFiles:
    """Write ``report.json`` and ``report.html`` (charts embedded, nothing fetched when opened) into ``out``."""
    from lakelabel.jobs.report.page import render_page  # noqa: PLC0415 - matplotlib only when a page is made

    figures = report_figures(uri, storage)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(html=target / "report.html", json=target / "report.json")
    files.json.write_text(json.dumps(figures, indent=1, sort_keys=True, allow_nan=False), encoding="utf-8")
    files.html.write_text(render_page(figures), encoding="utf-8")
    return files
