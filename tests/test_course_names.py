"""The course's names: task aliases as pipeline() accepts them, older option names with their 4.x meaning, and
pipeline()'s default model for a step without one (offline: a clear error naming the model, never a hang)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pyarrow as pa
import pytest
from huggingface_hub import constants
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline
from transformers.pipelines import SUPPORTED_TASKS, TASK_ALIASES

from lakelabel.jobs.spec import SpecError, parse_spec
from lakelabel.operators import ALIASES, TASKS, OperatorConfig, OptionError, operator_class
from lakelabel.operators.core import hub
from lakelabel.operators.text.text_classification import TextClassification
from lakelabel.operators.text.token_classification import TokenClassification
from tests import tiny_generation

TEXTS = ["John Smith works for Acme Corporation in Paris.", "Mary met Peter at the Globex office in Berlin."]


def job(*steps: dict) -> dict:
    return {"name": "j", "input": {"uri": "/data/in"}, "output": {"uri": "/data/out"}, "steps": list(steps)}


def step(task: str, **fields: object) -> dict:
    return {"task": task, "input": "text", "output": "out", **fields}


def run_step(spec_step: dict, texts: list[str]) -> list:
    (parsed,) = parse_spec(job(spec_step)).steps
    operator = parsed.operator()
    operator.setup()
    return operator(pa.table({"text": texts})).column("out").to_pylist()


def test_aliases_are_transformers_own() -> None:
    assert ALIASES == TASK_ALIASES
    assert {ALIASES[alias] for alias in ALIASES} <= set(TASKS)


@pytest.mark.parametrize(
    ("alias", "task", "cls"),
    [("sentiment-analysis", "text-classification", TextClassification), ("ner", "token-classification", None)],
)
def test_a_job_may_name_a_task_by_its_alias(models: dict[str, str], alias: str, task: str, cls: type | None) -> None:
    (parsed,) = parse_spec(job(step(alias, model=models["classifier"]))).steps
    assert parsed.task == task
    assert isinstance(parsed.operator(), cls or TokenClassification)
    assert operator_class(alias) is operator_class(task)


def test_an_unknown_task_lists_the_aliases_too() -> None:
    with pytest.raises(
        SpecError, match=r"steps\[0\]\.task: unknown task 'sentiment'; known tasks: .*sentiment-analysis"
    ):
        parse_spec(job(step("sentiment", model="org/m")))


@pytest.mark.parametrize("task", ["sentiment-analysis", "ner", "zero-shot-classification", "fill-mask"])
def test_without_a_model_offline_the_error_names_the_default_model(
    task: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model, revision = SUPPORTED_TASKS[TASK_ALIASES.get(task, task)]["default"]["model"]
    options = {"candidate_labels": ["a", "b"]} if task == "zero-shot-classification" else {}
    with caplog.at_level(logging.WARNING, logger="lakelabel"), pytest.raises(SpecError) as caught:
        parse_spec(job(step(task, options=options)))
    message = str(caught.value)
    assert message.startswith("steps[0].model: not set, so model")
    assert f"'{model}' at revision {revision}" in message
    assert "HF_HUB_OFFLINE is set" in message
    assert (
        f"using transformers' default for {TASK_ALIASES.get(task, task)}: {model} at revision {revision}" in caplog.text
    )


def _cache_default(cache: Path, model: str, revision: str) -> None:
    """Lay out the Hub cache as a download of ``model`` at ``revision`` leaves it (a ref to a snapshot)."""
    repo = cache / f"models--{model.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / revision).write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")


def test_without_a_model_a_cached_default_is_used_with_a_notice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    model, revision = SUPPORTED_TASKS["text-classification"]["default"]["model"]
    _cache_default(tmp_path, model, revision)
    with caplog.at_level(logging.WARNING, logger="lakelabel"):
        (parsed,) = parse_spec(job(step("sentiment-analysis"))).steps
    assert (parsed.task, parsed.model, parsed.revision) == ("text-classification", model, revision)
    assert f"steps[0]: no model given; using transformers' default for text-classification: {model}" in caplog.text


def test_without_a_model_an_unreachable_hub_is_an_error_after_the_probe_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    silent = socket.socket()  # accepts connections on loopback and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(hub, "PROBE_TIMEOUT_S", 0.5)
        with pytest.raises(SpecError, match=r"steps\[0\]\.model: not set, so model 'dbmdz/bert-large-cased-finetuned"):
            parse_spec(job(step("ner")))
    finally:
        silent.close()


def test_a_task_without_a_default_model_says_so() -> None:
    with pytest.raises(SpecError, match=r"steps\[0\]\.model: task 'summarization' has no default model"):
        parse_spec(job(step("summarization")))


@pytest.mark.parametrize(
    ("legacy", "current"),
    [
        ({"grouped_entities": True}, {"aggregation_strategy": "simple"}),
        ({"grouped_entities": True, "ignore_subwords": True}, {"aggregation_strategy": "first"}),
    ],
)
def test_grouped_entities_means_what_the_4x_pipeline_made_of_it(
    models: dict[str, str], legacy: dict, current: dict
) -> None:
    got = run_step(step("ner", model=models["ner"], options=legacy), TEXTS)
    want = pipeline("token-classification", model=models["ner"], **current)(TEXTS)
    assert [[(e["entity_group"], e["word"], e["start"], e["end"]) for e in row] for row in got] == [
        [(e["entity_group"], e["word"], e["start"], e["end"]) for e in row] for row in want
    ]
    for row, wanted in zip(got, want, strict=True):
        assert [e["score"] for e in row] == pytest.approx([float(e["score"]) for e in wanted], abs=1e-4)


def test_return_all_scores_means_every_label(models: dict[str, str]) -> None:
    got = run_step(step("sentiment-analysis", model=models["classifier"], options={"return_all_scores": True}), TEXTS)
    want = pipeline("text-classification", model=models["classifier"], top_k=None)(TEXTS)
    assert [[item["label"] for item in row] for row in got] == [[item["label"] for item in row] for row in want]


def test_a_legacy_name_and_its_current_name_together_are_refused(models: dict[str, str]) -> None:
    with pytest.raises(SpecError, match="option grouped_entities / ignore_subwords is the older name of"):
        parse_spec(
            job(step("ner", model=models["ner"], options={"grouped_entities": True, "aggregation_strategy": "max"}))
        )
    with pytest.raises(OptionError, match="option grouped_entities must be true or false"):
        operator_class("ner")(OperatorConfig(model="m", input="t", output="o", options={"grouped_entities": "yes"}))


def test_max_length_of_an_encoder_decoder_bounds_the_decoder_as_generate_does(tmp_path: Path) -> None:
    model_dir = str(tiny_generation.build_bart(tmp_path / "bart"))
    texts = ["The river Thames flows through Oxford and London.", "Apple reported revenue of 394 billion dollars."]
    got = run_step(step("summarization", model=model_dir, options={"max_length": 6}), texts)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    for text, row in zip(texts, got, strict=True):
        ids = model.generate(**tokenizer(text, return_tensors="pt"), max_length=6)
        assert ids.shape[1] <= 6
        assert row["summary_text"] == tokenizer.decode(ids[0], skip_special_tokens=True)
