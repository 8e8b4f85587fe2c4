"""The report as one HTML file: matplotlib charts inlined as SVG, the figures as tables and as embedded JSON.

matplotlib renders each chart to SVG text with its glyphs drawn as paths, so the page needs no font, script,
style sheet or image from anywhere: it opens offline, from a mail attachment or an object store, and its
``Content-Security-Policy`` forbids any fetch. The figures are also embedded as JSON
(``<script type="application/json" id="lakelabel-report">``), the same document as ``report.json``.
"""

from __future__ import annotations

import html
import io
import itertools
import json
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["render_page"]

_TOP_LABELS = 25
_TOP_MESSAGES = 10
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-bottom: .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { padding: .15em .7em; border-bottom: 1px solid #eee;
  text-align: left; vertical-align: top; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; } .chart svg { width: 34em; height: auto; }
code { font-size: 90%; } .muted { color: #777; }
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(height: float = 3.0) -> tuple[Figure, Any]:
    figure = Figure(figsize=(6.4, height), dpi=100)
    return figure, figure.subplots()


def _most(counts: dict[str, Any]) -> list[tuple[str, Any]]:
    """Most frequent first, ties by name (JSON objects keep no order)."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _bars(title: str, counts: dict[str, float], unit: str = "rows") -> str:
    items = _most(counts)[:_TOP_LABELS]
    figure, axes = _figure(max(1.6, 0.28 * len(items) + 0.8))
    names = [name if len(name) <= 40 else name[:37] + "..." for name, _ in items][::-1]
    axes.barh(names, [count for _, count in items][::-1], color="#4c78a8")
    if all(isinstance(count, int) for _, count in items):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(unit)
    return _svg(figure)


def _histogram(title: str, series: dict[str, Any], unit: str) -> str:
    figure, axes = _figure()
    edges, bins = series["edges"], series["bins"]
    low, high = series["min"], series["max"]
    if high - low <= 1e-6 * max(1.0, abs(high)):  # e.g. the norms of normalised embeddings: one bar, no 1e-8 axis
        axes.bar([series["mean"]], [series["count"]], width=max(abs(series["mean"]) * 0.02, 0.02), color="#f58518")
        title = f"{title} (all {low:.6g} to {high:.6g})"
    else:
        widths = [right - left for left, right in itertools.pairwise(edges)]
        axes.bar(edges[:-1], bins, width=widths, align="edge", color="#f58518", edgecolor="white")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(unit)
    axes.set_ylabel("rows" if unit != "score of each entity" else "entities")
    return _svg(figure)


def _line(title: str, xs: list[float], ys: list[float], xlabel: str, ylabel: str) -> str:
    figure, axes = _figure()
    axes.plot(xs, ys, marker="o", color="#54a24b")
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_ylim(bottom=0)
    return _svg(figure)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f'<td class="n">{value:,.3f}</td>'
        if isinstance(value, int):
            return f'<td class="n">{value:,}</td>'
        return f"<td>{html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(cell(value) for value in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_UNITS = {
    "score": "score (the best of each row)",
    "length": "length (characters)",
    "norm": "L2 norm",
    "per_row": "entities per row",
}


def _step(step: dict[str, Any]) -> str:
    name = html.escape(step["name"])
    parts = [f"<h3>step <code>{name}</code> ({html.escape(step['task'])})</h3>"]
    parts.append(
        f"<p>{step['rows']:,} rows, {step['nulls']:,} without an annotation, "
        f"{step['rows_with_errors']:,} with an error of this step.</p>"
    )
    charts = []
    if step["labels"]:
        what = "entity types (all entities)" if step["kind"] in {"entities", "detections"} else "labels (best)"
        charts.append(_bars(f"{step['name']}: {what}", step["labels"]))
    for key, series in step["series"].items():
        if series["count"]:
            unit = "score of each entity" if key == "score" and step["kind"] in {"entities", "detections"} else None
            charts.append(_histogram(f"{step['name']}: {key}", series, unit or _UNITS.get(key, key)))
    parts.append('<div class="charts">' + "".join(f'<div class="chart">{c}</div>' for c in charts) + "</div>")
    if step["labels"]:
        parts.append(_table(["label", "rows"], [[k, v] for k, v in _most(step["labels"])[:_TOP_LABELS]]))
    stats = [[key, s["count"], s["min"], s["mean"], s["max"]] for key, s in step["series"].items() if s["count"]]
    if stats:
        parts.append(_table(["series", "values", "min", "mean", "max"], stats))
    return "\n".join(parts)


def _errors(report: dict[str, Any]) -> str:
    rows = [
        [step["name"], message, count]
        for step in report["steps"]
        for message, count in _most(step["errors"])[:_TOP_MESSAGES]
    ]
    if not rows:
        return "<p>No row errors.</p>"
    counts = {step["name"]: step["rows_with_errors"] for step in report["steps"]}
    chart = _bars("rows with an error, by step", counts)
    return f'<div class="chart">{chart}</div>' + _table(["step", "message", "rows"], rows)


def _throughput(report: dict[str, Any]) -> str:
    timing = report["throughput"]
    parts = []
    if timing["rows_per_second"]:
        width = timing["bin_seconds"]
        xs = [width * (i + 0.5) for i in range(len(timing["rows_per_second"]))]
        parts.append(
            _line("rows committed per second over the run", xs, timing["rows_per_second"], "seconds", "rows/s")
        )
        rated = [s for s in timing["shards"] if s["rows_per_second"]]
        if rated:
            rates = {s["key"]: s["rows_per_second"] for s in rated[:_TOP_LABELS]}
            shown = "" if len(rated) <= _TOP_LABELS else f" (the first {_TOP_LABELS} of {len(rated)} committed)"
            parts.append(_bars(f"rows/s per shard, from its first rows back to its commit{shown}", rates, "rows/s"))
    lines = ['<div class="charts">' + "".join(f'<div class="chart">{c}</div>' for c in parts) + "</div>"]
    if timing["steps"]:
        lines.append(
            _table(
                ["step", "task", "rows", "errors", "busy s", "rows/s per worker", "steady rows/s"],
                [
                    [s["name"], s["task"], s["rows"], s["row_errors"], s["busy_seconds"], _per_worker(s), _steady(s)]
                    for s in timing["steps"]
                ],
            )
        )
    if timing["shards"]:
        lines.append(
            _table(
                ["shard", "rows", "row errors", "committed after s", "commit s"],
                [
                    [s["key"], s["rows"], s["row_errors"], s["committed_after_s"], s["commit_seconds"]]
                    for s in timing["shards"][:200]
                ],
            )
        )
    if timing["shards_from_earlier_runs"]:
        lines.append(f"<p>{timing['shards_from_earlier_runs']:,} shard(s) were done by earlier runs.</p>")
    return "\n".join(lines)


def _per_worker(step: dict[str, Any]) -> float:
    return step["rows"] / step["busy_seconds"] if step["busy_seconds"] else 0.0


def _steady(step: dict[str, Any]) -> float:
    span = step["last_batch_at"] - step["first_batch_at"]
    return (step["rows"] - step["first_batch_rows"]) / span if span > 0 else 0.0


def _provenance(report: dict[str, Any]) -> str:
    provenance = report["provenance"]
    rows = [[name, version] for name, version in provenance.get("versions", {}).items()]
    models = []
    for model in provenance.get("models", []):
        weights = model.get("weights_sha256")
        detail = (
            ", ".join(f"{name} sha256 {digest[:16]}" for name, digest in weights.items())
            if weights
            else f"revision {model.get('revision')} -> {model.get('resolved_revision') or 'unresolved'}"
        )
        models.append([model["step"], model["model"], detail])
    return _table(["package", "version"], rows) + _table(["step", "model", "weights"], models)


def render_page(report: dict[str, Any]) -> str:
    """The HTML page of a report's figures."""
    data = json.dumps(report, sort_keys=True, allow_nan=False).replace("</", "<\\/")
    state = "complete" if report["complete"] else "finished with quarantined shards" if report["finished"] else (
        "not finished")  # fmt: skip
    title = f"lakelabel report: {report['job']}"
    quarantined = "".join(
        f"<li><code>{html.escape(q['input'])}</code>: {html.escape(q['reason'])}</li>" for q in report["quarantined"]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Output <code>{html.escape(report["output"])}</code>, run <code>{html.escape(report["run_id"])}</code>: {state}.
{report["rows"]:,} rows in {report["files"]:,} file(s) of {report["shards"]:,} shard(s),
{report["rows_with_errors"]:,} row(s) with errors.</p>
{f"<p>Quarantined shards:</p><ul>{quarantined}</ul>" if quarantined else ""}
<h2>Steps</h2>
{"".join(_step(step) for step in report["steps"])}
<h2>Row errors</h2>
{_errors(report)}
<h2>Throughput</h2>
{_throughput(report)}
<h2>Provenance</h2>
<p>Spec hash <code>{html.escape(report["provenance"].get("spec_hash", ""))}</code>.</p>
{_provenance(report)}
<p class="muted">Figures computed from the output's files; the same figures are in report.json.</p>
<script type="application/json" id="lakelabel-report">{data}</script>
</body></html>
"""
