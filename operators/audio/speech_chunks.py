"""The CPU stage of ``automatic-speech-recognition``: a recording decoded and cut into the pipeline's chunks.

Each recording is decoded to mono float32 at the feature extractor's rate and cut into overlapping chunks
(``chunk_length_s`` with ``stride_length_s`` of overlap on each side), with the feature extractor run per chunk,
as ``pipeline("automatic-speech-recognition")``'s ``chunk_iter`` does. With faster-whisper only the 16 kHz
waveform is prepared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from typing_extensions import override

from lakelabel.operators.audio.audio_io import load_audio, load_feature_extractor
from lakelabel.operators.core.base import ModelLoadError, OptionError, Prepared, Preparer
from lakelabel.operators.core.loading import load_config

if TYPE_CHECKING:
    from collections.abc import Iterator

FASTER_WHISPER_RATE = 16_000
"""faster-whisper's input rate, where its engine class does not state one."""


def is_number(value: Any) -> bool:
    """An int or a float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def strides(stride_length_s: Any, chunk_length_s: float) -> tuple[float, float]:
    """``stride_length_s`` as (left, right) seconds; the pipeline's default is a sixth of the chunk each side."""
    if stride_length_s is None:
        stride_length_s = chunk_length_s / 6
    if is_number(stride_length_s):
        return float(stride_length_s), float(stride_length_s)
    left, right = stride_length_s
    return float(left), float(right)


def model_kind(model_config: Any, model: str) -> str:
    """``whisper`` or ``ctc``; any other speech model is refused with the model named."""
    if model_config.model_type == "whisper":
        return "whisper"
    if any(str(name).endswith("ForCTC") for name in model_config.architectures or ()):
        return "ctc"
    raise ModelLoadError(
        f"model '{model}' ({model_config.model_type}): automatic-speech-recognition runs Whisper or CTC models"
        " (e.g. Wav2Vec2ForCTC) with engine 'transformers'"
    )


def engine_class() -> Any:
    """The faster-whisper engine class, imported only when a step asks for it."""
    from lakelabel.operators.audio.faster_whisper_engine import FasterWhisperEngine  # noqa: PLC0415 - only that engine needs it

    return FasterWhisperEngine


def align_to_samples(model_config: Any, feature_extractor: Any) -> int:
    """Input samples per output frame of a CTC model (the pipeline's ``_align_to``)."""
    align_to = getattr(model_config, "inputs_to_logits_ratio", 1)
    if model_config.model_type == "lasr_ctc":
        align_to *= feature_extractor.hop_length
    return int(align_to)


class SpeechPreparer(Preparer):
    """Decodes a recording to the model's rate and cuts it into the pipeline's chunks, features per chunk.

    Prepared arrays: ``inputs`` (Whisper: ``[chunks, mel, frames]`` log-mel features, with ``attention_mask``;
    CTC: the chunks' inputs joined along time, with their ``lengths``), ``stride`` (``[chunks, 3]`` samples of
    chunk length, left and right overlap; only when chunked); with faster-whisper only ``waveform``.
    """

    @override
    def load(self) -> None:
        options = self.operator.options
        if options["engine"] == "faster-whisper":
            self.kind = "waveform"
            self.sampling_rate = int(getattr(engine_class(), "sampling_rate", FASTER_WHISPER_RATE))
            return
        model_config = load_config(self.config)
        self.kind = model_kind(model_config, self.config.model)
        self.feature_extractor = load_feature_extractor(self.config)
        self.sampling_rate = int(self.feature_extractor.sampling_rate)
        self.align_to = align_to_samples(model_config, self.feature_extractor) if self.kind == "ctc" else 1
        chunk = options["chunk_length_s"]
        if chunk is None and self.kind == "whisper":
            chunk = self.feature_extractor.chunk_length
        self.chunk_length_s = chunk
        if chunk is not None:
            self.chunking = self._samples(chunk, strides(options["stride_length_s"], chunk))

    def _samples(self, chunk: float, strides: tuple[float, float]) -> tuple[int, int, int]:
        """The pipeline's chunk and stride lengths in samples, aligned to the model's frame."""
        align, rate = self.align_to, self.sampling_rate
        chunk_len = round(chunk * rate / align) * align
        left, right = (round(stride * rate / align) * align for stride in strides)
        if chunk_len <= left + right:
            raise OptionError(
                f"step '{self.config.output}': option stride_length_s must leave room in chunk_length_s"
                f" ({left} + {right} samples of stride in a chunk of {chunk_len})"
            )
        return int(chunk_len), int(left), int(right)

    @override
    def prepare(self, value: Any) -> Prepared:
        waveform = load_audio(value, self.sampling_rate)
        if self.kind == "waveform":
            return {"waveform": waveform}
        chunked = self.chunk_length_s is not None and (
            self.operator.options["chunk_length_s"] is not None or waveform.shape[0] > self.feature_extractor.n_samples
        )
        pieces = list(self._chunks(waveform)) if chunked else [self._features(waveform)]
        main = self.feature_extractor.model_input_names[0]
        prepared: Prepared = {}
        if self.kind == "whisper":
            prepared["inputs"] = np.concatenate([piece[main] for piece in pieces])
            prepared["attention_mask"] = np.concatenate([piece["attention_mask"] for piece in pieces])
        else:
            prepared["inputs"] = np.concatenate([piece[main][0] for piece in pieces])
            prepared["lengths"] = np.array([piece[main].shape[1] for piece in pieces], dtype=np.int64)
        if chunked:
            prepared["stride"] = np.array([piece["stride"] for piece in pieces], dtype=np.int64)
        return prepared

    def _features(self, waveform: np.ndarray) -> dict[str, Any]:
        processed = self.feature_extractor(
            waveform, sampling_rate=self.sampling_rate, return_tensors="np", return_attention_mask=True
        )
        return dict(processed)

    def _chunks(self, waveform: np.ndarray) -> Iterator[dict[str, Any]]:
        """The pipeline's ``chunk_iter``: overlapping chunks, features per chunk, a chunk inside the stride dropped."""
        chunk_len, left, right = self.chunking
        step = chunk_len - left - right
        total = waveform.shape[0]
        for start in range(0, total, step):
            end = start + chunk_len
            chunk = waveform[start:end]
            stride_left = 0 if start == 0 else left
            is_last = end >= total
            if chunk.shape[0] > stride_left:
                piece = self._features(chunk)
                piece["stride"] = (chunk.shape[0], stride_left, 0 if is_last else right)
                yield piece
            if is_last:
                break
