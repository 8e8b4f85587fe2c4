"""A labeling job on Ray: a chat model with typed structured outputs and choices, Parquet in and out, read by DuckDB.

Two small shards through ``run_job`` on the session's local Ray; the committed Parquet must hold the schema's
struct, every row's value must validate, and each value must equal what the operator gives for the same rows
called directly (the job path changes nothing), with the null row recorded as an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import pyarrow as pa

from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import parse_spec
from lakelabel.operators import OperatorConfig
from lakelabel.operators.text.text_generation import TextGeneration
from tests import tiny_chat
from tests.conftest import write_parquet

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"enum": ["billing", "shipping", "other"]},
        "urgent": {"type": "boolean"},
        "products": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 2},
    },
    "required": ["label", "urgent", "products"],
}
MESSAGES = [
    {"role": "system", "content": "Label the support ticket. Answer in JSON."},
    {"role": "user", "content": "Subject: {subject}. {body}"},
]
SHARDS = {
    "part-0.parquet": {"subject": ["Refund", "Late"], "body": ["I was charged twice.", "Where is my parcel?"]},
    "part-1.parquet": {"subject": ["Hello", "Broken"], "body": [None, "The screen cracked on day one 😡"]},
}


def test_a_structured_labeling_job_commits_typed_parquet(tmp_path: Path, ray_local: None) -> None:
    model = str(tiny_chat.build_chat(tmp_path / "chat"))
    for name, columns in SHARDS.items():
        write_parquet(tmp_path / "raw" / name, **columns)
    options = {"messages": MESSAGES, "response_format": SCHEMA, "max_new_tokens": 120}
    steps = [
        {"task": "text-generation", "model": model, "input": "body", "output": "ticket", "options": options},
        {
            "task": "text-generation",
            "model": model,
            "input": "body",
            "output": "mood",
            "options": {"messages": MESSAGES, "choices": ["calm", "angry"]},
        },
    ]
    job = {"name": "tickets", "input": {"uri": str(tmp_path / "raw")}, "output": {"uri": str(tmp_path / "out")}}
    summary = run_job(parse_spec({**job, "steps": steps}))
    assert (summary.rows_in, summary.rows_out, summary.row_errors) == (4, 4, 1)

    files = f"{tmp_path / 'out'}/*.parquet"
    types = dict(duckdb.sql(f"DESCRIBE SELECT ticket, mood FROM '{files}'").fetchall()[i][:2] for i in range(2))
    assert types == {"ticket": 'STRUCT("label" VARCHAR, urgent BOOLEAN, products VARCHAR[])', "mood": "VARCHAR"}
    got = duckdb.sql(f"SELECT subject, body, ticket, mood, lakelabel_errors FROM '{files}'").fetch_arrow_table()
    rows = {row["subject"]: row for row in got.to_pylist()}
    assert rows["Hello"]["ticket"] is None
    assert rows["Hello"]["lakelabel_errors"][0]["message"] == "input column 'body' is null"

    inputs = pa.table({"subject": [s for c in SHARDS.values() for s in c["subject"]], "body": _bodies()})
    direct = {
        step["output"]: TextGeneration(
            OperatorConfig(model=model, input="body", output=step["output"], options=step["options"])
        )(inputs)
        .column(step["output"])
        .to_pylist()
        for step in steps
    }
    for position, subject in enumerate(inputs.column("subject").to_pylist()):
        assert rows[subject]["ticket"] == direct["ticket"][position], subject
        assert rows[subject]["mood"] == direct["mood"][position], subject
        if rows[subject]["ticket"] is not None:
            jsonschema.validate(rows[subject]["ticket"], SCHEMA)
            assert rows[subject]["mood"] in {"calm", "angry"}


def _bodies() -> list[str | None]:
    return [b for columns in SHARDS.values() for b in columns["body"]]
