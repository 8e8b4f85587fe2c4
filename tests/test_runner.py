"""The orchestration builds each step's operator once per run, from a job file or a spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import parse_spec
from lakelabel.operators.text.text_classification import TextClassification
from tests.conftest import write_parquet


def _job(tmp_path: Path, model: str, output: str) -> dict:
    steps = [{"task": "text-classification", "model": model, "input": "text", "output": name} for name in ("a", "b")]
    return {"name": "built-once", "input": {"uri": str(tmp_path / "in")}, "output": {"uri": str(tmp_path / output)},
            "steps": steps}  # fmt: skip


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The output column of every TextClassification built in this process."""
    names: list[str] = []
    original = TextClassification.__init__

    def counting(self: TextClassification, config: object) -> None:
        names.append(config.output)  # type: ignore[attr-defined]
        original(self, config)

    monkeypatch.setattr(TextClassification, "__init__", counting)
    return names


def test_each_steps_operator_is_built_once_per_run(
    tmp_path: Path, models: dict[str, str], ray_local: None, built: list[str]
) -> None:
    write_parquet(tmp_path / "in" / "part-0.parquet", text=["good", "bad", "fine"])
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(_job(tmp_path, models["classifier"], "from-file")), encoding="utf-8")
    assert run_job(path).rows_out == 3
    assert sorted(built) == ["a", "b"]  # checked and planned with the same operators

    spec = parse_spec(_job(tmp_path, models["classifier"], "from-spec"))
    built.clear()
    assert run_job(spec).rows_out == 3
    assert sorted(built) == ["a", "b"]
