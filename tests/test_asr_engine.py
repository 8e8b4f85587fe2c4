"""The faster-whisper engine dispatch of automatic-speech-recognition, with a stand-in engine.

The real engine (operators/audio/faster_whisper_engine.py, a CTranslate2 Whisper) is tested with a real model on
its own; here a fake with the same interface checks what the operator hands it and how its results become rows.
"""

from __future__ import annotations

import pickle
import sys
import types
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pytest
import soxr

from lakelabel.operators import ERROR_COLUMN, OperatorConfig, operator_class
from lakelabel.operators.core.base import prepared_column
from tests import tiny_audio


class FakeEngine:
    """Records its construction and every waveform; answers with the waveform's length and level."""

    sampling_rate: int = 16_000
    built: ClassVar[list[dict[str, Any]]] = []
    seen: ClassVar[list[np.ndarray]] = []

    def __init__(self, model: str, *, device: str, compute_type: str | None, options: Any) -> None:
        FakeEngine.built.append(
            {"model": model, "device": device, "compute_type": compute_type, "options": dict(options)}
        )

    def transcribe(self, waveform: np.ndarray) -> dict[str, Any]:
        FakeEngine.seen.append(waveform)
        if waveform.shape[0] < 100:
            raise RuntimeError("too short for the engine")
        seconds = waveform.shape[0] / self.sampling_rate
        return {
            "text": f" {waveform.shape[0]} samples",
            "chunks": [{"text": " all", "timestamp": [0.0, seconds]}, {"text": " open", "timestamp": [seconds, None]}],
        }


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> type[FakeEngine]:
    module = types.ModuleType("lakelabel.operators.audio.faster_whisper_engine")
    module.FasterWhisperEngine = FakeEngine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lakelabel.operators.audio.faster_whisper_engine", module)
    FakeEngine.built.clear()
    FakeEngine.seen.clear()
    return FakeEngine


def make(**options: Any):
    config = OperatorConfig(model="/models/whisper-ct2", input="audio", output="asr", options=options, device="cpu")
    return operator_class("automatic-speech-recognition")(config)


def test_the_engine_gets_16khz_mono_and_its_results_become_rows(fake_engine: type[FakeEngine]) -> None:
    clips = tiny_audio.clips()
    stereo = tiny_audio.signal(2.5, seed=6, sampling_rate=44_100, channels=2)
    table = pa.table({"audio": [clips["wav_3s"], clips["stereo_44k"], None, b"junk", clips["long_35s"]]})
    out = make(engine="faster-whisper", compute_type="int8", return_timestamps=True)(table)
    assert fake_engine.built == [
        {
            "model": "/models/whisper-ct2",
            "device": "cpu",
            "compute_type": "int8",
            # only what the step set: every other transcribe() setting stays faster-whisper's default
            "options": {"engine": "faster-whisper", "return_timestamps": True, "compute_type": "int8"},
        }
    ]
    lengths = [waveform.shape[0] for waveform in fake_engine.seen]
    assert lengths == [48_000, 40_000, 560_000]  # whole recordings: the engine handles long audio itself
    assert all(waveform.dtype == np.float32 and waveform.ndim == 1 for waveform in fake_engine.seen)
    np.testing.assert_array_equal(
        fake_engine.seen[1], soxr.resample(stereo.mean(axis=1, dtype=np.float32), 44_100, 16_000, quality="HQ")
    )
    rows = out.column("asr").to_pylist()
    assert rows[0] == {
        "text": " 48000 samples",
        "chunks": [{"text": " all", "timestamp": [0.0, 3.0]}, {"text": " open", "timestamp": [3.0, None]}],
    }
    assert rows[2] is None
    assert rows[3] is None
    messages = [row[0]["message"] if row else None for row in out.column(ERROR_COLUMN).to_pylist()]
    assert messages[2] == "input column 'audio' is null"
    assert messages[3].startswith("MediaError: cannot decode audio")
    assert messages[0] is None
    assert messages[4] is None


def test_an_engine_failure_is_isolated_to_its_row(fake_engine: type[FakeEngine]) -> None:
    clips = tiny_audio.clips()
    blip = tiny_audio.encode(np.zeros(50, np.float32), 16_000, "WAV", "FLOAT")
    out = make(engine="faster-whisper")(pa.table({"audio": [clips["ogg_1s"], blip, clips["mp3_2s"]]}))
    rows = out.column("asr").to_pylist()
    assert rows[1] is None
    assert rows[0]["text"].endswith("samples")
    assert rows[2]["text"].endswith("samples")
    assert out.column(ERROR_COLUMN).to_pylist()[1] == [
        {"step": "asr", "message": "RuntimeError: too short for the engine"}
    ]


def test_the_engine_stage_prepares_only_the_waveform(fake_engine: type[FakeEngine]) -> None:
    from safetensors.numpy import load as load_arrays

    clips = tiny_audio.clips()
    table = pa.table({"audio": [clips["flac_7s"]]})
    stage = pickle.loads(pickle.dumps(make(engine="faster-whisper").preparer()))
    prepared = stage(table)
    (blob,) = prepared.column(prepared_column("asr")).to_pylist()
    arrays = load_arrays(blob)
    assert list(arrays) == ["waveform"]
    assert arrays["waveform"].shape == (120_000,)
    assert fake_engine.built == []  # preparing never builds the engine
    out = make(engine="faster-whisper")(prepared)
    assert out.column("asr").to_pylist()[0]["text"] == " 120000 samples"
    assert prepared_column("asr") not in out.column_names


@pytest.mark.parametrize(
    ("options", "kwargs"),
    [
        ({"engine": "faster-whisper"}, {}),
        ({"engine": "faster-whisper", "return_timestamps": True}, {}),
        ({"num_beams": 1, "max_new_tokens": 64}, {"beam_size": 1, "max_new_tokens": 64}),
        (
            {"language": "en", "task": "translate", "chunk_length_s": 20, "return_timestamps": "word"},
            {"language": "en", "task": "translate", "chunk_length": 20, "word_timestamps": True},
        ),
    ],
)
def test_faster_whisper_gets_only_the_settings_a_step_sets(options: dict, kwargs: dict) -> None:
    from lakelabel.operators.audio.faster_whisper_engine import transcribe_kwargs

    assert transcribe_kwargs(options) == kwargs
