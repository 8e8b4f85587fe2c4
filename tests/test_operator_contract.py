"""The operator contract, without Ray: config apart from the model, nulls and bad rows recorded, Arrow types."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from lakelabel.operators import ERROR_COLUMN, ERROR_TYPE, TASKS, OperatorConfig, OptionError, operator_class
from lakelabel.operators.core.base import INPUT_KINDS
from lakelabel.operators.text.text_classification import TextClassification

TEXT_TASKS = ["feature-extraction", "text-classification", "token-classification", "zero-shot-classification"]


def make(task: str, model: str, **options: object):
    return operator_class(task)(OperatorConfig(model=model, input="text", output="out", options=options))


RAY_PROBE = """
import importlib, json, pkgutil, sys
import lakelabel.operators as package
from lakelabel.operators.registry import TASKS, operator_class

for index, entry in enumerate(sys.argv[1:]):  # more operators, registered as the tests' own operators are
    TASKS[f"probe-{index}"] = entry
importers = []
def check(name):
    if "ray" in sys.modules and not importers:
        importers.append(name)
modules = sorted(info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."))
for name in modules:
    importlib.import_module(name)
    check(name)
classes = []
for task, entry in TASKS.items():
    classes.append(operator_class(task).__name__)
    check(entry)
print(json.dumps({"modules": modules, "classes": classes, "ray_after": importers,
                  "ray": sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))}))
"""


def probe_ray(*extra: str, path: Path | None = None) -> dict:
    """Import every module of the operators package and every registered operator class in a fresh interpreter.

    Reports the modules and classes imported, and which Ray modules were loaded (first after which import).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(path or ""), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-c", RAY_PROBE, *extra], capture_output=True, text=True, check=True, cwd=path or "/", env=env
    )
    return json.loads(result.stdout)


def assert_no_ray(found: dict) -> None:
    assert found["ray"] == [], f"importing {found['ray_after'][0]} loaded Ray: {found['ray'][:5]}"


def test_operators_never_import_ray() -> None:
    found = probe_ray()
    assert "lakelabel.operators.text.text_classification" in found["modules"]
    assert "lakelabel.operators.audio.faster_whisper_engine" in found["modules"]  # not behind a task: walked too
    assert len(found["classes"]) == len(TASKS)
    assert_no_ray(found)


def test_the_ray_check_fails_for_an_operator_that_imports_ray(tmp_path: Path) -> None:
    (tmp_path / "rayful_operator.py").write_text(
        "import ray\n\nfrom lakelabel.operators.text.text_classification import TextClassification\n\n\n"
        "class Rayful(TextClassification):\n    task = 'probe-0'\n"
    )
    found = probe_ray("rayful_operator:Rayful", path=tmp_path)
    assert found["classes"][-1] == "Rayful"
    assert "ray" in found["ray"]
    with pytest.raises(AssertionError, match="importing rayful_operator:Rayful loaded Ray"):
        assert_no_ray(found)


def test_construction_is_cheap_and_picklable(models: dict[str, str]) -> None:
    operator = make("text-classification", models["classifier"])
    assert not hasattr(operator, "model")
    blob = pickle.dumps(operator)
    assert len(blob) < 2_000
    restored = pickle.loads(blob)
    restored.setup()
    assert restored(pa.table({"text": ["fine"]})).column("out")[0].as_py()["label"] in {
        "negative",
        "neutral",
        "positive",
    }


@pytest.mark.parametrize("task", TEXT_TASKS)
def test_nulls_give_null_annotations_and_a_row_error(models: dict[str, str], task: str) -> None:
    model = {"text-classification": "classifier", "token-classification": "ner"}.get(task, "encoder")
    options = {"candidate_labels": ["a", "b"]} if task == "zero-shot-classification" else {}
    operator = make(task, models[model], **options)
    operator.setup()
    batch = pa.table({"id": [1, 2, 3], "text": pa.array(["Paris is big.", None, "Berlin"], pa.string())})
    out = operator(batch)
    assert out.column_names == ["id", "text", "out", ERROR_COLUMN]
    assert out.schema.field("out").type == operator.output_type()
    assert out.schema.field(ERROR_COLUMN).type == ERROR_TYPE
    values = out.column("out").to_pylist()
    assert values[1] is None
    assert values[0] is not None
    assert values[2] is not None
    assert out.column(ERROR_COLUMN).to_pylist() == [
        [],
        [{"step": "out", "message": "input column 'text' is null"}],
        [],
    ]
    assert out.column("id").to_pylist() == [1, 2, 3]


