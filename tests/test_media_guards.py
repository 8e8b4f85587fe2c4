"""Media limits: an image's pixels and a recording's duration are read from the header and refused before decoding."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from lakelabel.operators.audio.audio_io import MAX_AUDIO_SECONDS, decode_audio
from lakelabel.operators.core.media import MediaError
from lakelabel.operators.vision.image_io import MAX_PIXELS, decode_image

pytestmark = pytest.mark.faults


def png(width: int, height: int) -> bytes:
    sink = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(sink, format="PNG")
    return sink.getvalue()


def with_header_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR chunk claiming another size (and a valid CRC): what a decompression bomb looks like."""
    start = data.index(b"IHDR")
    fields = struct.pack(">II", width, height) + data[start + 12 : start + 17]
    chunk = b"IHDR" + fields
    return data[:start] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[start + 21 :]


def test_an_image_above_the_pixel_limit_is_refused_from_its_header() -> None:
    bomb = with_header_size(png(16, 16), 9_000, 9_000)  # 81 megapixels (243 MB decoded) in a few hundred bytes
    with pytest.raises(MediaError, match=r"image is 9000x9000 = 81000000 pixels, above the limit of 50000000 "):
        decode_image(bomb)
    assert MAX_PIXELS < 9_000 * 9_000
    with pytest.raises(MediaError, match="too large to decode"):  # Pillow's own hard limit, far above ours
        decode_image(with_header_size(png(16, 16), 40_000, 40_000))


def test_the_pixel_limit_is_an_option_and_images_under_it_decode_as_pillow_does() -> None:
    data = png(64, 48)
    with pytest.raises(MediaError, match="above the limit of 1000 "):
        decode_image(data, max_pixels=1000)
    image = decode_image(data)
    reference = Image.open(io.BytesIO(data)).convert("RGB")
    assert np.array_equal(np.asarray(image), np.asarray(reference))


def wav(seconds: float, rate: int = 8000) -> bytes:
    sink = io.BytesIO()
    sf.write(sink, np.zeros(int(seconds * rate), np.float32), rate, format="WAV", subtype="PCM_16")
    return sink.getvalue()


def test_a_recording_above_the_duration_limit_is_refused_from_its_header() -> None:
    data = wav(2.0)
    with pytest.raises(MediaError, match=r"audio lasts 2s, above the limit of 1s \(step option max_audio_seconds\)"):
        decode_audio(data, max_seconds=1.0)
    samples, rate = decode_audio(data)
    reference, reference_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    assert rate == reference_rate
    assert np.array_equal(samples, reference)
    assert MAX_AUDIO_SECONDS >= 3600
