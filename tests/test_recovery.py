"""Incremental runs, a changed spec, corrupt shards and ``on_error``, and ``lakelabel status``, on a local Ray."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakelabel.jobs.cli import main
from lakelabel.jobs.console.status import output_status
from lakelabel.jobs.lake.shards import ShardError
from lakelabel.jobs.output.state import OutputExistsError
from lakelabel.jobs.runner import JobFailedError, run_job
from lakelabel.jobs.spec import StorageSpec, parse_spec
from tests.test_exactly_once import assert_every_row_once, output_files, records, shard_table, write_shards

LOCAL = fsspec.filesystem("file")


def job(tmp_path: Path, models: dict[str, str], **extra: object) -> dict:
    return {
        "name": "recovery",
        "input": {"uri": str(tmp_path / "in")},
        "output": {"uri": str(tmp_path / "out")},
        "steps": [{"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label"}],
        **extra,
    }


def test_an_incremental_run_processes_only_new_shards(tmp_path: Path, models: dict[str, str], ray_local: None) -> None:
    write_shards(LOCAL, str(tmp_path / "in"), range(3))
    first = run_job(parse_spec(job(tmp_path, models)))
    assert (first.shards_processed, first.shards_skipped, first.rows_out) == (3, 0, 180)
    written = {path: Path(path).stat().st_mtime_ns for path in output_files(LOCAL, str(tmp_path / "out"))}

    write_shards(LOCAL, str(tmp_path / "in"), range(3, 5))
    second = run_job(parse_spec(job(tmp_path, models)))
    assert (second.shards_processed, second.shards_skipped, second.rows_in, second.rows_out) == (2, 3, 120, 120)
    assert {path: Path(path).stat().st_mtime_ns for path in written} == written, "done shards are not rewritten"
    manifest = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    assert [shard["key"] for shard in manifest["shards"]] == [f"day=1/part-{n:02d}" for n in range(5)]
    nulls = sum(shard_table(n).column("text").null_count for n in range(5))
    assert manifest["totals"] == {"shards": 5, "quarantined": 0, "rows_in": 300, "rows_out": 300, "row_errors": nulls}
    assert manifest["run"]["shards_processed"] == 2
    assert manifest["provenance"]["models"][0]["weights_sha256"]["model.safetensors"]
    assert set(manifest["provenance"]["versions"]) >= {"lakelabel", "ray", "torch", "transformers"}
    assert_every_row_once(LOCAL, str(tmp_path / "out"), range(5))

    third = run_job(parse_spec(job(tmp_path, models)))
    assert (third.shards_processed, third.shards_skipped) == (0, 5)


def test_a_changed_spec_is_refused_and_overwrite_replaces_the_output(
    tmp_path: Path, models: dict[str, str], ray_local: None
) -> None:
    write_shards(LOCAL, str(tmp_path / "in"), range(2))
    run_job(parse_spec(job(tmp_path, models)))
    changed = job(tmp_path, models)
    changed["steps"][0]["model"] = models["nli"]
    changed["steps"][0]["options"] = {"top_k": 2}
    with pytest.raises(OutputExistsError) as refused:
        run_job(parse_spec(changed))
    message = str(refused.value)
    assert "holds the output of a different job spec" in message
    assert f"steps[0].model: '{models['classifier']}' -> '{models['nli']}'" in message
    assert "steps[0].options.top_k: None -> 2" in message
    assert "output.mode: overwrite" in message

    changed["output"]["mode"] = "overwrite"
    summary = run_job(parse_spec(changed))
    assert (summary.shards_processed, summary.shards_skipped) == (2, 0)
    out = pq.read_table(tmp_path / "out", partitioning=None)
    assert out.num_rows == 120
    assert out.schema.field("label").type == pa.list_(pa.struct([("label", pa.string()), ("score", pa.float32())]))


def test_resume_refuses_a_prefix_lakelabel_did_not_write(tmp_path: Path, models: dict[str, str]) -> None:
    write_shards(LOCAL, str(tmp_path / "in"), range(1))
    (tmp_path / "out").mkdir()
    pq.write_table(shard_table(9), tmp_path / "out" / "theirs.parquet")
    with pytest.raises(OutputExistsError, match="1 file\\(s\\) that no lakelabel run wrote"):
        run_job(parse_spec(job(tmp_path, models)))


def corrupt_inputs(root: Path) -> dict[str, str]:
    """Four shards unusable before reading and one whose data is damaged behind a good footer; name -> reason."""
    good = io.BytesIO()
    pq.write_table(shard_table(7), good)
    (root / "day=1" / "truncated.parquet").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (root / "day=1" / "not-parquet.parquet").write_text("id,text\n1,hello\n")
    pq.write_table(pa.table({"id": [1], "body": ["no text column"]}), root / "day=1" / "missing.parquet")
    pq.write_table(pa.table({"id": [1], "text": [42]}), root / "day=1" / "wrong-type.parquet")
    data = bytearray(good.getvalue())
    column = pq.ParquetFile(io.BytesIO(good.getvalue())).metadata.row_group(0).column(1)
    data[column.data_page_offset + 30 : column.data_page_offset + 70] = b"\xff" * 40
    (root / "day=1" / "damaged.parquet").write_bytes(bytes(data))
    return {
        "truncated": "unreadable Parquet",
        "not-parquet": "unreadable Parquet",
        "missing": "column 'text' is missing (has: id, body)",
        "wrong-type": "column 'text' is int64, not a string",
        "damaged": "unreadable Parquet data",
    }


def test_corrupt_shards_are_quarantined_and_the_rest_completes(
    tmp_path: Path, models: dict[str, str], ray_local: None, capsys: pytest.CaptureFixture[str]
) -> None:
    write_shards(LOCAL, str(tmp_path / "in"), range(3))
    reasons = corrupt_inputs(tmp_path / "in")
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text(json.dumps(job(tmp_path, models)))
    assert main(["run", str(spec_path)]) == 1
    captured = capsys.readouterr()
    assert "3 processed, 0 already done, 5 quarantined" in captured.out
    assert "5 shard(s) quarantined" in captured.err
    assert_every_row_once(LOCAL, str(tmp_path / "out"), range(3))
    manifest = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    assert manifest["complete"] is False
    got = {Path(q["input"]).stem: q["reason"] for q in manifest["quarantined"]}
    assert set(got) == set(reasons)
    for name, reason in reasons.items():
        assert got[name].startswith(reason), (name, got[name])
    assert not (tmp_path / "out" / "day=1" / "damaged.parquet").exists()
    text, complete = output_status(str(tmp_path / "out"), StorageSpec())
    assert not complete
    assert "3 done, 0 pending, 5 quarantined" in text
    assert "quarantined " + str(tmp_path / "in" / "day=1" / "missing.parquet") + ": column 'text' is missing" in text

    (tmp_path / "in" / "day=1" / "missing.parquet").unlink()
    pq.write_table(shard_table(8), tmp_path / "in" / "day=1" / "missing.parquet")
    assert main(["run", str(spec_path)]) == 1
    assert "1 processed, 3 already done, 4 quarantined" in capsys.readouterr().out
    assert len(records(LOCAL, str(tmp_path / "out"))) == 4


@pytest.mark.parametrize("bad", ["truncated", "not-parquet", "missing", "wrong-type"])
def test_on_error_raise_stops_before_anything_is_written(bad: str, tmp_path: Path, models: dict[str, str]) -> None:
    write_shards(LOCAL, str(tmp_path / "in"), range(2))
    corrupt_inputs(tmp_path / "in")
    for other in {"truncated", "not-parquet", "missing", "wrong-type", "damaged"} - {bad}:
        (tmp_path / "in" / "day=1" / f"{other}.parquet").unlink()
    with pytest.raises(ShardError, match=f"{tmp_path / 'in' / 'day=1' / bad}.parquet: "):
        run_job(parse_spec(job(tmp_path, models, on_error="raise")))
    assert not (tmp_path / "out").exists()


def test_on_error_raise_stops_at_damaged_data_and_at_a_row_error(
    tmp_path: Path, models: dict[str, str], ray_local: None
) -> None:
    write_shards(LOCAL, str(tmp_path / "in"), range(1))
    corrupt_inputs(tmp_path / "in")
    for other in ("truncated", "not-parquet", "missing", "wrong-type"):
        (tmp_path / "in" / "day=1" / f"{other}.parquet").unlink()
    with pytest.raises(JobFailedError, match=r"damaged\.parquet: unreadable Parquet data"):
        run_job(parse_spec(job(tmp_path, models, on_error="raise")))
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    assert not (tmp_path / "out" / "day=1" / "damaged.parquet").exists()

    (tmp_path / "in" / "day=1" / "damaged.parquet").unlink()
    # The run stops at the first row error the staging stage sees: batches come back in any order.
    nulls = "|".join(str(i) for i, text in enumerate(shard_table(0).column("text").to_pylist()) if text is None)
    with pytest.raises(
        JobFailedError, match=rf"part-00\.parquet row ({nulls}): step 'label': input column 'text' is null"
    ):
        run_job(parse_spec(job(tmp_path, models, on_error="raise", output={"uri": str(tmp_path / "out2")})))
    assert output_files(LOCAL, str(tmp_path / "out2")) == []
