"""Every task's output type gets the report figures that fit it; checked against plain Python over the same rows."""

from __future__ import annotations

import math
from collections import Counter

import pyarrow as pa
import pytest

from lakelabel.jobs.report.figures import BINS, Figures, kind_of
from lakelabel.operators.audio.speech_recognition import TRANSCRIPT
from lakelabel.operators.core.ranking import LABEL_SCORE
from lakelabel.operators.text.fill_mask import FILLED
from lakelabel.operators.text.question_answering import ANSWER
from lakelabel.operators.text.token_classification import ENTITY
from lakelabel.operators.text.zero_shot import LABELS_SCORES
from lakelabel.operators.vision.object_detection import DETECTION

ERRORS = pa.list_(pa.struct([("step", pa.string()), ("message", pa.string())]))
GENERATED = pa.struct([("generated_text", pa.string())])


def entity(group: str, score: float) -> dict:
    return {"entity_group": group, "score": score, "word": "w", "start": 0, "end": 1}


def detection(label: str, score: float) -> dict:
    return {"score": score, "label": label, "box": {"xmin": 0, "ymin": 0, "xmax": 1, "ymax": 1}}


# type, kind, rows (None = no annotation), then plain-Python: labels of a row, series of a row
CASES = {
    "text-classification": (LABEL_SCORE, "label", [{"label": "a", "score": 0.9}, None, {"label": "b", "score": 0.2}]),
    "ranked top_k": (
        pa.list_(LABEL_SCORE),
        "ranked",
        [[{"label": "x", "score": 0.7}, {"label": "y", "score": 0.3}], [], None, [{"label": "y", "score": 0.6}]],
    ),
    "zero-shot": (
        LABELS_SCORES,
        "zero-shot",
        [{"labels": ["p", "q"], "scores": [0.8, 0.1]}, {"labels": ["q", "p"], "scores": [0.5, 0.4]}, None],
    ),
    "token-classification": (
        pa.list_(ENTITY),
        "entities",
        [[entity("PER", 0.9), entity("LOC", 0.4), entity("PER", 0.7)], [], None, [entity("ORG", 0.99)]],
    ),
    "object-detection": (pa.list_(DETECTION), "detections", [[detection("cat", 0.9), detection("dog", 0.6)], []]),
    "fill-mask": (
        pa.list_(FILLED),
        "fill-mask",
        [
            [{"score": 0.5, "token": 1, "token_str": "paris", "sequence": "s"}],
            None,
            [{"score": 0.25, "token": 2, "token_str": "rome", "sequence": "s"}],
        ],
    ),
    "question-answering": (
        ANSWER,
        "answer",
        [{"answer": "Ada", "score": 0.8, "start": 0, "end": 3}, {"answer": "", "score": 0.1, "start": 0, "end": 0}],
    ),
    "question-answering top_k": (
        pa.list_(ANSWER),
        "answers",
        [[{"answer": "Ada Lovelace", "score": 0.8, "start": 0, "end": 12}], []],
    ),
    "text-generation": (GENERATED, "text", [{"generated_text": "héllo"}, None, {"generated_text": ""}]),
    "text-generation num_return_sequences": (
        pa.list_(GENERATED),
        "texts",
        [[{"generated_text": "first one"}, {"generated_text": "second"}], []],
    ),
    "automatic-speech-recognition": (TRANSCRIPT, "text", [{"text": "spoken words", "chunks": None}, None]),
    "feature-extraction": (pa.list_(pa.float32(), 3), "embedding", [[3.0, 4.0, 0.0], None, [1.0, 0.0, 0.0]]),
}


def expected(kind: str, rows: list) -> tuple[Counter, dict[str, list[float]]]:
    """What each kind's figures are, written out in plain Python."""
    labels: Counter = Counter()
    series: dict[str, list[float]] = {}
    add = lambda name, value: series.setdefault(name, []).append(float(value))  # noqa: E731
    for row in (row for row in rows if row is not None):
        if kind == "label":
            labels[row["label"]] += 1
            add("score", row["score"])
        elif kind in {"ranked", "fill-mask"} and row:
            labels[row[0]["label" if kind == "ranked" else "token_str"]] += 1
            add("score", row[0]["score"])
        elif kind == "zero-shot":
            labels[row["labels"][0]] += 1
            add("score", row["scores"][0])
        elif kind in {"entities", "detections"}:
            add("per_row", len(row))
            for item in row:
                labels[item["entity_group" if kind == "entities" else "label"]] += 1
                add("score", item["score"])
        elif kind == "answer" or (kind == "answers" and row):
            best = row if kind == "answer" else row[0]
            add("score", best["score"])
            add("length", len(best["answer"]))
        elif kind == "text":
            add("length", len(row.get("generated_text", row.get("text")) or ""))
        elif kind == "texts" and row:
            add("length", len(row[0]["generated_text"]))
        elif kind == "embedding":
            add("norm", math.sqrt(sum(v * v for v in row)))
    return labels, series


def bins(values: list[float]) -> list[int]:
    low, high = min(values), max(values)
    if high == low:
        return [len(values)]
    counts = [0] * BINS
    for value in values:
        counts[min(math.floor((value - low) / (high - low) * BINS), BINS - 1)] += 1
    return counts


@pytest.mark.parametrize("task", CASES)
def test_each_output_type_gets_its_figures(task: str) -> None:
    kind_type, kind, rows = CASES[task]
    assert kind_of(kind_type) == kind
    errors = [[{"step": "out", "message": "m"}] if row is None else [] for row in rows]
    table = pa.table({"out": pa.array(rows, kind_type), "lakelabel_errors": pa.array(errors, ERRORS)})
    figures = Figures.for_schema(table.schema, {"out": task})
    for batch in table.to_batches(max_chunksize=2):  # several batches, as from a file
        figures.first_pass(batch)
    for batch in table.to_batches(max_chunksize=2):
        figures.second_pass(batch)
    (step,) = figures.to_json()["steps"]
    labels, series = expected(kind, rows)
    assert step["kind"] == kind
    assert (step["rows"], step["nulls"]) == (len(rows), sum(row is None for row in rows))
    assert step["labels"] == dict(labels)
    assert step["errors"] == ({"m": sum(row is None for row in rows)} if None in rows else {})
    assert sorted(step["series"]) == sorted(series)
    for name, values in series.items():
        got = step["series"][name]
        assert got["count"] == len(values)
        assert got["min"] == pytest.approx(min(values))
        assert got["max"] == pytest.approx(max(values))
        assert got["mean"] == pytest.approx(sum(values) / len(values))
        assert got["bins"] == bins(values)


def test_labels_beyond_the_distinct_limit_are_summed_under_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lakelabel.jobs.report.figures.DISTINCT", 3)
    rows = [{"label": f"l{i % 5}", "score": 0.5} for i in range(10)]
    table = pa.table({"out": pa.array(rows, LABEL_SCORE)})
    figures = Figures.for_schema(table.schema, {"out": "text-classification"})
    figures.first_pass(table.to_batches()[0])
    labels = figures.to_json()["steps"][0]["labels"]
    assert len(labels) == 4
    assert sum(labels.values()) == 10
    assert labels["(other)"] == 4  # l3 and l4, two rows each
