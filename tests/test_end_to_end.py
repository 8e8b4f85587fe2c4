"""A three-step job from a bucket on a loopback S3 endpoint back into the bucket, on a local Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from lakelabel.jobs.cli import main
from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import parse_spec
from lakelabel.operators import ERROR_COLUMN, ERROR_TYPE

SENTENCES = [
    "John Smith works for Acme Corporation in Paris.",
    "Mary met Peter at the Globex office in Berlin on Monday.",
    "The match ended in a draw after extra time.",
    "東京は日本の首都です。",
    "Great phone 😍 but the battery dies fast.",
    "",
]


def source_table(shard: int, rows: int) -> pa.Table:
    ids = list(range(shard * 1000, shard * 1000 + rows))
    texts = [SENTENCES[i % len(SENTENCES)] + f" #{i}" if i % 17 else None for i in ids]
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "text": pa.array(texts, pa.string()),
            "meta": pa.array([{"lang": "en", "n": i} for i in ids]),
            "score_in": pa.array([i / 7 for i in ids], pa.float64()),
        }
    )


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> s3fs.S3FileSystem:
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    fs.mkdir("e2e")
    for shard, rows in enumerate([40, 25, 35]):
        with fs.open(f"e2e/raw/day=1/part-{shard}.parquet", "wb") as handle:
            pq.write_table(source_table(shard, rows), handle)
    return fs


def three_steps(models: dict[str, str], minilm: str) -> list[dict]:
    return [
        {"task": "token-classification", "model": models["ner"], "input": "text", "output": "entities"},
        {
            "task": "text-classification",
            "model": models["classifier"],
            "input": "text",
            "output": "sentiment",
            "batch_size": 16,
        },
        {
            "task": "feature-extraction",
            "model": minilm,
            "input": "text",
            "output": "embedding",
            "concurrency": [1, 2],
        },
    ]


def read_all(fs: s3fs.S3FileSystem, prefix: str) -> pa.Table:
    files = sorted(p for p in fs.find(prefix) if p.endswith(".parquet"))
    assert files
    tables = []
    for path in files:
        with fs.open(path, "rb") as handle:
            tables.append(pq.read_table(handle))
    return pa.concat_tables(tables).sort_by("id")


def test_three_step_job_from_s3_to_s3(
    bucket: s3fs.S3FileSystem,
    s3_endpoint: str,
    models: dict[str, str],
    minilm: str,
    ray_local: None,
    tmp_path: Path,
) -> None:
    spec = parse_spec(
        {
            "name": "e2e",
            "input": {"uri": "s3://e2e/raw/"},
            "output": {"uri": "s3://e2e/annotated/"},
            "storage": {"endpoint_url": s3_endpoint},
            "steps": three_steps(models, minilm),
        }
    )
    summary = run_job(spec)
    source = pa.concat_tables([source_table(s, n) for s, n in enumerate([40, 25, 35])])
    nulls = source.column("text").null_count
    assert (summary.shards, summary.rows_in, summary.rows_out, summary.row_errors) == (3, 100, 100, nulls)
    assert [(s.name, s.rows, s.row_errors) for s in summary.steps] == [
        ("entities", 100, nulls),
        ("sentiment", 100, nulls),
        ("embedding", 100, nulls),
    ]

    assert sorted(p for p in bucket.find("e2e/annotated") if p.endswith(".parquet")) == [
        f"e2e/annotated/day=1/part-{shard}.parquet" for shard in range(3)
    ], "one output file per input shard, named after it"
    out = read_all(bucket, "e2e/annotated")
    assert out.num_rows == 100
    assert out.select(source.column_names).equals(source), "input columns must be preserved exactly"
    schema = out.schema
    assert schema.names == [
        "id",
        "text",
        "meta",
        "score_in",
        "entities",
        "sentiment",
        "embedding",
        ERROR_COLUMN,
    ]
    assert schema.field("sentiment").type == pa.struct([("label", pa.string()), ("score", pa.float32())])
    assert schema.field("embedding").type == pa.list_(pa.float32(), 384)
    assert schema.field("entities").type.value_type.names == ["entity_group", "score", "word", "start", "end"]
    assert schema.field(ERROR_COLUMN).type == ERROR_TYPE
    for row in out.to_pylist():
        if row["text"] is None:
            assert row["sentiment"] is None
            assert row["embedding"] is None
            assert row["entities"] is None
            assert {e["step"] for e in row[ERROR_COLUMN]} == {"entities", "sentiment", "embedding"}
        else:
            assert row["sentiment"]["label"] in {"negative", "neutral", "positive"}
            assert len(row["embedding"]) == 384
            assert row[ERROR_COLUMN] == []

    local = tmp_path / "copy"
    bucket.get("e2e/annotated/", str(local), recursive=True)
    frame = __import__("pandas").read_parquet(local).sort_values("id")
    assert len(frame) == 100
    assert frame["embedding"].map(lambda v: v is not None and len(v) == 384).sum() == 100 - nulls

    import datasets

    loaded = datasets.load_dataset(
        "parquet", data_files=str(local / "**" / "*.parquet"), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert loaded.num_rows == 100
    assert isinstance(loaded.features["sentiment"]["label"], datasets.Value)
    assert loaded.features["embedding"].length == 384

    import duckdb

    query = f"select count(*), count(sentiment.label) from read_parquet('{local}/**/*.parquet')"
    count = duckdb.sql(query).fetchall()[0]
    assert count == (100, 100 - nulls)


def test_error_if_exists_refuses_a_used_prefix_and_overwrite_replaces_it(
    bucket: s3fs.S3FileSystem, s3_endpoint: str, models: dict[str, str], ray_local: None
) -> None:
    job = {
        "name": "twice",
        "input": {"uri": "s3://e2e/raw/day=1/part-1.parquet"},
        "output": {"uri": "s3://e2e/twice/"},
        "storage": {"endpoint_url": s3_endpoint},
        "steps": [{"task": "text-classification", "model": models["classifier"], "input": "text", "output": "s"}],
    }
    assert run_job(parse_spec(job)).rows_out == 25
    from lakelabel.jobs.runner import OutputExistsError

    job["output"]["mode"] = "error_if_exists"
    with pytest.raises(OutputExistsError, match=r"output\.mode is error_if_exists"):
        run_job(parse_spec(job))
    job["output"]["mode"] = "overwrite"
    assert run_job(parse_spec(job)).rows_out == 25
    assert read_all(bucket, "e2e/twice").num_rows == 25


def test_cli_run_on_local_directories(tmp_path: Path, models: dict[str, str], ray_local: None, capsys) -> None:
    from tests.conftest import write_parquet

    write_parquet(tmp_path / "in" / "a.parquet", id=[1, 2], text=["Paris", "Berlin"])
    write_parquet(tmp_path / "in" / "b.parquet", id=[3], text=["Rome"])
    job = tmp_path / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "name": "local",
                "input": {"uri": str(tmp_path / "in")},
                "output": {"uri": str(tmp_path / "out")},
                "steps": [
                    {
                        "task": "text-classification",
                        "model": models["classifier"],
                        "input": "text",
                        "output": "s",
                    }
                ],
            }
        )
    )
    assert main(["run", str(job)]) == 0
    assert "3 rows in, 3 rows out, 0 row(s) with errors" in capsys.readouterr().out
    out = pq.read_table(tmp_path / "out").sort_by("id")
    assert out.column("id").to_pylist() == [1, 2, 3]


def test_the_endpoint_comes_from_aws_endpoint_url(
    bucket: s3fs.S3FileSystem, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakelabel.jobs.plan import make_plan

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    spec = parse_spec(
        {
            "name": "env",
            "input": {"uri": "s3://e2e/raw/"},
            "output": {"uri": "s3://e2e/env-out/"},
            "steps": [{"task": "text-classification", "model": "org/m", "input": "text", "output": "s"}],
        }
    )
    plan = make_plan(spec)
    assert [(shard.path.rsplit("/", 1)[-1], shard.rows) for shard in plan.shards] == [
        ("part-0.parquet", 40),
        ("part-1.parquet", 25),
        ("part-2.parquet", 35),
    ]
