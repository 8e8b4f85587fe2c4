"""lakelabel.operators.core.ranking against the classification pipelines' own post-processing, on hand-made logits.

Each pipeline's ``postprocess`` is called unbound with a stand-in for the pipeline that carries only a model
config, so no model is built. Labels must come in the pipeline's order (ties included) and scores must equal the
pipeline's to float32 precision.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from transformers.pipelines.audio_classification import AudioClassificationPipeline
from transformers.pipelines.image_classification import ImageClassificationPipeline
from transformers.pipelines.text_classification import ClassificationFunction, TextClassificationPipeline

from lakelabel.operators import OptionError
from lakelabel.operators.core.ranking import LABEL_SCORE, Ranking, check_options, default_function

LABELS = ("cat", "dog", "bird", "fish", "frog")
# Rows: distinct scores; an exact tie between two labels behind the best; all equal; negative and large values.
LOGITS = np.array(
    [
        [0.5, -1.25, 3.0, 0.0, 2.0],
        [1.0, 3.0, 3.0, -2.0, 3.0],
        [0.25, 0.25, 0.25, 0.25, 0.25],
        [-40.0, 12.5, -3.0, 7.0, 12.0],
    ],
    np.float32,
)
HEADS = {
    "single": (None, len(LABELS)),
    "single-labelled": ("single_label_classification", len(LABELS)),
    "multi": ("multi_label_classification", len(LABELS)),
    "regression": ("regression", len(LABELS)),
    "one-label": (None, 1),
}
FUNCTION_OPTIONS = (None, "softmax", "sigmoid", "none")


def model_config(head: str) -> SimpleNamespace:
    problem_type, num_labels = HEADS[head]
    return SimpleNamespace(
        problem_type=problem_type,
        num_labels=num_labels,
        id2label=dict(enumerate(LABELS[:num_labels])),
    )


def logits_for(config: SimpleNamespace) -> np.ndarray:
    return np.ascontiguousarray(LOGITS[:, : config.num_labels])


def ranking(config: SimpleNamespace, top_k: int | None, function: str | None, **kwargs: Any) -> Ranking:
    return Ranking.for_model(config, {"top_k": top_k, "function_to_apply": function}, **kwargs)


def stand_in(config: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(model=SimpleNamespace(config=config))


def text_pipeline(config: SimpleNamespace, row: np.ndarray, top_k: int | None, function: str | None) -> Any:
    options: dict[str, Any] = {"top_k": top_k, "_legacy": False}
    if function is not None:
        options["function_to_apply"] = ClassificationFunction[function.upper()]
    return TextClassificationPipeline.postprocess(stand_in(config), {"logits": torch.from_numpy(row)[None]}, **options)


def image_pipeline(config: SimpleNamespace, row: np.ndarray, top_k: int | None, function: str | None) -> Any:
    options: dict[str, Any] = {"top_k": config.num_labels if top_k is None else top_k}
    if function is not None:
        options["function_to_apply"] = ClassificationFunction(function)
    return ImageClassificationPipeline.postprocess(stand_in(config), {"logits": torch.from_numpy(row)[None]}, **options)


def audio_pipeline(config: SimpleNamespace, row: np.ndarray, top_k: int | None, function: str | None) -> Any:
    keep = config.num_labels if top_k is None else min(top_k, config.num_labels)  # as its _sanitize_parameters
    outputs = SimpleNamespace(logits=torch.from_numpy(row)[None])
    return AudioClassificationPipeline.postprocess(stand_in(config), outputs, top_k=keep, function_to_apply=function)


def assert_same(got: list[dict], want: list[dict], where: str) -> None:
    assert [entry["label"] for entry in got] == [entry["label"] for entry in want], where
    np.testing.assert_array_equal(
        np.float32([entry["score"] for entry in got]), np.float32([entry["score"] for entry in want]), err_msg=where
    )


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("top_k", [1, 2, 4, 9, None])
@pytest.mark.parametrize("function", FUNCTION_OPTIONS)
def test_ranked_is_the_text_and_image_pipelines_postprocess(head: str, top_k: int | None, function: str | None) -> None:
    config = model_config(head)
    logits = logits_for(config)
    ranked = ranking(config, top_k, function).ranked(logits)
    keep = config.num_labels if top_k is None else min(top_k, config.num_labels)
    assert ranked.type == pa.list_(LABEL_SCORE)
    assert ranked.value_lengths().to_pylist() == [keep] * len(logits)
    for row, got in zip(logits, ranked.to_pylist(), strict=True):
        assert_same(got, text_pipeline(config, row, top_k, function), f"text {row}")
        assert_same(got, image_pipeline(config, row, top_k, function), f"image {row}")


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("top_k", [1, 2, 9, None])
@pytest.mark.parametrize("function", FUNCTION_OPTIONS)
def test_top_is_the_audio_pipelines_postprocess(head: str, top_k: int | None, function: str | None) -> None:
    config = model_config(head)
    logits = logits_for(config)
    top = ranking(config, top_k, function, one_label_sigmoid=False).top(torch.from_numpy(logits))
    assert top.type == pa.list_(LABEL_SCORE)
    for row, got in zip(logits, top.to_pylist(), strict=True):
        assert_same(got, audio_pipeline(config, row, top_k, function), f"audio {row}")


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("function", FUNCTION_OPTIONS)
def test_best_is_the_text_pipelines_default_single_answer(head: str, function: str | None) -> None:
    config = model_config(head)
    logits = logits_for(config)
    best = ranking(config, 1, function).best(logits)
    assert best.type == LABEL_SCORE
    for row, got in zip(logits, best.to_pylist(), strict=True):
        options: dict[str, Any] = {"top_k": 1, "_legacy": True}
        if function is not None:
            options["function_to_apply"] = ClassificationFunction[function.upper()]
        want = TextClassificationPipeline.postprocess(
            stand_in(config), {"logits": torch.from_numpy(row)[None]}, **options
        )
        assert_same([got], [want], f"text {row}")


def test_default_function_follows_problem_type_and_one_label_heads() -> None:
    chosen = {head: default_function(model_config(head)) for head in HEADS}
    assert chosen == {
        "single": "softmax",
        "single-labelled": "softmax",
        "multi": "sigmoid",
        "regression": "none",
        "one-label": "sigmoid",
    }
    assert default_function(model_config("one-label"), one_label_sigmoid=False) == "softmax"
    assert default_function(model_config("multi"), one_label_sigmoid=False) == "sigmoid"


def test_for_model_reads_labels_caps_top_k_and_lowercases_the_function() -> None:
    config = model_config("single")
    chosen = ranking(config, 9, "SigMoid")
    assert chosen.labels.tolist() == list(LABELS)
    assert (chosen.function, chosen.keep) == ("sigmoid", len(LABELS))
    assert ranking(config, None, None).keep == len(LABELS)
    assert ranking(config, 2, None).keep == 2


def test_scores_are_float32_and_rows_sum_to_one_under_softmax() -> None:
    scores = ranking(model_config("single"), None, "softmax").scores(LOGITS)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, rtol=1e-6)
    raw = ranking(model_config("single"), None, "none").scores(LOGITS)
    np.testing.assert_array_equal(raw, LOGITS)


@pytest.mark.parametrize(
    ("options", "any_case", "message"),
    [
        ({"top_k": 0}, True, "option top_k must be a positive integer or null"),
        ({"top_k": -1}, True, "option top_k must be a positive integer or null"),
        ({"top_k": True}, True, "option top_k must be a positive integer or null"),
        ({"top_k": "3"}, True, "option top_k must be a positive integer or null"),
        ({"top_k": 2.0}, True, "option top_k must be a positive integer or null"),
        ({"function_to_apply": "relu"}, True, "option function_to_apply must be one of softmax, sigmoid, none"),
        ({"function_to_apply": ""}, True, "option function_to_apply must be one of softmax, sigmoid, none"),
        ({"function_to_apply": "Softmax"}, False, "option function_to_apply must be one of softmax, sigmoid, none"),
    ],
)
def test_check_options_refuses_naming_step_and_option(options: dict[str, Any], any_case: bool, message: str) -> None:
    with pytest.raises(OptionError, match=f"^step 'labels': {message}$"):
        check_options({"top_k": 5, "function_to_apply": None, **options}, "labels", any_case=any_case)


@pytest.mark.parametrize(
    ("options", "any_case"),
    [
        ({"top_k": None, "function_to_apply": None}, True),
        ({"top_k": 1, "function_to_apply": "SIGMOID"}, True),
        ({"top_k": 100, "function_to_apply": "none"}, False),
    ],
)
def test_check_options_accepts(options: dict[str, Any], any_case: bool) -> None:
    check_options(options, "labels", any_case=any_case)
