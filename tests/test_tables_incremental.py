"""Iceberg and Delta tables in and out, on the loopback S3 endpoint and locally: three appends, a run after each.

Each run processes only the data files the append added; the output table (read back by its own library) holds
every input row exactly once, annotated as ``pipeline()`` annotates it; ``status`` and the manifest agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from lakelabel.jobs.console.status import output_status
from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import parse_spec
from lakelabel.operators import ERROR_COLUMN
from tests.lake_tables import Place, moto_process, rows, with_credentials


@pytest.fixture(scope="module")
def s3_process() -> str:
    with_credentials()
    with moto_process() as endpoint:
        yield endpoint


def job(place: Place, source: str, sink: str, models: dict[str, str]) -> dict:
    storage = {"storage": {"endpoint_url": place.endpoint}} if place.endpoint else {}
    return {
        "name": "tables",
        "input": place.block(source, "tickets"),
        "output": place.block(sink, "annotated") | {"commit_every": 2},
        "steps": [{"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label"}],
        **storage,
    }


def reference_labels(model: str, texts: list[str | None]) -> list[dict | None]:
    from transformers import pipeline

    classify = pipeline("text-classification", model=model, truncation=True)
    return [None if text is None else classify(text)[0] for text in texts]


@pytest.mark.parametrize(
    ("source", "sink", "where"),
    [
        ("iceberg", "delta", "s3"),
        ("delta", "iceberg", "s3"),
        ("iceberg", "iceberg", "local"),
        ("delta", "delta", "local"),
    ],
)
def test_three_appends_each_run_processes_only_new_files(
    source: str, sink: str, where: str, tmp_path: Path, models: dict[str, str], ray_local: None, request
) -> None:
    endpoint = request.getfixturevalue("s3_process") if where == "s3" else None
    place = Place(tmp_path, endpoint, bucket=f"inc-{source}-{sink}")
    spec = parse_spec(job(place, source, sink, models))
    added: list[pa.Table] = []
    for batch in range(3):
        data = pa.concat_tables([rows(batch * 10 + part) for part in range(batch + 1)])  # 1, 2, then 3 files
        for part in range(batch + 1):
            place.append(source, "tickets", rows(batch * 10 + part))
        added.append(data)
        summary = run_job(spec)
        assert (summary.shards_processed, summary.shards_skipped) == (batch + 1, sum(range(1, batch + 1)))
        assert summary.rows_in == data.num_rows

        out = place.read(sink, "annotated")
        expected = place.read(source, "tickets")
        assert sorted(out.column("id").to_pylist()) == sorted(expected.column("id").to_pylist())  # each row once
        assert len(set(out.column("id").to_pylist())) == out.num_rows

    by_id = {row["id"]: row for row in out.to_pylist()}
    inputs = expected.sort_by("id")
    texts = inputs.column("text").to_pylist()
    want = reference_labels(models["classifier"], texts)
    for row_id, text, label in zip(inputs.column("id").to_pylist(), texts, want, strict=True):
        got = by_id[row_id]
        assert got["text"] == text
        if label is None:
            assert got["label"] is None
            assert got[ERROR_COLUMN] == [{"step": "label", "message": "input column 'text' is null"}]
        else:
            assert got["label"]["label"] == label["label"]
            assert got["label"]["score"] == pytest.approx(label["score"], abs=1e-5)
            assert got[ERROR_COLUMN] == []

    commits = [c for c in place.commits(sink, "annotated") if "lakelabel.run-id" in c]
    keys = [(c["lakelabel.run-id"], c["lakelabel.batch"]) for c in commits]
    assert len(keys) == len(set(keys)), "no (run, batch) committed twice"
    assert sum(int(c["lakelabel.shards"]) for c in commits) == 6, "each data file registered once"
    assert len({c["lakelabel.run-id"] for c in commits}) == 3
    assert all(c["operation"] in {"append", "WRITE", "CREATE TABLE"} for c in commits)
    last = json.loads(commits[-1]["lakelabel.input"])
    assert last["format"] == source
    assert json.loads(commits[-1]["lakelabel.models"])[0]["weights_sha256"]

    sink_spec = job(place, source, sink, models)["output"]
    location = place.uri("annotated") if sink == "delta" else None
    manifest_fs, manifest_path = _manifest(place, sink, location)
    manifest = json.loads(manifest_fs.cat_file(manifest_path))
    assert manifest["totals"]["shards"] == 6
    assert manifest["totals"]["rows_out"] == inputs.num_rows
    assert manifest["input_position"]["format"] == source
    text, complete = output_status(_status_target(tmp_path, place, sink_spec, location), spec.storage)
    assert complete, text
    assert "6 done, 0 pending, 0 quarantined" in text
    assert f"rows (done shards): {inputs.num_rows} in, {inputs.num_rows} out" in text
    assert "6 of 6 committed shard file(s) registered, 0 awaiting" in text


def _manifest(place: Place, sink: str, location: str | None):
    from lakelabel.jobs.lake import open_sink

    spec = parse_spec(
        {"name": "m", "input": {"uri": "/x"}, "output": place.block(sink, "annotated"),
         "steps": [{"task": "feature-extraction", "model": "org/m", "input": "text", "output": "v"}]}
        | ({"storage": {"endpoint_url": place.endpoint}} if place.endpoint else {})
    )  # fmt: skip
    layout = open_sink(spec, "").layout
    return layout.fs, layout.success_file


def _status_target(tmp_path: Path, place: Place, sink_block: dict, location: str | None) -> str:
    if location is not None:
        return location  # a Delta table's URI
    job_file = tmp_path / "status-job.json"
    storage = {"storage": {"endpoint_url": place.endpoint}} if place.endpoint else {}
    job_file.write_text(json.dumps({"name": "status", "input": {"uri": "/unused"}, "output": sink_block, **storage,
                                    "steps": [{"task": "feature-extraction", "model": "org/m", "input": "text",
                                               "output": "v"}]}))  # fmt: skip
    return str(job_file)
