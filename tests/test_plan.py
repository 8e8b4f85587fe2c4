"""``lakelabel plan`` and the pre-flight checks: shards from footers, bad shards by path, no model loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakelabel.jobs.cli import main
from lakelabel.jobs.lake.shards import ShardError
from lakelabel.jobs.plan import make_plan
from lakelabel.jobs.pools import Machine
from lakelabel.jobs.spec import parse_spec
from tests.conftest import write_parquet

NEVER_LOADED = "example-org/model-that-does-not-exist"


def spec_for(tmp_path: Path, on_error: str = "raise", **input_block: object):
    return parse_spec(
        {
            "name": "p",
            "on_error": on_error,
            "input": {"uri": str(tmp_path / "in"), **input_block},
            "output": {"uri": str(tmp_path / "out")},
            "steps": [
                {"task": "text-classification", "model": NEVER_LOADED, "input": "text", "output": "label"},
                {
                    "task": "zero-shot-classification",
                    "model": NEVER_LOADED,
                    "input": "text",
                    "output": "topic",
                    "options": {"candidate_labels": ["a", "b"]},
                    "num_gpus": 0,
                },
            ],
        }
    )


def test_plan_lists_shards_rows_and_bytes_without_loading_models(tmp_path: Path) -> None:
    first = write_parquet(tmp_path / "in" / "a.parquet", text=["x", "y", "z"])
    second = write_parquet(tmp_path / "in" / "sub" / "b.parquet", text=["w"])
    (tmp_path / "in" / "_SUCCESS").write_text("")
    plan = make_plan(spec_for(tmp_path))
    assert [(s.path, s.rows, s.bytes) for s in plan.shards] == [
        (str(first), 3, first.stat().st_size),
        (str(second), 1, second.stat().st_size),
    ]
    assert plan.rows == 4
    text = plan.render(Machine(cpus=3, gpus=0, label="two cores"))
    assert f"{first}  3 rows  {first.stat().st_size} bytes" in text
    assert "text -> label [struct<label: string, score: float>]" in text
    assert "pools sized for two cores" in text
    assert "gpus 0 (the cluster has no GPUs)" in text  # the first step would take a GPU
    assert "cpus 1 per actor, gpus 0\n" in text  # the second step's num_gpus: 0
    assert not (tmp_path / "out").exists()


def test_a_missing_column_is_reported_by_path(tmp_path: Path) -> None:
    write_parquet(tmp_path / "in" / "good.parquet", text=["x"])
    bad = write_parquet(tmp_path / "in" / "bad.parquet", body=["x"])
    with pytest.raises(ShardError, match=f"{bad}: column 'text' is missing \\(has: body\\)"):
        make_plan(spec_for(tmp_path))


def test_a_column_of_the_wrong_type_is_reported_by_path(tmp_path: Path) -> None:
    bad = write_parquet(tmp_path / "in" / "numbers.parquet", text=[1, 2])
    with pytest.raises(ShardError, match=f"{bad}: column 'text' is int64, not a string"):
        make_plan(spec_for(tmp_path))


def test_an_unreadable_shard_is_reported_by_path(tmp_path: Path) -> None:
    write_parquet(tmp_path / "in" / "good.parquet", text=["x"])
    bad = tmp_path / "in" / "broken.parquet"
    bad.write_bytes(b"this is not parquet at all")
    with pytest.raises(ShardError, match=f"{bad}: unreadable Parquet"):
        make_plan(spec_for(tmp_path))


def test_on_error_record_quarantines_bad_shards_with_their_reasons(tmp_path: Path) -> None:
    good = write_parquet(tmp_path / "in" / "good.parquet", text=["x"])
    missing = write_parquet(tmp_path / "in" / "missing.parquet", body=["x"])
    numbers = write_parquet(tmp_path / "in" / "numbers.parquet", text=[1])
    garbage = tmp_path / "in" / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet at all")
    plan = make_plan(spec_for(tmp_path, on_error="record"))
    assert [shard.path for shard in plan.shards] == [str(good)]
    reasons = {item.path: item.reason for item in plan.quarantined}
    assert reasons[str(missing)] == "column 'text' is missing (has: body)"
    assert reasons[str(numbers)] == "column 'text' is int64, not a string"
    assert reasons[str(garbage)].startswith("unreadable Parquet")
    text = plan.render()
    assert "quarantined: 3 shard(s) left out (on_error: record)" in text
    assert f"{missing}: column 'text' is missing" in text


def test_the_minority_type_of_a_column_is_quarantined(tmp_path: Path) -> None:
    import pyarrow as pa

    for name in ("a", "b"):
        write_parquet(tmp_path / "in" / f"{name}.parquet", text=["x"], n=pa.array([1], pa.int64()))
    odd = write_parquet(tmp_path / "in" / "c.parquet", text=["x"], n=["one"])
    plan = make_plan(spec_for(tmp_path, on_error="record"))
    assert len(plan.shards) == 2
    assert [(q.path, q.reason.split(":")[0]) for q in plan.quarantined] == [
        (str(odd), "column 'n' has different types across shards")
    ]


def test_an_output_inside_the_input_is_refused(tmp_path: Path) -> None:
    write_parquet(tmp_path / "in" / "a.parquet", text=["x"])
    spec = parse_spec(
        {
            "name": "p",
            "input": {"uri": str(tmp_path / "in")},
            "output": {"uri": str(tmp_path / "in" / "annotated")},
            "steps": [{"task": "text-classification", "model": NEVER_LOADED, "input": "text", "output": "label"}],
        }
    )
    with pytest.raises(ShardError, match=r"output\.uri: .* lies inside the input"):
        make_plan(spec)


def test_no_shards_names_the_uri(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(ShardError, match=r"input\.uri: no Parquet shards"):
        make_plan(spec_for(tmp_path))


def test_plan_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_parquet(tmp_path / "in" / "a.parquet", text=["x"], other=[1])
    job = tmp_path / "job.json.yaml"
    job.write_text(
        json.dumps(
            {
                "name": "p",
                "on_error": "raise",
                "input": {"uri": str(tmp_path / "in" / "*.parquet"), "columns": ["text"]},
                "output": {"uri": str(tmp_path / "out")},
                "steps": [{"task": "feature-extraction", "model": NEVER_LOADED, "input": "text", "output": "v"}],
            }
        )
    )
    assert main(["plan", str(job)]) == 0
    out = capsys.readouterr().out
    assert "1 shard(s), 1 rows" in out
    assert "unknown until the model's config can be read" in out
    (tmp_path / "in" / "a.parquet").unlink()
    write_parquet(tmp_path / "in" / "a.parquet", other=[1])
    assert main(["plan", str(job)]) == 2
    assert "column 'text' is missing" in capsys.readouterr().err


def _image_spec(tmp_path: Path) -> object:
    return parse_spec(
        {
            "name": "images",
            "on_error": "raise",
            "input": {"uri": str(tmp_path / "in")},
            "output": {"uri": str(tmp_path / "out")},
            "steps": [{"task": "image-classification", "model": NEVER_LOADED, "input": "image", "output": "labels"}],
        }
    )


def test_media_columns_must_hold_bytes_or_a_bytes_path_struct(tmp_path: Path) -> None:
    import pyarrow as pa

    raw = write_parquet(tmp_path / "in" / "raw.parquet", image=pa.array([b"\x89PNG", None], pa.binary()))
    assert make_plan(_image_spec(tmp_path)).rows == 2
    raw.unlink()
    write_parquet(
        tmp_path / "in" / "datasets.parquet",
        image=pa.array(
            [{"bytes": b"\x89PNG", "path": "a.png"}], pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        ),
    )
    plan = make_plan(_image_spec(tmp_path))
    assert plan.rows == 1
    text = plan.render()
    assert "stage prepare" in text
    assert "decodes image" in text
    assert "gpus 0\n" in text
    (tmp_path / "in" / "datasets.parquet").unlink()
    bad = write_parquet(tmp_path / "in" / "names.parquet", image=["cat.png"])
    with pytest.raises(ShardError, match=f"{bad}: column 'image' is string, not encoded image bytes"):
        make_plan(_image_spec(tmp_path))


def test_a_media_column_must_have_one_type_across_shards(tmp_path: Path) -> None:
    import pyarrow as pa

    raw = write_parquet(tmp_path / "in" / "raw.parquet", image=pa.array([b"\x89PNG"], pa.binary()))
    nested = write_parquet(
        tmp_path / "in" / "nested.parquet",
        image=pa.array(
            [{"bytes": b"\x89PNG", "path": "a.png"}], pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        ),
    )
    with pytest.raises(ShardError) as raised:
        make_plan(_image_spec(tmp_path))
    message = str(raised.value)
    assert "column 'image' has different types across shards" in message
    assert f"binary in {raw}" in message
    assert f"struct<bytes: binary, path: string> in {nested}" in message
