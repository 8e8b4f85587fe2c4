"""Image decoding as transformers' load_image does it, bad media named on the row, and batching by input shape."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from transformers import BertConfig, VisionEncoderDecoderConfig, ViTConfig, YolosConfig
from transformers.image_utils import load_image as transformers_load_image

from lakelabel.operators.core.media import MediaError
from lakelabel.operators.vision.image_io import decode_image, load_image, patch_side, process_image, shape_batches
from tests import tiny_vision

IMAGES = tiny_vision.images()
BAD = tiny_vision.bad_images()


@pytest.mark.parametrize("name", list(IMAGES))
def test_decoding_gives_the_pipelines_rgb_pixels(name: str) -> None:
    ours = load_image(IMAGES[name])
    theirs = transformers_load_image(Image.open(io.BytesIO(IMAGES[name])))
    assert ours.mode == "RGB"
    width, height = (int(side) for side in name.rsplit("_", 1)[1].split("x"))
    assert ours.size == (width, height)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_exif_orientation_and_alpha_are_applied_as_load_image_applies_them() -> None:
    stored = Image.open(io.BytesIO(IMAGES["exif_rotated_jpeg_40x80"]))
    assert stored.size == (80, 40)
    upright = np.asarray(load_image(IMAGES["exif_rotated_jpeg_40x80"]))
    np.testing.assert_array_equal(upright, np.rot90(np.asarray(stored.convert("RGB")), k=-1))
    rgba = Image.open(io.BytesIO(IMAGES["rgba_png_40x30"]))
    assert rgba.mode == "RGBA"
    assert np.asarray(rgba)[..., 3].min() < 255, "the test image should really be transparent somewhere"
    np.testing.assert_array_equal(np.asarray(load_image(IMAGES["rgba_png_40x30"])), np.asarray(rgba)[..., :3])


def test_the_first_frame_of_an_animation_is_used() -> None:
    animation = Image.open(io.BytesIO(IMAGES["animated_gif_30x20"]))
    assert animation.n_frames == 2
    first = np.asarray(animation.convert("RGB"))
    animation.seek(1)
    assert not np.array_equal(first, np.asarray(animation.convert("RGB")))
    np.testing.assert_array_equal(np.asarray(load_image(IMAGES["animated_gif_30x20"])), first)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty", r"empty \(0 bytes\)"),
        ("text", r"cannot decode image: unknown format or damaged header \(20 bytes\)"),
        ("truncated_png", r"cannot decode image \(OSError: Truncated File Read\)"),
        ("truncated_jpeg", r"cannot decode image \(OSError: image file is truncated \(\d+ bytes not processed\)\)"),
        ("one_pixel_png", r"image is 1x1 pixels; at least 2x2 is needed"),
        ("one_pixel_wide_png", r"image is 1x40 pixels; at least 2x2 is needed"),
    ],
)
def test_bad_media_raise_media_errors_with_a_reason(name: str, message: str) -> None:
    with pytest.raises(MediaError) as caught:
        load_image(BAD[name])
    assert re.fullmatch(message, str(caught.value)), str(caught.value)


def test_truncated_files_fail_even_though_pillow_opens_them() -> None:
    for name in ("truncated_png", "truncated_jpeg"):
        Image.open(io.BytesIO(BAD[name]))  # the header is intact: opening alone succeeds
        with pytest.raises(MediaError, match="cannot decode image"):
            decode_image(BAD[name])


def test_structs_give_their_bytes_or_else_the_file_at_their_path(tmp_path) -> None:
    column = tiny_vision.struct_column({"a": IMAGES["rgb_png_64x48"], "b": IMAGES["gray_png_50x50"]}, tmp_path)
    first, second = column.to_pylist()
    assert second["bytes"] is None
    assert load_image(first).size == (64, 48)
    assert load_image(second).size == (50, 50)
    with pytest.raises(MediaError, match="the struct holds neither bytes nor a path"):
        load_image({"bytes": None, "path": None})
    with pytest.raises(MediaError, match=r"cannot read .*missing\.png"):
        load_image({"bytes": None, "path": str(tmp_path / "missing.png")})


def test_processing_keeps_the_original_size_and_rejects_inputs_below_the_patch_size() -> None:
    from transformers import ViTImageProcessorPil, YolosImageProcessorPil

    vit = ViTImageProcessorPil(size={"height": 32, "width": 32})
    tiny = process_image(vit, load_image(IMAGES["tiny_png_3x2"]), min_side=8)
    assert sorted(tiny) == ["pixel_values", "target_size"]
    assert tiny["pixel_values"].shape == (3, 32, 32)
    assert tiny["pixel_values"].dtype == np.float32
    assert tiny["target_size"].tolist() == [2, 3]
    yolos = YolosImageProcessorPil(size={"shortest_edge": 48, "longest_edge": 80})
    wide = process_image(yolos, load_image(IMAGES["rgb_jpeg_100x60"]), min_side=8)
    assert wide["pixel_values"].shape == (3, 48, 80)
    assert "pixel_mask" not in wide, "an all-ones mask of one unpadded image is not carried"
    thin = load_image(tiny_vision.encode(Image.new("RGB", (300, 2)), "PNG"))  # YOLOS sizes are multiples of 16
    with pytest.raises(MediaError, match="the image processor cannot use this 300x2 image: ValueError"):
        process_image(yolos, thin, min_side=8)
    keeps_aspect = ViTImageProcessorPil(size={"shortest_edge": 32, "longest_edge": 64})
    strip = load_image(tiny_vision.encode(Image.new("RGB", (24, 2)), "PNG"))
    assert process_image(keeps_aspect, strip)["pixel_values"].shape == (3, 5, 64)
    with pytest.raises(MediaError, match=r"24x2 pixels becomes 64x5 .*smaller than the model's 8-pixel patches"):
        process_image(keeps_aspect, strip, min_side=8)


def test_patch_side_comes_from_the_vision_config() -> None:
    vit = ViTConfig(patch_size=8)
    assert patch_side(vit) == 8
    assert patch_side(YolosConfig(patch_size=16)) == 16
    composite = VisionEncoderDecoderConfig.from_encoder_decoder_configs(
        ViTConfig(patch_size=4), BertConfig(is_decoder=True, add_cross_attention=True)
    )
    assert patch_side(composite) == 4
    assert patch_side(BertConfig()) == 1


def test_only_rows_of_one_shape_share_a_batch() -> None:
    def row(height: int, width: int) -> dict[str, np.ndarray]:
        return {"pixel_values": np.zeros((3, height, width), np.float32)}

    items = [row(48, 64), row(48, 80), row(48, 64), row(64, 48), row(48, 64)]
    assert list(shape_batches(items)) == [[0, 2, 4], [1], [3]]
    assert list(shape_batches(items, value_budget=2 * 3 * 48 * 64)) == [[0, 2], [4], [1], [3]]
    assert list(shape_batches(items, max_rows=1)) == [[0], [2], [4], [1], [3]]
