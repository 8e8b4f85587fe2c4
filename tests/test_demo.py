"""The demo as ``lakelabel demo`` runs it, on the real models: topics must plainly fit the sample texts, Whisper
tiny.en must transcribe the spoken clips, and the transcripts must get the topics of the sentences spoken."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest

from lakelabel.jobs.demo import DemoRun, render, run_jobs, speech_clips
from lakelabel.jobs.report import ReportFiles
from tests import report_reference
from tests.test_report import embedded
from tests.wer import wer

FINANCE, FOOD, HEALTH = "business and finance", "food and cooking", "health and medicine"
EXPECTED = {
    "The striker scored": {"sports"},
    "Shares of the regional bank": {FINANCE},
    "Preheat the oven": {FOOD},
    "The new laptop": {"technology"},
    "Researchers report that a daily": {HEALTH, "science"},
    "Is it worth taking the night train": {"travel"},
    "The central bank raised": {FINANCE},
    "Parliament passed the budget": {"politics"},
    "Astronomers detected": {"science"},
    "This risotto recipe": {FOOD},
    "The tennis champion": {"sports"},
    "My phone keeps dropping": {"technology"},
    "Oil prices climbed": {FINANCE},
    "Three days in Lisbon": {"travel"},
    "A new vaccine": {HEALTH},
    "The senator announced": {"politics"},
    "The chipmaker unveiled": {"technology"},
    "The ramen broth": {FOOD},
    "The marathon was won": {"sports"},
    "How do I rebalance": {FINANCE},
    "Physicists measured": {"science"},
    "Backpacking through Patagonia": {"travel"},
    "Doctors warn": {HEALTH},
    "Voters head to the polls": {"politics"},
    "The startup raised": {FINANCE, "technology"},
    "Slow-roasted lamb": {FOOD},
    "The basketball team": {"sports"},
    "Cheapest way to get": {"travel"},
    "Inflation eased": {FINANCE},
    "Marine biologists": {"science"},
    "Our physiotherapist": {HEALTH},
    "The foreign minister": {"politics"},
    "The smartwatch tracks": {"technology"},
    "The cycling team": {"sports"},
    "Has anyone hiked": {"travel"},
    "The mortgage lender": {FINANCE},
    "Geologists say": {"science"},
    "A quick weeknight curry": {FOOD},
    "The hospital opened": {HEALTH},
    "The court struck down": {"politics"},
    "Hackers exploited": {"technology"},
    "Best beaches in Crete": {"travel"},
    "Sourdough from this bakery": {FOOD},
    "The goalkeeper saved": {"sports"},
    "The government unveiled": {"politics", FINANCE},
    "Scientists sequenced": {"science"},
    "Travelling with kids": {"travel"},
}


@pytest.fixture(scope="module")
def demo(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_jobs(reports=tmp_path_factory.mktemp("demo-reports"))


def test_demo_topics_fit_the_texts(demo: DemoRun) -> None:
    summary = demo.texts
    assert (summary.shards, summary.rows_in, summary.rows_out, summary.row_errors) == (3, 48, 48, 1)
    rows = demo.text_rows.to_pylist()
    assert [row["id"] for row in rows] == list(range(48))
    hits = 0
    for row in rows:
        if row["text"] is None:
            assert row["topic"] is None
            continue
        (expected,) = [labels for prefix, labels in EXPECTED.items() if row["text"].startswith(prefix)]
        hits += row["topic"]["labels"][0] in expected
        assert len(row["embedding"]) == 384
    assert hits / len(EXPECTED) >= 0.9, f"{hits} of {len(EXPECTED)} texts got a fitting topic"


def test_demo_transcribes_the_clips_and_gives_them_their_topics(demo: DemoRun) -> None:
    clips = speech_clips()
    summary = demo.speech
    assert (summary.shards, summary.rows_in, summary.rows_out, summary.row_errors) == (1, 9, 9, 1)
    assert [(step.name, step.rows, step.row_errors) for step in summary.steps] == [
        ("transcript", 9, 1),
        ("topic", 9, 1),
        ("embedding", 9, 1),
    ]
    rows = demo.speech_rows.to_pylist()
    assert [row["id"] for row in rows] == list(range(9))
    spoken, (truncated,) = rows[: len(clips)], rows[len(clips) :]
    assert [row["audio"]["path"] for row in spoken] == [clip["file"] for clip in clips]
    assert all(row["lakelabel_errors"] == [] and len(row["embedding"]) == 384 for row in spoken)
    texts = [row["transcript"]["text"] for row in spoken]
    rate = wer([clip["sentence"] for clip in clips], texts)
    assert rate <= 0.20, f"WER {rate:.3f}: {texts}"
    topics = [row["topic"]["labels"][0] for row in spoken]
    fitting = sum(topic == clip["topic"] for topic, clip in zip(topics, clips, strict=True))
    assert fitting >= len(clips) - 2, f"{fitting} of {len(clips)} transcripts got their sentence's topic: {topics}"

    assert truncated["audio"]["path"] == "truncated.flac"
    assert (truncated["transcript"], truncated["topic"], truncated["embedding"]) == (None, None, None)
    assert [error["step"] for error in truncated["lakelabel_errors"]] == ["transcript", "topic", "embedding"]


def test_demo_prints_the_counts_transcripts_and_topics(demo: DemoRun) -> None:
    text = render(demo)
    assert "job demo-topics: 3 shard(s): 3 processed, 0 already done, 0 quarantined" in text
    assert "quarantined\n  48 rows in, 48 rows out, 1 row(s) with errors" in text
    assert "job demo-speech: 1 shard(s): 1 processed, 0 already done, 0 quarantined" in text
    assert "quarantined\n  9 rows in, 9 rows out, 1 row(s) with errors" in text
    for row in demo.speech_rows.to_pylist()[:-1]:
        line = f"{row['audio']['path']:<12} {row['transcript']['text']!r}"
        assert line in text
        assert f"-> {row['topic']['labels'][0]} (" in text.split(line, 1)[1].split("\n", 2)[1]
    assert "truncated.flac -> no transcript (transcript: " in text
    assert f"\nreport: {demo.text_report.html.resolve()} (figures: report.json)\n" in text
    assert text.endswith(f"\nreport: {demo.speech_report.html.resolve()} (figures: report.json)")


def _check_report(files: ReportFiles, rows: pa.Table, kinds: dict[str, tuple[str, str]]) -> None:
    figures = embedded(files.html.read_text(encoding="utf-8"))
    assert figures == json.loads(files.json.read_text(encoding="utf-8"))
    con = duckdb.connect()
    con.register("output", rows)
    assert figures["rows"] == con.execute("select count(*) from output").fetchone()[0]
    assert figures["rows_with_errors"] == report_reference.rows_with_errors(con, "output")
    assert [step["name"] for step in figures["steps"]] == list(kinds)
    for step in figures["steps"]:
        kind, reference_kind = kinds[step["name"]]
        assert step["kind"] == kind
        reference = report_reference.step_figures(con, "output", step["name"], reference_kind)
        report_reference.assert_step_matches(step, reference)
    assert figures["complete"]
    assert sum(shard["rows"] for shard in figures["throughput"]["shards"]) == rows.num_rows


def test_demo_reports_equal_duckdb_over_the_outputs(demo: DemoRun) -> None:
    """The demo's reports, made from the bucket's files, against DuckDB over the same rows read back."""
    topic, embedding = ("zero-shot", "zero-shot"), ("embedding", "embedding")
    _check_report(demo.text_report, demo.text_rows, {"topic": topic, "embedding": embedding})
    kinds = {"transcript": ("text", "asr"), "topic": topic, "embedding": embedding}
    _check_report(demo.speech_report, demo.speech_rows, kinds)
