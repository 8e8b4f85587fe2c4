"""Decoding a cell of encoded audio into a mono float32 waveform at the model's sampling rate.

Decoding goes through soundfile first (libsndfile: WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF, ...) and falls back to
PyAV (FFmpeg: AAC/M4A, WebM, ...) for what soundfile cannot read. Channels are downmixed by averaging them, and a
recording at another rate is resampled with soxr (``quality="HQ"``). ``transformers.pipeline()`` resamples a
``{"raw", "sampling_rate"}`` input with torchaudio instead, so waveforms at a rate other than the model's can
differ from the pipeline's in the last bits; the model then sees soxr's waveform.

Bad media raise ``MediaError`` with a reason: bytes that neither decoder reads, a truncated file (a WAV whose data
chunk is shorter than its header says; a FLAC cut short fails to decode), no audio stream, zero samples, or
non-finite samples. An MP3 or Ogg stream cut short decodes to the frames that are there, as every player does:
neither format states its length exactly up front, so a shortfall cannot be told from an ordinary file.

The module also holds what the audio operators share for batching decoded inputs: length-sorted batches,
zero-padding with an attention mask, and whether padding is exact for a model.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import soxr

from lakelabel.operators.core.base import ModelLoadError
from lakelabel.operators.core.media import MediaError, media_bytes

if TYPE_CHECKING:
    from transformers import FeatureExtractionMixin

    from lakelabel.operators.core.base import OperatorConfig

MAX_AUDIO_SECONDS = 4 * 3600.0
"""Default duration limit of a recording, checked from its header (frames / rate) before decoding: a multi-day
recording (gigabytes of float32 once decoded) becomes a row error instead. The step option ``max_audio_seconds``
changes it. Formats whose header states no length (some MP3, Ogg) are checked as their frames are decoded."""

RESAMPLE_QUALITY = "HQ"
"""soxr's quality preset for resampling to the model's rate."""

# libsndfile logs ``data : <declared> (should be <present>)`` when a WAV-family data chunk runs past the end of the
# file. A streaming writer that does not know the length writes 0 or 0xFFFFFFFF (sometimes 0x7FFFFFFF) there.
_DATA_SHORTFALL = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTH = 0x7FFFFFFF
_LIBSNDFILE_PREFIX = re.compile(r"^\s*Error\s*:\s*")


def load_audio(value: Any, sampling_rate: int, *, max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """The mono float32 waveform of a cell (bytes or ``struct<bytes, path>``) at ``sampling_rate``."""
    samples, rate = decode_audio(media_bytes(value), max_seconds=max_seconds)
    return resample(to_mono(samples), rate, sampling_rate)


def _too_long(seconds: float, max_seconds: float) -> MediaError:
    return MediaError(
        f"audio lasts {seconds:.0f}s, above the limit of {max_seconds:g}s (step option max_audio_seconds); not decoded"
    )


def decode_audio(data: bytes, *, max_seconds: float = MAX_AUDIO_SECONDS) -> tuple[np.ndarray, int]:
    """Decode encoded audio to float32 ``(samples, channels)`` and its sampling rate; raise ``MediaError``.

    A recording longer than ``max_seconds`` (by its header, or as decoded when the header does not say) is refused.
    """
    try:
        samples, rate = _decode_soundfile(data, max_seconds)
    except MediaError:
        raise
    except Exception as soundfile_error:  # noqa: BLE001 - anything libsndfile cannot read goes to FFmpeg
        try:
            samples, rate = _decode_pyav(data, max_seconds)
        except MediaError:
            raise
        except Exception as pyav_error:  # noqa: BLE001 - both decoders' reasons are reported
            raise MediaError(
                f"cannot decode audio (soundfile: {_reason(soundfile_error)}; PyAV: {_reason(pyav_error)})"
            ) from None
    if samples.shape[0] == 0:
        raise MediaError("no audio samples (0 frames)")
    if not np.isfinite(samples).all():
        raise MediaError("audio holds non-finite samples (NaN or infinity)")
    return samples, rate


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average ``(samples, channels)`` into one channel."""
    if samples.ndim == 1:
        return samples
    if samples.shape[1] == 1:
        return samples[:, 0]
    return samples.mean(axis=1, dtype=np.float32)


