"""A table's history: a delete or overwrite since the last run is refused naming the snapshots or versions; time
travel reads exactly that state; the output reads back with the documented types (pyiceberg, deltalake, DuckDB).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from lakelabel.jobs.cli import main
from lakelabel.jobs.lake import TableChangeError
from lakelabel.jobs.lake.storage import split_uri
from lakelabel.jobs.plan import make_plan
from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import parse_spec
from tests.lake_tables import Place, rows


def job(place: Place, source: str, sink: str, steps: list[dict], **input_extra: object) -> dict:
    return {
        "name": "history",
        "input": place.block(source, "tickets") | input_extra,
        "output": place.block(sink, "annotated"),
        "steps": steps,
    }


def classify(models: dict[str, str]) -> list[dict]:
    return [{"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label"}]


def _delete(place: Place, source: str) -> None:
    if source == "iceberg":
        place.catalog().load_table("lake.tickets").delete("id < 3")
    else:
        from deltalake import DeltaTable

        DeltaTable(place.uri("tickets")).delete("id < 3")


def _overwrite(place: Place, source: str) -> None:
    if source == "iceberg":
        place.catalog().load_table("lake.tickets").overwrite(rows(7))
    else:
        from deltalake import write_deltalake

        write_deltalake(place.uri("tickets"), rows(7), mode="overwrite")


@pytest.mark.parametrize("source", ["iceberg", "delta"])
@pytest.mark.parametrize("change", ["delete", "overwrite"])
def test_a_delete_or_overwrite_since_the_last_run_is_refused_naming_it(
    source: str, change: str, tmp_path: Path, models: dict[str, str], ray_local: None, capsys
) -> None:
    place = Place(tmp_path, None, bucket="unused")
    place.append(source, "tickets", rows(0))
    spec = parse_spec(job(place, source, "delta", classify(models)))
    first = run_job(spec)
    assert first.shards_processed == 1
    (_delete if change == "delete" else _overwrite)(place, source)
    place.append(source, "tickets", rows(1))  # an append after it does not hide it
    history = place.commits(source, "tickets")
    changed = history[1]  # the delete or overwrite (pyiceberg's overwrite is a delete snapshot, then an append)
    assert changed["operation"] in {"delete", "overwrite", "DELETE", "WRITE"}

    with pytest.raises(TableChangeError) as refused:
        make_plan(spec)
    message = str(refused.value)
    assert "changed by more than appends" in message
    assert changed["position"] in message, message
    assert history[0]["position"] in message  # the snapshot or version the last run read

    job_file = tmp_path / "job.json"
    job_file.write_text(__import__("json").dumps(job(place, source, "delta", classify(models))))
    assert main(["run", str(job_file)]) == 2
    assert changed["position"] in capsys.readouterr().err
    assert place.read("delta", "annotated").num_rows == rows(0).num_rows, "nothing was committed after the refusal"


@pytest.mark.parametrize(("source", "sink"), [("iceberg", "delta"), ("delta", "iceberg")])
def test_time_travel_reads_exactly_that_state_and_readers_agree_on_types(
    source: str, sink: str, tmp_path: Path, models: dict[str, str], ray_local: None
) -> None:
    place = Place(tmp_path, None, bucket="unused")
    for batch in range(3):
        place.append(source, "tickets", rows(batch))
    history = place.commits(source, "tickets")
    middle = int(history[1]["position"])  # two appends in
    pin = {"snapshot": middle} if source == "iceberg" else {"version": middle}
    steps = [
        *classify(models),
        {"task": "feature-extraction", "model": models["encoder"], "input": "text", "output": "embedding"},
    ]
    summary = run_job(parse_spec(job(place, source, sink, steps, **pin)))
    assert summary.shards_processed == 2

    want = place.read(source, "tickets", at=middle)
    out = place.read(sink, "annotated")
    assert sorted(out.column("id").to_pylist()) == sorted(want.column("id").to_pylist())
    assert out.num_rows == 2 * rows(0).num_rows
    label = pa.struct([("label", pa.string()), ("score", pa.float32())])
    errors = pa.list_(pa.struct([("step", pa.string()), ("message", pa.string())]))
    assert out.schema.field("label").type == label
    assert out.schema.field("lakelabel_errors").type.value_type == errors.value_type
    assert pa.types.is_list(out.schema.field("embedding").type)  # the table's list<float>
    assert out.schema.field("embedding").type.value_type == pa.float32()

    if sink == "iceberg":
        table = place.catalog().load_table("lake.annotated")
        files = [split_uri(task.file.file_path)[1] for task in table.scan().plan_files()]
    else:
        from deltalake import DeltaTable

        files = [split_uri(uri)[1] for uri in DeltaTable(place.uri("annotated")).file_uris()]
    relation = duckdb.sql(f"select * from read_parquet({files!r})")
    types = dict(zip(relation.columns, [str(t) for t in relation.types], strict=True))
    print("duckdb types:", types)
    assert types["label"] == 'STRUCT("label" VARCHAR, score FLOAT)'  # DuckDB quotes its keyword
    assert types["lakelabel_errors"] == "STRUCT(step VARCHAR, message VARCHAR)[]"
    assert types["embedding"] == "FLOAT[]"
    assert types["id"] == "BIGINT"
    by_duckdb = {
        row[0]: row for row in duckdb.sql(f"select id, label.label, text from read_parquet({files!r})").fetchall()
    }
    by_reader = {row["id"]: row for row in out.to_pylist()}
    assert set(by_duckdb) == set(by_reader)
    for row_id, (_, label_name, text) in by_duckdb.items():
        assert text == by_reader[row_id]["text"]
        assert label_name == (by_reader[row_id]["label"] or {}).get("label")

    again = run_job(parse_spec(job(place, source, sink, steps, **pin)))  # pinned at that state: nothing new
    assert (again.shards_processed, again.shards_skipped) == (0, 2)
    moved = run_job(parse_spec(job(place, source, sink, steps)))  # unpinned: the third append only
    assert (moved.shards_processed, moved.shards_skipped) == (1, 2)
