"""Table blocks of the job spec: formats, errors naming the field, the extra a format needs, no credentials kept;
and ``lakelabel plan`` over a table: its snapshot, the files to process and those already done."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lakelabel.jobs.output.provenance import normalised_spec, provenance
from lakelabel.jobs.plan import make_plan
from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import SpecError, parse_spec
from tests.lake_tables import Place, rows

CATALOG = {"type": "sql", "uri": "sqlite:////lake/catalog.db", "warehouse": "s3://lake/warehouse"}
STEP = {"task": "feature-extraction", "model": "org/model", "input": "text", "output": "vec"}


def job(source: dict, sink: dict) -> dict:
    return {"name": "t", "input": source, "output": sink, "steps": [STEP]}


def test_any_input_format_with_any_output_format() -> None:
    iceberg = {"format": "iceberg", "catalog": CATALOG, "table": "lake.tickets"}
    delta = {"format": "delta", "uri": "s3://lake/annotated/"}
    spec = parse_spec(job(iceberg | {"snapshot": 6512334}, delta | {"commit_every": 10}))
    assert (spec.input_table.format, spec.input_table.table, spec.input_table.snapshot) == ("iceberg", "lake.tickets",
                                                                                          6512334)  # fmt: skip
    assert dict(spec.input_table.catalog) == CATALOG
    assert (spec.output_table.format, spec.output_table.uri, spec.commit_every) == ("delta", "s3://lake/annotated", 10)
    spec = parse_spec(job({"format": "delta", "uri": "/lake/t", "version": 3}, iceberg))
    assert (spec.input_table.version, spec.output_table.table) == (3, "lake.tickets")
    spec = parse_spec(job({"uri": "/lake/in"}, {"format": "parquet", "uri": "/lake/out"}))
    assert spec.input_table is None
    assert spec.output_table is None


@pytest.mark.parametrize(
    ("source", "sink", "field"),
    [
        ({"format": "orc", "uri": "/x"}, {"uri": "/o"}, "input.format"),
        ({"format": "iceberg", "table": "lake.t"}, {"uri": "/o"}, "input.catalog"),
        ({"format": "iceberg", "catalog": CATALOG}, {"uri": "/o"}, "input.table"),
        ({"format": "iceberg", "catalog": CATALOG, "table": "tickets"}, {"uri": "/o"}, "input.table"),
        (
            {"format": "iceberg", "catalog": CATALOG, "table": "lake.t", "snapshot": "x"},
            {"uri": "/o"},
            "input.snapshot",
        ),
        ({"format": "iceberg", "catalog": CATALOG, "table": "lake.t", "uri": "/x"}, {"uri": "/o"}, "input"),
        (
            {"format": "iceberg", "catalog": {"type": "sql", "props": {"a": 1}}, "table": "lake.t"},
            {"uri": "/o"},
            "input.catalog.props",
        ),
        ({"format": "delta"}, {"uri": "/o"}, "input.uri"),
        ({"format": "delta", "uri": "/x", "version": -1}, {"uri": "/o"}, "input.version"),
        ({"format": "delta", "uri": "/x", "table": "a.b"}, {"uri": "/o"}, "input"),
        ({"uri": "/x"}, {"format": "delta", "uri": "/o", "version": 2}, "output.version"),
        ({"uri": "/x"}, {"format": "delta", "uri": "/o", "mode": "overwrite"}, "output.mode"),
        ({"uri": "/x"}, {"uri": "/o", "commit_every": 5}, "output.commit_every"),
        ({"uri": "/x"}, {"format": "delta", "uri": "/o", "commit_every": 0}, "output.commit_every"),
    ],
)
def test_errors_name_the_field(source: dict, sink: dict, field: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(job(source, sink))
    assert str(error.value).startswith(f"{field}:"), str(error.value)


@pytest.mark.parametrize(("table_format", "module", "extra"), [("iceberg", "pyiceberg", "iceberg"),
                                                               ("delta", "deltalake", "delta")])  # fmt: skip
def test_a_table_job_without_its_library_names_the_extra(
    table_format: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: find_spec answers None
    block = {"format": "iceberg", "catalog": CATALOG, "table": "lake.t"} if table_format == "iceberg" else {
        "format": "delta", "uri": "/lake/t"}  # fmt: skip
    with pytest.raises(SpecError) as error:
        parse_spec(job({"uri": "/x"}, block))
    assert str(error.value) == (
        f"output.format: {table_format} needs the '{extra}' extra ({module} is not installed): "
        f"pip install 'lakelabel[{extra}]'"
    )


def test_catalog_credentials_stay_out_of_the_spec_hash_and_provenance() -> None:
    secret = "s3cr3t-value"
    catalog = CATALOG | {"uri": f"postgresql://lake:{secret}@db/catalog", "s3.secret-access-key": secret}
    spec = parse_spec(job({"format": "iceberg", "catalog": catalog, "table": "lake.t"}, {"uri": "/o"}))
    kept = json.dumps([normalised_spec(spec), provenance(spec)]) + repr(spec)
    assert secret not in kept
    assert "postgresql://lake:***@db/catalog" in kept


def test_plan_shows_the_snapshot_the_files_to_process_and_those_done(
    tmp_path: Path, models: dict[str, str], ray_local: None
) -> None:
    place = Place(tmp_path, None, bucket="unused")
    place.append("iceberg", "tickets", rows(0))
    spec_data = {
        "name": "plan",
        "input": place.block("iceberg", "tickets"),
        "output": place.block("delta", "annotated"),
        "steps": [{"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label"}],
    }
    first = make_plan(parse_spec(spec_data))
    snapshot = place.commits("iceberg", "tickets")[-1]["position"]
    text = first.render()
    assert (
        f"input  iceberg table lake.tickets (catalog sql): 1 shard(s), {rows(0).num_rows} rows, 0 already done" in text
    )
    assert f"snapshot {snapshot}: every data file" in text
    assert "table: delta table" in text
    assert "does not exist yet" in text
    run_job(parse_spec(spec_data))

    place.append("iceberg", "tickets", rows(1))
    later = make_plan(parse_spec(spec_data))
    text = later.render()
    now = place.commits("iceberg", "tickets")[-1]["position"]
    assert "2 shard(s)" in text
    assert "1 already done" in text
    assert f"snapshot {now}: 1 append snapshot(s) since snapshot {snapshot}, read by the last run" in text
    assert sum(line.endswith("(done)") for line in text.splitlines()) == 1
    assert "1 of 1 committed shard file(s) registered, 0 awaiting" in text
