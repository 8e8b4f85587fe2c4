"""The report's figures as DuckDB computes them from the same rows: the reference the report is checked against.

Histograms follow the report's documented rule, written here in SQL: 20 equal bins from the series' minimum to its
maximum, ``least(floor((x - min) / (max - min) * 20), 19)``.
"""

from __future__ import annotations

from typing import Any

import duckdb

BINS = 20

# Per step kind: (SQL of the label of each non-null row, {series: SQL of its values}); ``{c}`` is the column,
# ``{src}`` the relation. Entities are counted one by one (every entity of every row).
KINDS: dict[str, tuple[str | None, dict[str, str]]] = {
    "label": (
        "select {c}.label as v from {src} where {c} is not null",
        {"score": "select {c}.score::double as v from {src} where {c} is not null"},
    ),
    "zero-shot": (
        "select {c}.labels[1] as v from {src} where {c} is not null",
        {"score": "select {c}.scores[1]::double as v from {src} where {c} is not null"},
    ),
    "entities": (
        "select e.entity_group as v from (select unnest({c}) as e from {src} where {c} is not null)",
        {
            "score": "select e.score::double as v from (select unnest({c}) as e from {src} where {c} is not null)",
            "per_row": "select len({c})::double as v from {src} where {c} is not null",
        },
    ),
    "text": (None, {"length": "select length({c}.generated_text)::double as v from {src} where {c} is not null"}),
    "asr": (None, {"length": "select length({c}.text)::double as v from {src} where {c} is not null"}),
    "embedding": (
        None,
        {
            "norm": "select sqrt(list_sum(list_transform({c}, lambda x: x::double * x::double))) as v "
            "from {src} where {c} is not null"
        },
    ),
}


def histogram(con: duckdb.DuckDBPyConnection, values: str) -> dict[str, Any]:
    count, low, high, mean = con.execute(f"select count(v), min(v), max(v), avg(v) from ({values})").fetchone()
    if not count:
        return {"count": 0}
    if high == low:
        return {"count": count, "min": low, "max": high, "mean": mean, "bins": [count]}
    rows = con.execute(
        f"select least(floor((v - {low!r}) / ({high!r} - {low!r}) * {BINS}), {BINS - 1})::int as b, count(*) "
        f"from ({values}) where v is not null group by b order by b"
    ).fetchall()
    bins = [0] * BINS
    for index, hits in rows:
        bins[index] = hits
    return {"count": count, "min": low, "max": high, "mean": mean, "bins": bins}


def step_figures(con: duckdb.DuckDBPyConnection, src: str, column: str, kind: str) -> dict[str, Any]:
    labels_sql, series = KINDS[kind]
    rows, nulls = con.execute(f"select count(*), count(*) - count({column}) from {src}").fetchone()
    labels = {}
    if labels_sql is not None:
        query = labels_sql.format(c=column, src=src)
        labels = dict(con.execute(f"select v, count(*) from ({query}) group by v").fetchall())
    errors = dict(
        con.execute(
            f"select e.message, count(*) from (select unnest(lakelabel_errors) as e from {src}) "
            f"where e.step = '{column}' group by e.message"
        ).fetchall()
    )
    return {
        "rows": rows,
        "nulls": nulls,
        "labels": labels,
        "series": {name: histogram(con, sql.format(c=column, src=src)) for name, sql in series.items()},
        "errors": errors,
    }


def rows_with_errors(con: duckdb.DuckDBPyConnection, src: str) -> int:
    return con.execute(f"select count(*) from {src} where len(lakelabel_errors) > 0").fetchone()[0]


def assert_step_matches(report_step: dict[str, Any], reference: dict[str, Any]) -> None:
    """Counts and bins exactly; extremes and means to floating-point summation order."""
    name = report_step["name"]
    assert (report_step["rows"], report_step["nulls"]) == (reference["rows"], reference["nulls"]), name
    assert report_step["labels"] == reference["labels"], name
    assert report_step["errors"] == reference["errors"], name
    assert sorted(report_step["series"]) == sorted(reference["series"]), name
    for key, expected in reference["series"].items():
        got = report_step["series"][key]
        assert got["count"] == expected["count"], (name, key)
        if expected["count"]:
            for stat in ("min", "max", "mean"):
                assert abs(got[stat] - expected[stat]) <= 1e-9 * max(1.0, abs(expected[stat])), (name, key, stat)
            assert got["bins"] == expected["bins"], (name, key)