def test_errors_of_chained_steps_accumulate(models: dict[str, str]) -> None:
    first = make("text-classification", models["classifier"])
    second = OperatorConfig(model=models["encoder"], input="text", output="vec")
    chained = operator_class("feature-extraction")(second)(first(pa.table({"text": pa.array([None, "x"])})))
    assert [e["step"] for e in chained.column(ERROR_COLUMN)[0].as_py()] == ["out", "vec"]
    assert chained.column(ERROR_COLUMN)[1].as_py() == []
    assert chained.column_names[-1] == ERROR_COLUMN


class Fragile(TextClassification):
    """Fails on any batch holding the word 'boom', as a model might fail on one malformed row."""

    def annotate(self, texts: list[str]) -> pa.Array:
        if any("boom" in text for text in texts):
            raise RuntimeError("the model choked")
        return super().annotate(texts)


def test_a_failing_row_is_isolated_and_recorded(models: dict[str, str]) -> None:
    operator = Fragile(OperatorConfig(model=models["classifier"], input="text", output="out"))
    out = operator(pa.table({"text": ["good", "boom", "bad"]}))
    values = out.column("out").to_pylist()
    assert values[1] is None
    assert values[0] is not None
    assert values[2] is not None
    assert out.column(ERROR_COLUMN).to_pylist()[1] == [{"step": "out", "message": "RuntimeError: the model choked"}]


def test_a_non_string_value_is_a_row_error(models: dict[str, str]) -> None:
    operator = make("text-classification", models["classifier"])
    out = operator(pa.table({"text": pa.array([b"bytes", b"more"])}))
    assert out.column("out").to_pylist() == [None, None]
    assert "holds bytes, not a string" in out.column(ERROR_COLUMN)[0].as_py()[0]["message"]


def test_unknown_options_name_the_option_and_list_the_known_ones() -> None:
    with pytest.raises(OptionError, match="unknown option\\(s\\) topk; known options: function_to_apply"):
        make("text-classification", "org/model", topk=3)
    with pytest.raises(OptionError, match="candidate_labels"):
        make("zero-shot-classification", "org/model")
    with pytest.raises(OptionError, match="aggregation_strategy"):
        make("token-classification", "org/model", aggregation_strategy="none")


def test_declared_resources_ask_for_a_gpu_and_output_types_are_arrow(models: dict[str, str]) -> None:
    operator = make("feature-extraction", models["encoder"])
    assert operator.resources().num_gpus == 1
    assert operator.output_type() == pa.list_(pa.float32(), 32)
    assert make("text-classification", "m").output_type() == pa.struct(
        [("label", pa.string()), ("score", pa.float32())]
    )


def test_pickled_weights_are_refused_by_default(models: dict[str, str], tmp_path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lakelabel.operators.core.base import ModelLoadError

    legacy = tmp_path / "legacy"
    model = AutoModelForSequenceClassification.from_pretrained(models["classifier"])
    model.config.save_pretrained(legacy)
    torch.save(model.state_dict(), legacy / "pytorch_model.bin")
    AutoTokenizer.from_pretrained(models["classifier"]).save_pretrained(legacy)
    assert AutoModelForSequenceClassification.from_pretrained(legacy, use_safetensors=False) is not None
    with pytest.raises(ModelLoadError, match="only safetensors"):
        make("text-classification", str(legacy)).setup()


def test_a_missing_model_names_the_model(tmp_path) -> None:
    from lakelabel.operators.core.base import ModelLoadError

    with pytest.raises(ModelLoadError, match=str(tmp_path / "nowhere")):
        make("text-classification", str(tmp_path / "nowhere")).setup()


def test_an_empty_text_refused_by_the_pipeline_gets_a_row_error(models: dict[str, str]) -> None:
    operator = make("zero-shot-classification", models["nli"], candidate_labels=["a", "b"])
    out = operator(pa.table({"text": ["", "   ", "words"]}))
    assert out.column("out").to_pylist()[0] is None
    assert out.column("out").to_pylist()[1]["labels"] in (["a", "b"], ["b", "a"])
    assert "empty text" in out.column(ERROR_COLUMN)[0].as_py()[0]["message"]
    assert out.column(ERROR_COLUMN)[1].as_py() == []


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_registered_task_has_its_operator(task: str) -> None:
    cls = operator_class(task)
    assert cls.task == task
    assert cls.input_kind in INPUT_KINDS
