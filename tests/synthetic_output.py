"""A synthetic annotated output in lakelabel's real layout: Parquet shards, shard records, run.json, _SUCCESS.

The columns have the Arrow types the operators write (docs/tasks.md); values are seeded random, some rows carry
null annotations with row errors. Large outputs are written in shards of ``shard_rows`` so nothing is held whole.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakelabel.jobs.records import ShardRecord
from lakelabel.operators import ERROR_COLUMN

LABELS = ["positive", "negative", "neutral"]
TOPICS = ["sports", "politics", "science", "travel"]
ENTITY_TYPES = ["PER", "ORG", "LOC", "MISC"]
WIDTH = 384
ERROR = pa.list_(pa.struct([("step", pa.string()), ("message", pa.string())]))
ENTITY = pa.struct(
    [("entity_group", pa.string()), ("score", pa.float32()), ("word", pa.string()), ("start", pa.int64()),
     ("end", pa.int64())]
)  # fmt: skip
STEPS = [
    ("sentiment", "text-classification"),
    ("topic", "zero-shot-classification"),
    ("entities", "token-classification"),
    ("summary", "text-generation"),
    ("embedding", "feature-extraction"),
]


def _shard(rng: np.random.Generator, first: int, rows: int) -> pa.Table:
    bad = rng.random(rows) < 0.01  # null text: every step fails on the row
    broken = ~bad & (rng.random(rows) < 0.005)  # the generation step alone fails
    labels = rng.choice(LABELS, rows)
    scores = rng.random(rows).astype(np.float32)
    sentiment = pa.StructArray.from_arrays(
        [pa.array(labels), pa.array(scores)], names=["label", "score"], mask=pa.array(bad)
    )
    order = np.argsort(rng.random((rows, len(TOPICS))), axis=1)
    topic_scores = np.sort(rng.random((rows, len(TOPICS))).astype(np.float32), axis=1)[:, ::-1]
    offsets = pa.array(np.arange(0, rows * len(TOPICS) + 1, len(TOPICS), dtype=np.int32))
    topic = pa.StructArray.from_arrays(
        [
            pa.ListArray.from_arrays(offsets, pa.array(np.array(TOPICS)[order].ravel())),
            pa.ListArray.from_arrays(offsets, pa.array(topic_scores.ravel())),
        ],
        names=["labels", "scores"],
        mask=pa.array(bad),
    )
    counts = np.where(bad, 0, rng.integers(0, 5, rows))
    total = int(counts.sum())
    entity_offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    starts = rng.integers(0, 200, total)
    entities = pa.StructArray.from_arrays(
        [
            pa.array(rng.choice(ENTITY_TYPES, total)),
            pa.array(rng.random(total).astype(np.float32)),
            pa.array([f"w{i}" for i in range(total)]),
            pa.array(starts),
            pa.array(starts + rng.integers(1, 12, total)),
        ],
        fields=list(ENTITY),
    )
    entity_lists = pa.ListArray.from_arrays(pa.array(entity_offsets), entities, mask=pa.array(bad))
    lengths = rng.integers(0, 300, rows)
    texts = pa.array(["é" * int(n) for n in lengths])  # non-ASCII: lengths are characters, not bytes
    summary = pa.StructArray.from_arrays([texts], names=["generated_text"], mask=pa.array(bad | broken))
    vectors = rng.normal(0.0, 1.0, (rows, WIDTH)).astype(np.float32) * rng.random((rows, 1)).astype(np.float32)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), WIDTH, mask=pa.array(bad))
    every = [{"step": name, "message": "input column 'text' is null"} for name, _ in STEPS]
    errors = [
        every if is_bad else [{"step": "summary", "message": "RuntimeError: out of memory"}] if is_broken else []
        for is_bad, is_broken in zip(bad.tolist(), broken.tolist(), strict=True)
    ]
    return pa.table(
        {
            "id": pa.array(np.arange(first, first + rows)),
            "text": pa.array([None if b else "text" for b in bad.tolist()], pa.string()),
            "sentiment": sentiment,
            "topic": topic,
            "entities": entity_lists,
            "summary": summary,
            "embedding": embedding,
            ERROR_COLUMN: pa.array(errors, ERROR),
        }
    )


def write_output(root: Path, *, rows: int, shard_rows: int = 5000, seed: int = 0) -> Path:
    """Write an output of ``rows`` rows under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    started = time.time() - 100.0
    run_id, spec_hash = "20261201T000000Z-synthetic", "0" * 64
    state = root / "_lakelabel"
    (state / "shards").mkdir(parents=True, exist_ok=True)
    records = []
    for index, first in enumerate(range(0, rows, shard_rows)):
        table = _shard(rng, first, min(shard_rows, rows - first))
        key = f"part-{index:05d}"
        pq.write_table(table, root / f"{key}.parquet")
        errors = int(np.sum(np.array([len(e) for e in table.column(ERROR_COLUMN).to_pylist()]) > 0))
        record = ShardRecord(
            key=key,
            input=f"/lake/raw/{key}.parquet",
            input_bytes=1,
            spec_hash=spec_hash,
            run_id=run_id,
            rows_in=table.num_rows,
            rows_out=table.num_rows,
            row_errors=errors,
            files=[f"{key}.parquet"],
            first_row_at=started + 10.0 + index,
            committed_at=started + 12.0 + 1.5 * index,
            commit_seconds=0.1,
        ).to_json()
        (state / "shards" / f"{key}.json").write_text(json.dumps(record))
        records.append(record)
    spec = {
        "input": {"uri": "/lake/raw", "columns": None},
        "steps": [{"task": task, "model": "org/model", "input": "text", "output": name} for name, task in STEPS],
    }
    provenance = {
        "job": "synthetic",
        "spec_hash": spec_hash,
        "models": [{"step": name, "model": "org/model", "revision": "main", "resolved_revision": "abc"}
                   for name, _ in STEPS],
        "versions": {"python": "3.11", "lakelabel": "0.1.0"},
    }  # fmt: skip
    run = {"run_id": run_id, "spec_hash": spec_hash, "spec": spec, "started_at": started, "provenance": provenance,
           "shards": [{"key": r["key"], "input": r["input"], "rows": r["rows_in"]} for r in records],
           "quarantined": []}  # fmt: skip
    (state / "run.json").write_text(json.dumps(run))
    manifest = {
        "job": "synthetic",
        "spec_hash": spec_hash,
        "spec": spec,
        "complete": True,
        "provenance": provenance,
        "run": {"id": run_id, "started_at": started, "finished_at": started + 100.0, "shards_processed": len(records),
                "shards_skipped": 0},
        "totals": {},
        "steps": [],
        "shards": records,
        "quarantined": [],
    }  # fmt: skip
    (root / "_SUCCESS").write_text(json.dumps(manifest))
    return root
