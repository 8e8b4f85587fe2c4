"""Operators against transformers.pipeline() on the same models and inputs: labels, words, offsets exactly,
scores within 1e-4. Texts include one longer than the model's window, empty and whitespace-only strings,
non-Latin scripts and emoji."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from transformers import pipeline

from lakelabel.operators import OperatorConfig, operator_class

LONG = (
    "John Smith flew from Paris to Berlin to meet Mary Jones of Acme Corporation. "
    "Later Peter Brown and Anna Schmidt visited London, Madrid and the offices of Globex in Rome. " * 3
)
TEXTS = [
    "John Smith works for Acme Corporation in Paris.",
    "",
    "   ",
    "東京は日本の首都です。",
    "Москва — столица России.",
    "I love this phone 😍🔥 but the battery 🔋 dies fast!",
    "Mary met Peter at the Globex office in Berlin on Monday.",
    LONG,
]
TOL = 1e-4


def annotate(task: str, model: str, texts: list[str], **options: object) -> list:
    operator = operator_class(task)(OperatorConfig(model=model, input="text", output="out", options=options))
    operator.setup()
    return operator(pa.table({"text": pa.array(texts, pa.string())})).column("out").to_pylist()


def assert_ranked(labels: list[str], scores: list[float], want_labels: list[str], want_scores: list[float]) -> None:
    """Same labels in the same order with scores within TOL; only labels whose scores tie within TOL may swap."""
    np.testing.assert_allclose(scores, want_scores, atol=TOL)
    for position, (label, want) in enumerate(zip(labels, want_labels, strict=True)):
        if label != want:
            assert abs(want_scores[position] - want_scores[want_labels.index(label)]) < TOL, (
                labels,
                want_labels,
            )


def assert_label_scores(got: list[dict], expected: list[dict]) -> None:
    assert_ranked(
        [g["label"] for g in got],
        [g["score"] for g in got],
        [e["label"] for e in expected],
        [e["score"] for e in expected],
    )


def test_long_text_exceeds_the_tiny_window(models: dict[str, str]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models["ner"])
    assert len(tokenizer(LONG)["input_ids"]) > 3 * tokenizer.model_max_length


@pytest.mark.parametrize("top_k", [1, 2, None])
def test_text_classification_matches_pipeline(models: dict[str, str], top_k: int | None) -> None:
    pipe = pipeline("text-classification", model=models["classifier"])
    options = {} if top_k == 1 else {"top_k": top_k}
    ours = annotate("text-classification", models["classifier"], TEXTS, **options)
    for text, got in zip(TEXTS, ours, strict=True):
        if top_k == 1:
            expected = pipe(text, truncation=True)[0]
            assert_label_scores([got], [expected])
        else:
            expected = pipe(text, truncation=True, top_k=top_k)
            assert_label_scores(got, expected)
    if top_k is None:
        assert all(len(got) == 3 for got in ours)


def test_text_classification_sigmoid_option(models: dict[str, str]) -> None:
    pipe = pipeline("text-classification", model=models["classifier"])
    ours = annotate("text-classification", models["classifier"], TEXTS, function_to_apply="sigmoid", top_k=None)
    for text, got in zip(TEXTS, ours, strict=True):
        assert_label_scores(got, pipe(text, truncation=True, top_k=None, function_to_apply="sigmoid"))


@pytest.mark.parametrize("strategy", ["simple", "first", "average", "max"])
def test_token_classification_matches_pipeline_with_stride(models: dict[str, str], strategy: str) -> None:
    stride = 8  # the operator's default for a 32-token window: a quarter of it
    pipe = pipeline("token-classification", model=models["ner"], aggregation_strategy=strategy, stride=stride)
    options = {} if strategy == "simple" else {"aggregation_strategy": strategy}
    ours = annotate("token-classification", models["ner"], TEXTS, **options)
    found = 0
    for text, got in zip(TEXTS, ours, strict=True):
        expected = pipe(text)
        found += len(expected)
        assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in got] == [
            (e["entity_group"], e["word"], e["start"], e["end"]) for e in expected
        ], text
        np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in expected], atol=TOL)
    assert found > 5, "the tiny model should find entities, or this test checks nothing"


def test_token_classification_covers_a_long_text_whole(models: dict[str, str]) -> None:
    (entities,) = annotate("token-classification", models["ner"], [LONG])
    assert entities, "no entities found"
    assert max(e["end"] for e in entities) > len(LONG) * 3 // 4
    for e in entities:
        assert LONG[e["start"] : e["end"]].lower().replace(" ", "") == e["word"].replace(" ", "").replace("##", "")


@pytest.mark.parametrize("multi_label", [False, True])
def test_zero_shot_nli_matches_pipeline(models: dict[str, str], multi_label: bool) -> None:
    labels = ["sports", "politics", "technology"]
    template = "The topic is {}."
    pipe = pipeline("zero-shot-classification", model=models["nli"])
    ours = annotate(
        "zero-shot-classification",
        models["nli"],
        TEXTS,
        candidate_labels=labels,
        hypothesis_template=template,
        multi_label=multi_label,
    )
    for text, got in zip(TEXTS, ours, strict=True):
        if not text:
            with pytest.raises(ValueError, match="at least one sequence"):
                pipe(text, candidate_labels=labels)
            assert got is None
            continue
        expected = pipe(text, candidate_labels=labels, hypothesis_template=template, multi_label=multi_label)
        assert_ranked(got["labels"], got["scores"], expected["labels"], expected["scores"])


def test_zero_shot_single_label_is_scored_as_the_pipeline_does(models: dict[str, str]) -> None:
    pipe = pipeline("zero-shot-classification", model=models["nli"])
    texts = [TEXTS[0], TEXTS[2], LONG]
    ours = annotate("zero-shot-classification", models["nli"], texts, candidate_labels="weather")
    for text, got in zip(texts, ours, strict=True):
        expected = pipe(text, candidate_labels=["weather"])
        np.testing.assert_allclose(got["scores"], expected["scores"], atol=TOL)


def pooled(pipe: object, text: str, max_length: int | None = None, *, normalize: bool = False) -> np.ndarray:
    kwargs = {"truncation": True} | ({"max_length": max_length} if max_length else {})
    tokens = np.asarray(pipe(text, tokenize_kwargs=kwargs))[0]
    vector = tokens.mean(axis=0)
    return vector / np.linalg.norm(vector) if normalize else vector


def test_feature_extraction_is_the_pipelines_tokens_mean_pooled(models: dict[str, str]) -> None:
    pipe = pipeline("feature-extraction", model=models["encoder"])
    ours = annotate("feature-extraction", models["encoder"], TEXTS)
    for text, got in zip(TEXTS, ours, strict=True):
        assert len(got) == 32
        np.testing.assert_allclose(got, pooled(pipe, text), atol=TOL)


def test_feature_extraction_options(models: dict[str, str]) -> None:
    pipe = pipeline("feature-extraction", model=models["encoder"])
    normalized = annotate("feature-extraction", models["encoder"], TEXTS, normalize=True)
    cls = annotate("feature-extraction", models["encoder"], TEXTS, pooling="cls")
    for text, unit, first in zip(TEXTS, normalized, cls, strict=True):
        np.testing.assert_allclose(unit, pooled(pipe, text, normalize=True), atol=TOL)
        tokens = np.asarray(pipe(text, tokenize_kwargs={"truncation": True}))[0]
        np.testing.assert_allclose(first, tokens[0], atol=TOL)


def test_minilm_embeddings_follow_sentence_transformers(minilm: str) -> None:
    """MiniLM declares mean pooling, L2 normalisation and 256 tokens (modules.json, sentence_bert_config.json)."""
    pipe = pipeline("feature-extraction", model=minilm)
    ours = annotate("feature-extraction", minilm, TEXTS)
    for text, got in zip(TEXTS, ours, strict=True):
        assert len(got) == 384
        np.testing.assert_allclose(got, pooled(pipe, text, 256, normalize=True), atol=TOL)
        assert abs(np.linalg.norm(got) - 1) < 1e-5


def test_minilm_similarity_zero_shot_ranks_by_cosine(minilm: str) -> None:
    labels = ["sports", "cooking", "finance"]
    pipe = pipeline("feature-extraction", model=minilm)
    texts = [
        "The goalkeeper saved a penalty in the final minute.",
        "Whisk the eggs with sugar and fold in the flour.",
        "The central bank raised interest rates again.",
        " ",
    ]
    ours = annotate("zero-shot-classification", minilm, texts, candidate_labels=labels, hypothesis_template="{}")
    label_vectors = np.stack([pooled(pipe, label, 256, normalize=True) for label in labels])
    for text, got in zip(texts, ours, strict=True):
        similarity = label_vectors @ pooled(pipe, text, 256, normalize=True)
        order = np.argsort(-similarity)
        assert got["labels"] == [labels[i] for i in order]
        np.testing.assert_allclose(got["scores"], similarity[order], atol=TOL)
    assert [got["labels"][0] for got in ours[:3]] == labels
