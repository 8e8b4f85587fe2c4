"""Decoding encoded audio: formats, downmix, soxr resampling, the PyAV fallback and bad media with exact reasons."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from lakelabel.operators.audio.audio_io import decode_audio, length_batches, load_audio, pad_stack
from lakelabel.operators.core.media import MediaError
from tests.tiny_audio import encode, signal

RATE = 16_000


def _aac_m4a(waveform: np.ndarray, rate: int) -> bytes:
    """AAC in an MP4 container: a format libsndfile cannot read, so only PyAV decodes it."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(waveform[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def test_lossless_formats_decode_to_the_written_samples() -> None:
    x = signal(1.5, seed=1)
    np.testing.assert_array_equal(load_audio(encode(x, RATE, "WAV", "FLOAT"), RATE), x)
    step = 1 / 32768  # one 16-bit PCM step
    pcm16 = load_audio(encode(x, RATE, "WAV", "PCM_16"), RATE)
    np.testing.assert_allclose(pcm16, x, atol=step * 1.01)
    np.testing.assert_array_equal(pcm16 * 32768, np.round(pcm16 * 32768))  # whole 16-bit steps
    flac = load_audio(encode(x, RATE, "FLAC"), RATE)
    np.testing.assert_allclose(flac, x, atol=step * 1.01)
    np.testing.assert_array_equal(flac * 32768, np.round(flac * 32768))


@pytest.mark.parametrize(("fmt", "subtype"), [("OGG", "VORBIS"), ("MP3", None)])
def test_lossy_formats_decode_close_to_the_signal(fmt: str, subtype: str | None) -> None:
    x = signal(2.0, seed=2)
    decoded = load_audio(encode(x, RATE, fmt, subtype), RATE)
    assert decoded.dtype == np.float32
    assert decoded.ndim == 1
    assert abs(decoded.shape[0] - x.shape[0]) <= 2048  # codec priming and padding
    if fmt == "OGG":  # MP3 shifts the signal by its encoder delay: only its length and level are compared
        n = min(decoded.shape[0], x.shape[0])
        assert np.corrcoef(decoded[:n], x[:n])[0, 1] > 0.5
    assert 0.5 < np.std(decoded) / np.std(x) < 1.5


def test_stereo_is_averaged_and_resampled_with_soxr() -> None:
    stereo = signal(2.5, seed=6, sampling_rate=44_100, channels=2)
    decoded = load_audio(encode(stereo, 44_100, "WAV", "FLOAT"), RATE)
    expected = soxr.resample(stereo.mean(axis=1, dtype=np.float32), 44_100, RATE, quality="HQ")
    np.testing.assert_array_equal(decoded, expected)
    assert decoded.shape == (40_000,)
    assert decoded.dtype == np.float32
    # A channel layout the model would otherwise misread: the left channel alone is not what we get.
    left_only = soxr.resample(stereo[:, 0], 44_100, RATE, quality="HQ")
    assert not np.allclose(decoded, left_only)


def test_same_rate_is_not_resampled() -> None:
    x = signal(1.0, seed=3, sampling_rate=8_000)
    samples, rate = decode_audio(encode(x, 8_000, "WAV", "FLOAT"))
    assert rate == 8_000
    assert samples.shape == (8_000, 1)
    np.testing.assert_array_equal(load_audio(encode(x, 8_000, "WAV", "FLOAT"), 8_000), x)


def test_pyav_decodes_what_soundfile_cannot() -> None:
    x = signal(2.0, seed=7)
    data = _aac_m4a(x, RATE)
    with pytest.raises(sf.LibsndfileError):
        sf.read(io.BytesIO(data))
    decoded = load_audio(data, RATE)
    assert decoded.dtype == np.float32
    assert abs(decoded.shape[0] - x.shape[0]) <= 2048
    assert 0.5 < np.std(decoded) / np.std(x) < 1.5


def test_a_datasets_struct_reads_bytes_or_the_file_at_path(tmp_path) -> None:
    x = signal(1.0, seed=8)
    data = encode(x, RATE, "WAV", "FLOAT")
    (tmp_path / "clip.wav").write_bytes(data)
    np.testing.assert_array_equal(load_audio({"bytes": data, "path": "ignored.wav"}, RATE), x)
    np.testing.assert_array_equal(load_audio({"bytes": None, "path": str(tmp_path / "clip.wav")}, RATE), x)


def _bad_media() -> dict[str, tuple[bytes, str]]:
    x = signal(2.0, seed=1)
    wav = encode(x, RATE, "WAV", "PCM_16")
    flac = encode(x, RATE, "FLAC")
    ogg = encode(x, RATE, "OGG", "VORBIS")
    return {
        "empty": (b"", "empty (0 bytes)"),
        "text": (
            b"definitely not audio",
            "cannot decode audio (soundfile: Format not recognised; PyAV: Invalid data found when processing input)",
        ),
        "truncated_wav": (wav[: len(wav) // 2], "truncated: the data chunk holds 31978 of 64000 bytes"),
        "wav_header_only": (wav[:44], "truncated: the data chunk holds 0 of 64000 bytes"),
        "truncated_flac": (
            flac[: len(flac) // 2],
            "cannot decode audio (soundfile: flac decoder lost sync; PyAV: Invalid data found when processing input)",
        ),
        "truncated_ogg": (
            ogg[:3000],
            "cannot decode audio (soundfile: Supported file format but file is malformed; PyAV: End of file)",
        ),
        "zero_samples": (encode(np.zeros(0, np.float32), RATE, "WAV", "PCM_16"), "no audio samples (0 frames)"),
        "nan": (
            encode(np.full(100, np.nan, np.float32), RATE, "WAV", "FLOAT"),
            "audio holds non-finite samples (NaN or infinity)",
        ),
    }


BAD_MEDIA = _bad_media()


@pytest.mark.parametrize("name", sorted(BAD_MEDIA))
def test_bad_media_raise_media_error_with_the_reason(name: str) -> None:
    data, reason = BAD_MEDIA[name]
    with pytest.raises(MediaError) as raised:
        load_audio(data, RATE)
    assert str(raised.value) == reason


def test_length_batches_pad_or_keep_equal_lengths() -> None:
    lengths = [5, 3, 5, 8, 3, 5]
    assert list(length_batches(lengths, pad=False)) == [[1, 4], [0, 2, 5], [3]]
    assert list(length_batches(lengths, pad=True)) == [[1, 4, 0, 2, 5, 3]]
    assert list(length_batches(lengths, pad=True, budget=16)) == [[1, 4, 0], [2, 5], [3]]
    assert list(length_batches(lengths, pad=False, max_rows=2)) == [[1, 4], [0, 2], [5], [3]]


def test_pad_stack_pads_along_time_with_a_mask() -> None:
    stacked, mask = pad_stack([np.ones(2, np.float32), np.ones(4, np.float32)], padding_value=-1.0)
    np.testing.assert_array_equal(stacked, [[1, 1, -1, -1], [1, 1, 1, 1]])
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [1, 1, 1, 1]])
