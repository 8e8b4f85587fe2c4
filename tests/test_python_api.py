"""docs/python-api.md's examples, run as written: a job from Python, one operator, ``annotate`` in a user's pipeline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import write_parquet

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "python-api.md"
DAFT = ROOT / ".venv-daft" / "bin" / "python"
"""Daft's environment (``make bench``): Daft 0.7 needs an older pyarrow than lakelabel's environment holds."""
TEXTS = [
    "great product, works as promised",
    "terrible support, never again",
    "the parcel arrived two days late",
    None,
    "five stars",
    "it broke after a week of use and the replacement was no better",
    "",
    "okay I guess",
]


def examples() -> dict[str, str]:
    """The page's Python blocks, by the heading above each."""
    text = PAGE.read_text(encoding="utf-8")
    found = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0]
        blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
        if blocks:
            found[title] = "\n".join(blocks)
    return found


@pytest.fixture(scope="module")
def names(tmp_path_factory: pytest.TempPathFactory, models: dict[str, str]) -> dict[str, str]:
    root = tmp_path_factory.mktemp("python-api")
    for shard in range(2):
        rows = range(shard * 4, shard * 4 + 4)
        write_parquet(root / "lake" / f"part-{shard}.parquet", id=list(rows), text=[TEXTS[i] for i in rows])
    return {
        "LAKE": str(root / "lake"),
        "MODEL": models["classifier"],
        "ENCODER": models["encoder"],
        "OUTPUT": str(root / "output"),
        "REPORT": str(root / "report"),
        "ANNOTATED": str(root / "annotated"),
        "DAFT_OUTPUT": str(root / "daft"),
    }


@pytest.fixture(scope="module")
def job_run(names: dict[str, str], ray_local: None) -> dict:
    namespace = dict(names)
    exec(compile(examples()["A job from Python"], str(PAGE), "exec"), namespace)
    return namespace


def test_the_page_has_the_examples_the_tests_run() -> None:
    assert set(examples()) == {
        "A job from Python",
        "One operator on a table",
        "In your own Ray Data pipeline",
        "From Daft",
        "Operators of your own",
    }


def test_a_job_runs_from_python_with_plan_status_and_report(job_run: dict, names: dict[str, str]) -> None:
    summary = job_run["summary"]
    assert summary.rows_in == len(TEXTS)
    assert summary.shards_processed == 2
    assert [step.name for step in summary.steps] == ["sentiment", "embedding"]
    assert summary.row_errors == 1  # the null text
    assert "step 0 text-classification: text -> sentiment" in str(job_run["plan"])
    assert job_run["status"].complete
    assert Path(job_run["files"].html).is_file()
    table = pq.read_table(names["OUTPUT"])
    assert {"id", "text", "sentiment", "embedding", "lakelabel_errors"} <= set(table.column_names)
    assert table.num_rows == len(TEXTS)


def test_a_second_run_resumes_and_processes_nothing(job_run: dict) -> None:
    import lakelabel

    again = lakelabel.run(job_run["job"])
    assert (again.shards_processed, again.shards_skipped) == (0, 2)


def test_one_operator_annotates_a_table(names: dict[str, str]) -> None:
    namespace = dict(names)
    exec(compile(examples()["One operator on a table"], str(PAGE), "exec"), namespace)
    table = namespace["table"]
    assert table.column("sentiment")[0].as_py()["label"]
    assert table.column("sentiment")[1].as_py() is None
    assert table.column("lakelabel_errors")[1].as_py()[0]["step"] == "sentiment"


def test_annotate_in_a_users_pipeline_on_a_two_cpu_ray_equals_lakelabel_run(
    job_run: dict, names: dict[str, str]
) -> None:
    script = "\n".join(f"{name} = {value!r}" for name, value in names.items())
    script += "\nimport lakelabel\n" + examples()["In your own Ray Data pipeline"]
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}  # its own Ray of 2 CPUs
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    annotated = pq.read_table(names["ANNOTATED"]).to_pylist()
    written = {row["id"]: row for row in pq.read_table(names["OUTPUT"]).to_pylist()}
    assert sorted(row["id"] for row in annotated) == [i for i, text in enumerate(TEXTS) if text is not None]
    _same_sentiment(annotated, written)
    for row in annotated:
        expected = written[row["id"]]
        np.testing.assert_allclose(row["embedding"], expected["embedding"], atol=1e-5)
        assert row["lakelabel_errors"] == expected["lakelabel_errors"]


def _same_sentiment(rows: list[dict], written: dict[int, dict]) -> None:
    for row in rows:
        expected = written[row["id"]]
        assert row["sentiment"]["label"] == expected["sentiment"]["label"], row["id"]
        assert row["sentiment"]["score"] == pytest.approx(expected["sentiment"]["score"], abs=1e-5)


@pytest.mark.skipif(not DAFT.exists(), reason="Daft's environment .venv-daft (made by `make bench`) is not here")
def test_an_operator_inside_a_daft_udf_equals_lakelabel_run(job_run: dict, names: dict[str, str]) -> None:
    script = "\n".join(f"{name} = {value!r}" for name, value in names.items()) + "\n" + examples()["From Daft"]
    result = subprocess.run(
        [str(DAFT), "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = pq.read_table(names["DAFT_OUTPUT"]).to_pylist()
    written = {row["id"]: row for row in pq.read_table(names["OUTPUT"]).to_pylist()}
    assert sorted(row["id"] for row in rows) == [i for i, text in enumerate(TEXTS) if text is not None]
    _same_sentiment(rows, written)


def test_the_pages_own_operator_runs_on_a_table() -> None:
    import pyarrow as pa

    import lakelabel

    namespace: dict = {"__name__": "my_ops_text"}
    exec(compile(examples()["Operators of your own"], str(PAGE), "exec"), namespace)
    upper = namespace["Upper"](
        lakelabel.OperatorConfig(model="", input="text", output="shouted", options={"suffix": "!"})
    )
    table = upper(pa.table({"text": ["quiet please", None]}))
    assert table.column("shouted").to_pylist() == ["QUIET PLEASE!", None]
    assert table.column("lakelabel_errors")[1].as_py()[0]["step"] == "shouted"
    with pytest.raises(lakelabel.OptionError, match="suffix"):
        namespace["Upper"](lakelabel.OperatorConfig(model="", input="text", output="x", options={"suffix": 1}))