def resample(waveform: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample a mono float32 waveform from ``rate`` to ``target`` Hz with soxr; unchanged when they match."""
    if rate != target:
        waveform = soxr.resample(waveform, rate, target, quality=RESAMPLE_QUALITY)
        if waveform.shape[0] == 0:
            raise MediaError(f"no audio samples left after resampling from {rate} Hz to {target} Hz")
    return np.ascontiguousarray(waveform, dtype=np.float32)


def load_feature_extractor(config: OperatorConfig) -> FeatureExtractionMixin:
    """The model's feature extractor (``preprocessor_config.json``), which also names its sampling rate."""
    from transformers import AutoFeatureExtractor  # noqa: PLC0415 - heavy; only the workers need it

    try:
        return AutoFeatureExtractor.from_pretrained(
            config.model, revision=config.revision, trust_remote_code=config.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model '{config.model}': cannot load its feature extractor: {exc}") from exc


def _decode_soundfile(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    with sf.SoundFile(io.BytesIO(data)) as handle:
        declared = handle.frames
        if handle.samplerate > 0 and declared / handle.samplerate > max_seconds:
            raise _too_long(declared / handle.samplerate, max_seconds)
        samples = handle.read(dtype="float32", always_2d=True)
        rate = handle.samplerate
        file_format = handle.format
        log = handle.extra_info
    shortfall = _DATA_SHORTFALL.search(log)
    if shortfall is not None:
        size, present = int(shortfall.group(1)), int(shortfall.group(2))
        if present < size and 0 < size < _UNKNOWN_LENGTH:
            raise MediaError(f"truncated: the data chunk holds {present} of {size} bytes")
    if file_format != "MP3" and samples.shape[0] < declared:
        raise MediaError(f"truncated: decoded {samples.shape[0]} of {declared} frames")
    return samples, rate


def _decode_pyav(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    import av  # noqa: PLC0415 - FFmpeg is loaded only for what libsndfile cannot read

    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        if declared > max_seconds:
            raise _too_long(declared, max_seconds)
        decoded = 0
        resampler = av.AudioResampler(format="fltp")  # planar float32; keeps the layout and rate
        planes: list[np.ndarray] = []
        rate = 0
        for frame in container.decode(stream):
            for converted in resampler.resample(frame):
                rate = rate or converted.sample_rate
                planes.append(converted.to_ndarray())
                decoded += converted.samples
                if decoded > max_seconds * rate:
                    raise _too_long(decoded / rate, max_seconds)
        for converted in resampler.resample(None):
            planes.append(converted.to_ndarray())
    if not planes:
        raise ValueError("no audio samples")
    return np.ascontiguousarray(np.concatenate(planes, axis=1).T, dtype=np.float32), rate


def _reason(error: BaseException) -> str:
    """A decoder's error without the object addresses and errno prefixes that make messages differ per run."""
    text = getattr(error, "error_string", None) or getattr(error, "strerror", None) or str(error)
    return _LIBSNDFILE_PREFIX.sub("", str(text)).strip().rstrip(".") or type(error).__name__


# -- batching decoded audio for a forward pass -------------------------------------------------------------------
SAMPLE_BUDGET = 16_000 * 30 * 16
"""Padded input samples (or frames) per forward: rows x longest row."""

MAX_ROWS = 32


def length_batches(
    lengths: list[int], *, pad: bool, budget: int = SAMPLE_BUDGET, max_rows: int = MAX_ROWS
) -> Iterator[list[int]]:
    """Yield indices in ascending length, cut so that ``rows x longest <= budget`` and at most ``max_rows``.

    Without ``pad`` only inputs of equal length share a batch: models whose feature encoder normalises over time
    (``feat_extract_norm="group"``, as ``wav2vec2-base``) give other results for a zero-padded input.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batch: list[int] = []
    for index in order:
        longest = lengths[index]  # ascending order: the newest input is the longest
        if batch and (
            len(batch) >= max_rows or (len(batch) + 1) * longest > budget or (not pad and lengths[batch[0]] != longest)
        ):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def pad_stack(arrays: list[np.ndarray], padding_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``[T, ...]`` arrays padded along their first axis; also the ``[rows, T]`` int64 attention mask."""
    longest = max(array.shape[0] for array in arrays)
    stacked = np.full((len(arrays), longest, *arrays[0].shape[1:]), padding_value, dtype=arrays[0].dtype)
    mask = np.zeros((len(arrays), longest), dtype=np.int64)
    for row, array in enumerate(arrays):
        stacked[row, : array.shape[0]] = array
        mask[row, : array.shape[0]] = 1
    return stacked, mask


def pads_exactly(model_config: Any, feature_extractor: Any) -> bool:
    """Whether zero-padding a 1-D waveform input with an attention mask leaves the model's outputs unchanged.

    True for Wav2Vec2-style models whose feature extractor returns an attention mask and whose convolutional
    encoder normalises per frame (``feat_extract_norm="layer"``); ``"group"`` norms over time, so padding leaks in.
    """
    return bool(getattr(feature_extractor, "return_attention_mask", False)) and (
        getattr(model_config, "feat_extract_norm", "layer") != "group"
    )
