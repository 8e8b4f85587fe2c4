"""The course's own pipeline() calls, written as job steps (aliases and older option names as the course writes
them), against the same pipeline() call on the same tiny model.

The course calls ``pipeline("sentiment-analysis")``, ``pipeline("ner", grouped_entities=True)``,
``pipeline("zero-shot-classification")`` with candidate labels, ``pipeline("text-generation", model="distilgpt2")``
with ``max_length=30, num_return_sequences=2`` and a fill-mask ``unmasker(..., top_k=2)``. Here each names a tiny
model built by the tests (the course's own models are not reachable offline). ``grouped_entities=True`` is what the
4.x pipelines turned into ``aggregation_strategy="simple"`` (5.x refuses the old name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from transformers import pipeline, set_seed

from lakelabel.jobs.spec import parse_spec
from tests import tiny_generation, tiny_heads, tiny_models

TOL = 1e-4


def run_job_step(step: dict[str, Any], texts: list[str]) -> list[Any]:
    spec = {"name": "course", "input": {"uri": "/data/in"}, "output": {"uri": "/data/out"}, "steps": [step]}
    (parsed,) = parse_spec(spec).steps
    operator = parsed.operator()
    return operator(pa.table({"text": pa.array(texts, pa.string())})).column(step["output"]).to_pylist()


@pytest.fixture(scope="module")
def course_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("course")
    return {
        "gpt2": str(tiny_generation.build_gpt2(root / "gpt2")),
        "mlm": str(tiny_heads.build_mlm(root / "mlm")),
        # a window that holds the course's sentences whole, as the course's real models' 512 tokens do
        "classifier": str(tiny_models.build_text_classifier(root / "classifier", model_max_length=128)),
        "ner": str(tiny_models.build_token_classifier(root / "ner", model_max_length=128)),
        "nli": str(tiny_models.build_nli_classifier(root / "nli", model_max_length=128)),
    }


def test_sentiment_analysis(course_models: dict[str, str]) -> None:
    texts = ["I've been waiting for a HuggingFace course my whole life.", "I hate this so much!"]
    step = {"task": "sentiment-analysis", "model": course_models["classifier"], "input": "text", "output": "sentiment"}
    got = run_job_step(step, texts)
    want = pipeline("sentiment-analysis", model=course_models["classifier"])(texts)
    assert [row["label"] for row in got] == [row["label"] for row in want]
    np.testing.assert_allclose([row["score"] for row in got], [row["score"] for row in want], atol=TOL)


def test_ner_with_grouped_entities(course_models: dict[str, str]) -> None:
    text = "My name is Sylvain and I work at Hugging Face in Brooklyn."
    step = {
        "task": "ner",
        "model": course_models["ner"],
        "input": "text",
        "output": "entities",
        "options": {"grouped_entities": True},
    }
    (got,) = run_job_step(step, [text])
    want = pipeline("ner", model=course_models["ner"], aggregation_strategy="simple")(text)
    assert got, "the tiny model should find entities in the course's sentence"
    fields = ("entity_group", "word", "start", "end")
    assert [tuple(e[f] for f in fields) for e in got] == [tuple(e[f] for f in fields) for e in want]
    np.testing.assert_allclose([e["score"] for e in got], [float(e["score"]) for e in want], atol=TOL)


def test_zero_shot_classification(course_models: dict[str, str]) -> None:
    text = "This is a course about the Transformers library"
    labels = ["education", "politics", "business"]
    step = {
        "task": "zero-shot-classification",
        "model": course_models["nli"],
        "input": "text",
        "output": "topic",
        "options": {"candidate_labels": labels},
    }
    (got,) = run_job_step(step, [text])
    want = pipeline("zero-shot-classification", model=course_models["nli"])(text, candidate_labels=labels)
    assert got["labels"] == want["labels"]
    np.testing.assert_allclose(got["scores"], want["scores"], atol=TOL)


def test_text_generation_with_max_length_and_two_sequences(course_models: dict[str, str]) -> None:
    prompt = "In this course, we will teach you how to"
    # the pipeline samples by default for text-generation (do_sample, temperature 0.7); lakelabel is greedy unless
    # a step says otherwise, so the course's call as a step names the pipeline's sampling settings
    step = {
        "task": "text-generation",
        "model": course_models["gpt2"],
        "input": "text",
        "output": "generated",
        "options": {"max_length": 30, "num_return_sequences": 2, "do_sample": True, "temperature": 0.7, "seed": 0},
    }
    (got,) = run_job_step(step, [prompt])
    pipe = pipeline("text-generation", model=course_models["gpt2"])
    set_seed(0)
    want = pipe(prompt, max_length=30, num_return_sequences=2)
    assert got == want
    assert got[0] != got[1]


def test_max_length_bounds_prompt_and_new_tokens_per_prompt(course_models: dict[str, str]) -> None:
    prompts = ["In this course, we will teach you how to", "Hello", "The weather today is", "Hello", "Paris is"]
    step = {
        "task": "text-generation",
        "model": course_models["gpt2"],
        "input": "text",
        "output": "generated",
        "options": {"max_length": 24},
    }
    got = run_job_step(step, prompts)
    pipe = pipeline("text-generation", model=course_models["gpt2"])
    want = [pipe(prompt, max_length=24, do_sample=False)[0] for prompt in prompts]
    assert got == want
    too_long = "In this course, we will teach you how to train and share models."
    spec = {"name": "c", "input": {"uri": "/i"}, "output": {"uri": "/o"}, "steps": [step]}
    (parsed,) = parse_spec(spec).steps
    out = parsed.operator()(pa.table({"text": [too_long, "Hello"]}))
    errors = out.column("lakelabel_errors").to_pylist()
    assert errors[0][0]["message"].endswith("max_length 24 leaves none to generate")
    assert errors[1] == []
    with pytest.raises(ValueError, match="max_length"):
        pipe(too_long, max_length=24, do_sample=False)


def test_fill_mask_top_k_2(course_models: dict[str, str], tmp_path: Path) -> None:
    unmasker = pipeline("fill-mask", model=course_models["mlm"])
    text = f"This course will teach you all about {unmasker.tokenizer.mask_token} models."
    step = {
        "task": "fill-mask",
        "model": course_models["mlm"],
        "input": "text",
        "output": "filled",
        "options": {"top_k": 2},
    }
    (got,) = run_job_step(step, [text])
    want = unmasker(text, top_k=2)
    assert [(g["token"], g["token_str"], g["sequence"]) for g in got] == [
        (w["token"], w["token_str"], w["sequence"]) for w in want
    ]
    np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in want], atol=TOL)
