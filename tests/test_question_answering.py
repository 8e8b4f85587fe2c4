"""question-answering against answers the transformers 4.x pipeline gave on the committed tiny model.

``tests/golden/question_answering.json`` holds 4.57's ``pipeline("question-answering")`` outputs (see
``scripts/make_qa_golden.py``) for every case under several option sets: contexts many windows long, answers
repeated across windows, non-ASCII text, punctuation against words, and rows the pipeline refused. The operator
must give the same answers and character offsets, scores within 1e-4, and a row error where 4.x raised.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lakelabel.operators import ERROR_COLUMN, OperatorConfig, OptionError, operator_class
from lakelabel.operators.text.question_answering import ANSWER, QuestionAnswering

GOLDEN = Path(__file__).parent / "golden"
MODEL = str(GOLDEN / "tiny-qa")
TOL = 1e-4


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads((GOLDEN / "question_answering.json").read_text(encoding="utf-8"))


def make(**options: Any) -> QuestionAnswering:
    config = OperatorConfig(model=MODEL, input="context", output="out", options=options)
    operator = operator_class("question-answering")(config)
    assert isinstance(operator, QuestionAnswering)
    return operator


def run(operator: QuestionAnswering, table: pa.Table) -> tuple[list[Any], list[list[dict[str, str]]]]:
    out = operator(table)
    assert out.schema.field("out").type == operator.output_type()
    return out.column("out").to_pylist(), out.column(ERROR_COLUMN).to_pylist()


def as_list(value: dict | list | None, top_k: int) -> list[dict] | None:
    return [value] if top_k == 1 and value is not None else value


def assert_answers(got: list[dict], expected: list[dict], where: str) -> None:
    assert [(a["answer"], a["start"], a["end"]) for a in got] == [
        (a["answer"], a["start"], a["end"]) for a in expected
    ], where
    np.testing.assert_allclose([a["score"] for a in got], [a["score"] for a in expected], atol=TOL, err_msg=where)


def test_golden_answers_vary(golden: dict[str, Any]) -> None:
    """The tiny model must answer differently from case to case, or the comparison below proves little."""
    defaults = golden["runs"][0]
    assert defaults["options"] == {}
    answers = [r["answers"][0]["answer"] for r in defaults["results"] if "answers" in r]
    assert len(set(answers)) >= 8
    assert sum(bool(answer) for answer in answers) >= 8
    assert golden["transformers"].startswith("4.")


def test_matches_the_4x_pipeline_for_every_option_set(golden: dict[str, Any]) -> None:
    table = pa.table(
        {
            "question": pa.array([case["question"] for case in golden["cases"]], pa.string()),
            "context": pa.array([case["context"] for case in golden["cases"]], pa.string()),
        }
    )
    refused = answered = 0
    for golden_run in golden["runs"]:
        options = golden_run["options"]
        operator = make(question_column="question", **options)
        values, errors = run(operator, table)
        for index, (value, error, expected) in enumerate(zip(values, errors, golden_run["results"], strict=True)):
            where = f"options {options}, case {index}: {golden['cases'][index]}"
            if "error" in expected:
                refused += 1
                assert value is None, where
                assert [e["step"] for e in error] == ["out"], where
            else:
                answered += 1
                assert error == [], where
                assert_answers(as_list(value, operator.options["top_k"]), expected["answers"], where)
    assert refused >= 30
    assert answered >= 100


def test_a_fixed_question_option_asks_every_row(golden: dict[str, Any]) -> None:
    defaults = golden["runs"][0]
    by_question: dict[str, list[int]] = {}
    for index, case in enumerate(golden["cases"]):
        if case["question"] and "answers" in defaults["results"][index]:
            by_question.setdefault(case["question"], []).append(index)
    for question, indices in by_question.items():
        operator = make(question=question)
        assert operator.columns() == ("context",)
        contexts = [golden["cases"][i]["context"] for i in indices]
        values, errors = run(operator, pa.table({"context": contexts}))
        assert errors == [[]] * len(indices)
        for value, index in zip(values, indices, strict=True):
            assert_answers([value], defaults["results"][index]["answers"], question)


def test_refused_rows_name_what_is_wrong() -> None:
    long_question = "where " * 30
    table = pa.table(
        {
            "q": pa.array(["Where?", None, "", "Where?", "Where?", long_question], pa.string()),
            "context": pa.array(["Paris", "Paris", "Paris", None, "", "Paris is big. " * 20], pa.string()),
        }
    )
    values, errors = run(make(question_column="q"), table)
    assert values[0] is not None
    assert values[1:] == [None] * 5
    messages = [[e["message"] for e in row] for row in errors]
    assert messages[:5] == [
        [],
        ["question column 'q' is null"],
        ["question column 'q' is empty"],
        ["input column 'context' is null"],
        ["input column 'context' is empty"],
    ]
    assert "question is 90 tokens long" in messages[5][0]
    assert "max_seq_len (64)" in messages[5][0]


def test_a_long_question_fits_when_the_context_is_short() -> None:
    """4.x failed only where the pair had to be cut into windows; a long question beside a short context fits."""
    values, errors = run(make(question="where " * 18), pa.table({"context": ["Paris"]}))
    assert errors == [[]]
    assert values[0]["answer"] == "Paris"


def test_non_string_question_column_is_a_row_error() -> None:
    table = pa.table({"q": pa.array([7, None], pa.int64()), "context": ["Paris", "Paris"]})
    values, errors = run(make(question_column="q"), table)
    assert values == [None, None]
    assert errors[0] == [{"step": "out", "message": "question column 'q' holds int, not a string"}]


def test_question_column_may_be_a_struct_field() -> None:
    table = pa.table({"meta": [{"q": "Where?"}], "context": ["Paris"]})
    operator = make(question_column="meta.q")
    assert operator.columns() == ("meta.q", "context")
    values, errors = run(operator, table)
    assert errors == [[]]
    assert values[0]["answer"] == "Paris"


def test_output_types() -> None:
    assert make(question="q").output_type() == pa.struct(
        [("answer", pa.string()), ("score", pa.float32()), ("start", pa.int32()), ("end", pa.int32())]
    )
    assert make(question="q", top_k=3).output_type() == pa.list_(ANSWER)


def test_top_k_lists_have_at_most_top_k_answers_best_first() -> None:
    table = pa.table({"context": ["Paris", "The quick brown fox jumps over the lazy dog near the old farm.", None]})
    values, errors = run(make(question="Where?", top_k=4), table)
    assert values[2] is None
    assert errors[2] == [{"step": "out", "message": "input column 'context' is null"}]
    for answers, context in zip(values[:2], table.column("context").to_pylist()[:2], strict=True):
        assert 1 <= len(answers) <= 4
        scores = [a["score"] for a in answers]
        assert scores == sorted(scores, reverse=True)
        assert all(context[a["start"] : a["end"]] == a["answer"] for a in answers)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({}, "question_column"),
        ({"question": "q", "question_column": "q"}, "question_column"),
        ({"question": ""}, "question"),
        ({"question_column": 3}, "question_column"),
        ({"question": "q", "top_k": 0}, "top_k"),
        ({"question": "q", "top_k": True}, "top_k"),
        ({"question": "q", "max_answer_len": 0}, "max_answer_len"),
        ({"question": "q", "max_seq_len": "64"}, "max_seq_len"),
        ({"question": "q", "doc_stride": -1}, "doc_stride"),
        ({"question": "q", "max_question_len": 0}, "max_question_len"),
        ({"question": "q", "handle_impossible_answer": "yes"}, "handle_impossible_answer"),
        ({"question": "q", "align_to_words": 1}, "align_to_words"),
        ({"question": "q", "doc_stride": 40, "max_seq_len": 32}, "doc_stride"),
        ({"question": "q", "topk": 2}, "topk"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], named: str) -> None:
    with pytest.raises(OptionError, match=named):
        make(**options)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"doc_stride": 100}, "doc_stride"),  # above the default max_seq_len: the tokenizer's 64
        ({"max_seq_len": 3}, "max_seq_len"),  # CLS and two SEPs leave no room
        ({"max_seq_len": 600}, "max_seq_len"),  # beyond the model's 512 positions
    ],
)
def test_options_checked_against_the_model_at_load(options: dict[str, Any], named: str) -> None:
    operator = make(question="q", **options)
    with pytest.raises(OptionError, match=named):
        operator.setup()


def test_a_tokenizer_padding_left_puts_the_context_first(tmp_path: Path, golden: dict[str, Any]) -> None:
    """4.x put the context first where the tokenizer pads on the left; answers still come from the context."""
    model = shutil.copytree(MODEL, tmp_path / "tiny-qa-left")
    config_path = model / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config_path.write_text(json.dumps({**config, "padding_side": "left"}), encoding="utf-8")
    cases = [case for case in golden["cases"] if case["question"].strip() and len(case["context"]) > 20]
    operator = operator_class("question-answering")(
        OperatorConfig(model=str(model), input="context", output="out", options={"question_column": "q", "top_k": 3})
    )
    table = pa.table({"q": [case["question"] for case in cases], "context": [case["context"] for case in cases]})
    values, errors = run(operator, table)
    assert not operator.question_first
    answered = 0
    for answers, error, case in zip(values, errors, cases, strict=True):
        if error:
            assert answers is None
            continue
        answered += 1
        for answer in answers:
            assert answer["end"] > answer["start"]
            assert case["context"][answer["start"] : answer["end"]] == answer["answer"]
    assert answered >= 6
    assert max(a["end"] for answers in values if answers for a in answers) > 150  # a later window answered
