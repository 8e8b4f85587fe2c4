"""fill-mask against transformers 5 ``pipeline("fill-mask")`` on a tiny seeded BERT-MLM: tokens, token strings
and filled-in sequences exactly, scores within 1e-4, for top_k 1 and 5 and with targets; rows the pipeline refuses
(no mask, a mask beyond the window) and rows with several masks get row errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from transformers import pipeline
from transformers.pipelines.base import PipelineException

from lakelabel.operators import ERROR_COLUMN, OperatorConfig, OptionError, operator_class
from lakelabel.operators.text.fill_mask import FILLED, FillMask
from tests.tiny_heads import build_mlm

TOL = 1e-4
FILLER = "The weather today is cloudy with a chance of rain in the afternoon. " * 4
TEXTS = [
    "The capital of France is [MASK].",
    "Alice Johnson moved from [MASK] to Paris in 2019.",
    "[MASK] is the highest mountain on Earth.",
    "Café [MASK] à Zürich — 東京は日本の首都です 🚀🔥",
    "Москва — [MASK] России.",
    'Dr. [MASK], (Tokyo) said: "frogs"!',
    "The [MASK] flows through Oxford. " + FILLER,  # longer than the 32-token window: truncated
]
TARGETS = ["paris", "london", "the", "Tokyo", "zürich", "paris"]
"""Five distinct tokens: "paris" comes twice, "Tokyo" and "zürich" are not in the vocabulary (the pipeline uses
their first tokens instead)."""


@pytest.fixture(scope="module")
def mlm(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_mlm(tmp_path_factory.mktemp("mlm") / "mlm"))


@pytest.fixture(scope="module")
def pipe(mlm: str) -> Any:
    return pipeline("fill-mask", model=mlm)


def make(model: str, **options: Any) -> FillMask:
    operator = operator_class("fill-mask")(OperatorConfig(model=model, input="text", output="out", options=options))
    assert isinstance(operator, FillMask)
    return operator


def run(operator: FillMask, texts: list[str | None]) -> tuple[list[Any], list[list[dict[str, str]]]]:
    out = operator(pa.table({"text": pa.array(texts, pa.string())}))
    assert out.schema.field("out").type == operator.output_type()
    return out.column("out").to_pylist(), out.column(ERROR_COLUMN).to_pylist()


def assert_filled(got: list[dict], expected: list[dict], where: str) -> None:
    assert [(g["token"], g["token_str"], g["sequence"]) for g in got] == [
        (e["token"], e["token_str"], e["sequence"]) for e in expected
    ], where
    np.testing.assert_allclose([g["score"] for g in got], [e["score"] for e in expected], atol=TOL, err_msg=where)


def test_long_text_exceeds_the_window(mlm: str) -> None:
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(mlm)(TEXTS[-1])["input_ids"]) > 2 * 32


@pytest.mark.parametrize(
    "options",
    [{}, {"top_k": 1}, {"top_k": 5}, {"top_k": 3, "targets": TARGETS}, {"top_k": 10, "targets": TARGETS}],
)
def test_matches_the_pipeline(mlm: str, pipe: Any, options: dict[str, Any]) -> None:
    values, errors = run(make(mlm, **options), TEXTS)
    assert errors == [[]] * len(TEXTS)
    for text, got in zip(TEXTS, values, strict=True):
        expected = pipe(text, tokenizer_kwargs={"truncation": True}, **options)
        assert len(got) == len(expected) == min(options.get("top_k", 5), 5)
        assert_filled(got, expected, text)


def test_predictions_vary(mlm: str) -> None:
    """The tiny model must not predict the same token everywhere, or the comparison proves little."""
    values, _ = run(make(mlm, top_k=1), TEXTS)
    assert len({row[0]["token"] for row in values}) >= 4


def test_a_single_word_target(mlm: str, pipe: Any) -> None:
    values, errors = run(make(mlm, targets="london"), TEXTS[:2])
    assert errors == [[], []]
    for text, got in zip(TEXTS[:2], values, strict=True):
        assert_filled(got, pipe(text, targets="london"), text)
        assert got[0]["token_str"] == "london"


def test_rows_without_exactly_one_mask_get_row_errors(mlm: str, pipe: Any) -> None:
    no_mask = "There is nothing to fill here."
    beyond = FILLER + "The [MASK] flows through Oxford."
    two = "The [MASK] flows through [MASK]."
    with pytest.raises(PipelineException, match=r"No mask_token \(\[MASK\]\) found on the input") as raised:
        pipe(no_mask)
    with pytest.raises(PipelineException, match="No mask_token"):
        pipe(beyond, tokenizer_kwargs={"truncation": True})
    assert len(pipe(two)) == 2  # the pipeline: one list of candidates per mask
    values, errors = run(make(mlm), [no_mask, TEXTS[0], beyond, two, None])
    assert values[1] is not None
    assert [values[i] for i in (0, 2, 3, 4)] == [None] * 4
    messages = [[e["message"] for e in row] for row in errors]
    assert messages[0] == [str(raised.value)]
    assert messages[1] == []
    assert messages[2] == [f"{raised.value} (the text is truncated to the model's window)"]
    assert messages[3] == ["2 mask tokens ([MASK]) found on the input; fill-mask fills exactly one per row"]
    assert messages[4] == ["input column 'text' is null"]


def test_output_type(mlm: str) -> None:
    assert make(mlm).output_type() == pa.list_(
        pa.struct(
            [("score", pa.float32()), ("token", pa.int32()), ("token_str", pa.string()), ("sequence", pa.string())]
        )
    )
    assert pa.list_(FILLED) == make(mlm, top_k=1).output_type()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"top_k": 0}, "top_k"),
        ({"top_k": "5"}, "top_k"),
        ({"top_k": False}, "top_k"),
        ({"targets": []}, "targets"),
        ({"targets": [""]}, "targets"),
        ({"targets": 5}, "targets"),
        ({"tokenizer_kwargs": {}}, "tokenizer_kwargs"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], named: str) -> None:
    with pytest.raises(OptionError, match=named):
        make(str(Path("unused")), **options)


def test_top_k_beyond_the_vocabulary_is_refused_at_load(mlm: str) -> None:
    operator = make(mlm, top_k=10_000)
    with pytest.raises(OptionError, match="top_k"):
        operator.setup()
