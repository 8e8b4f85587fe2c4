"""Tiny, seeded, offline vision models and test images: a ViT classifier, a YOLOS detector and captioners.

Each builder writes its model (``model.safetensors``) and its Pillow-backend image processor (plus a tokenizer for
the captioner) with ``save_pretrained``, so that the directory loads through ``AutoModel*`` /
``AutoImageProcessor`` and ``transformers.pipeline`` exactly like a Hub checkpoint, without network. Weights are
drawn under ``torch.manual_seed``; images are drawn from a seeded NumPy generator and Pillow shapes.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import torch
from PIL import Image, ImageDraw
from transformers import (
    BertConfig,
    BertLMHeadModel,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessorPil,
    CLIPImageProcessorPil,
    GenerationConfig,
    GitConfig,
    GitForCausalLM,
    PreTrainedTokenizerFast,
    VisionEncoderDecoderModel,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
    ViTModel,
    YolosConfig,
    YolosForObjectDetection,
    YolosImageProcessorPil,
)

from tests import tiny_models

if TYPE_CHECKING:
    from pathlib import Path

IMAGE_LABELS: tuple[str, ...] = ("cat", "dog", "bird", "fish", "horse", "sheep", "cow")
OBJECT_LABELS: tuple[str, ...] = ("person", "car", "tree")

IMAGE_SIZE = 32
PATCH_SIZE = 8
# Weight init std far above ViT's 0.02: at 0.02 a random two-layer ViT gives every image nearly the same logits,
# so a label order (or a caption) would check nothing.
INIT_RANGE = 0.5
# The captioner's [SEP] logit bias and its generation config's minimum length: captions end after 2 to 30 tokens.
SEP_BIAS = 7.0
CAPTION_MIN_TOKENS = 2


def _vit(**kwargs: object) -> ViTConfig:
    return ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        initializer_range=INIT_RANGE,
        **kwargs,
    )


_VISION_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "image_size",
    "patch_size",
    "initializer_range",
)


def _vit_processor() -> ViTImageProcessorPil:
    return ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def build_image_classifier(path: Path, *, seed: int = 0, multi_label: bool = False) -> Path:
    """Build a tiny ``ViTForImageClassification`` over ``IMAGE_LABELS`` (32x32 input, 8x8 patches) in ``path``."""
    torch.manual_seed(seed)
    config = _vit(
        id2label=dict(enumerate(IMAGE_LABELS)),
        label2id={label: i for i, label in enumerate(IMAGE_LABELS)},
        problem_type="multi_label_classification" if multi_label else None,
    )
    model = ViTForImageClassification(config).eval()
    model.save_pretrained(path)
    _vit_processor().save_pretrained(path)
    return path


def build_object_detector(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny ``YolosForObjectDetection`` (ten detection tokens) over ``OBJECT_LABELS`` in ``path``.

    Its image processor resizes the shortest edge to 48 pixels (the longest to at most 80; both sides multiples of
    16), keeping the aspect ratio, so images of different shapes give inputs of different sizes.
    """
    torch.manual_seed(seed)
    config = YolosConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=[48, 64],
        patch_size=PATCH_SIZE,
        num_detection_tokens=10,
        use_mid_position_embeddings=False,
        initializer_range=INIT_RANGE,
        id2label=dict(enumerate(OBJECT_LABELS)),
        label2id={label: i for i, label in enumerate(OBJECT_LABELS)},
    )
    model = YolosForObjectDetection(config).eval()
    with torch.no_grad():  # YOLOS leaves its tokens and position embeddings at zero: every detection would be equal
        embeddings = model.vit.embeddings
        for parameter in (embeddings.cls_token, embeddings.detection_tokens, embeddings.position_embeddings):
            parameter.normal_(0.0, 1.0)
    model.save_pretrained(path)
    YolosImageProcessorPil(size={"shortest_edge": 48, "longest_edge": 80}).save_pretrained(path)
    return path


def _text_config(tokenizer: PreTrainedTokenizerFast) -> dict[str, object]:
    """A tiny two-layer text decoder sized to ``tokenizer``: starts at ``[CLS]``, ends at ``[SEP]``."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "max_position_embeddings": 64,
        "initializer_range": INIT_RANGE,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }


def build_captioner(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny ``VisionEncoderDecoderModel`` (ViT encoder, BERT decoder with cross-attention) in ``path``.

    The decoder starts from ``[CLS]`` and ends at ``[SEP]``; the tokenizer is ``tiny_models``' WordPiece one. The
    ``[SEP]`` logit is raised and the generation config asks for two tokens at least, so that captions are never
    empty and end at different lengths.
    """
    tokenizer = tiny_models.build_tokenizer(model_max_length=64)
    torch.manual_seed(seed)
    decoder_config = BertConfig(**_text_config(tokenizer), is_decoder=True, add_cross_attention=True)
    model = VisionEncoderDecoderModel(encoder=ViTModel(_vit()), decoder=BertLMHeadModel(decoder_config))
    model.config.decoder_start_token_id = tokenizer.cls_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.sep_token_id
    model.generation_config = GenerationConfig(
        decoder_start_token_id=tokenizer.cls_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        min_new_tokens=CAPTION_MIN_TOKENS,
    )
    with torch.no_grad():
        model.decoder.cls.predictions.bias[tokenizer.sep_token_id] += SEP_BIAS
    model.eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    _vit_processor().save_pretrained(path)
    return path


def build_blip_captioner(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny ``BlipForConditionalGeneration`` (BLIP's captioning model) with a BLIP image processor."""
    tokenizer = tiny_models.build_tokenizer(model_max_length=64)
    torch.manual_seed(seed)
    vision = {key: value for key, value in _vit().to_dict().items() if key in _VISION_KEYS}
    config = BlipConfig(
        vision_config=vision, text_config={**_text_config(tokenizer), "sep_token_id": tokenizer.sep_token_id}
    )
    model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    BlipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(path)
    return path


def build_git_captioner(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny ``GitForCausalLM`` (a decoder-only captioner over CLIP-style image features)."""
    tokenizer = tiny_models.build_tokenizer(model_max_length=64)
    torch.manual_seed(seed)
    vision = {key: value for key, value in _vit().to_dict().items() if key in _VISION_KEYS}
    model = GitForCausalLM(GitConfig(vision_config=vision, **_text_config(tokenizer))).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    size = {"shortest_edge": IMAGE_SIZE}
    CLIPImageProcessorPil(size=size, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(path)
    return path


# -- test images -------------------------------------------------------------------------------------------------
def _drawn(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Seeded noise with a few filled shapes on top (RGB)."""
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x0, x1 = sorted(rng.integers(0, width, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height, 2).tolist())
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
    return image


def _with_alpha(rng: np.random.Generator, image: Image.Image) -> Image.Image:
    """``image`` as RGBA with seeded random transparency."""
    width, height = image.size
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, size=(height, width), dtype=np.uint8), "L"))
    return rgba


def encode(image: Image.Image, image_format: str, **params: object) -> bytes:
    """``image`` encoded as ``image_format`` (PNG, JPEG, WEBP, GIF, BMP)."""
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def images(seed: int = 0) -> dict[str, bytes]:
    """Encoded test images of several sizes, modes (RGB, RGBA, L, P, CMYK) and formats (PNG, JPEG, WebP, GIF, BMP).

    Names end in the size as shown (``exif_rotated_jpeg_40x80`` is stored as 80x40 with an EXIF orientation of
    90 degrees clockwise; ``animated_gif_30x20`` holds two frames, of which the first is used).
    """
    rng = np.random.default_rng(seed)
    rotated = Image.Exif()
    rotated[0x0112] = 6  # orientation: the stored pixels are to be rotated 90 degrees clockwise when shown
    frames = [_drawn(rng, 30, 20).convert("P", palette=Image.Palette.ADAPTIVE) for _ in range(2)]
    palette = _drawn(rng, 24, 24).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return {
        "rgb_png_64x48": encode(_drawn(rng, 64, 48), "PNG"),
        "rgb_jpeg_100x60": encode(_drawn(rng, 100, 60), "JPEG", quality=90),
        "rgba_png_40x30": encode(_with_alpha(rng, _drawn(rng, 40, 30)), "PNG"),
        "gray_png_50x50": encode(_drawn(rng, 50, 50).convert("L"), "PNG"),
        "rgba_webp_lossless_26x52": encode(_with_alpha(rng, _drawn(rng, 26, 52)), "WEBP", lossless=True),
        "rgb_webp_lossy_45x35": encode(_drawn(rng, 45, 35), "WEBP", quality=80),
        "palette_gif_33x77": encode(_drawn(rng, 33, 77).convert("P", palette=Image.Palette.ADAPTIVE), "GIF"),
        "palette_png_transparent_24x24": encode(palette, "PNG", transparency=0),
        "animated_gif_30x20": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100),
        "rgb_bmp_20x90": encode(_drawn(rng, 20, 90), "BMP"),
        "cmyk_jpeg_36x36": encode(_drawn(rng, 36, 36).convert("CMYK"), "JPEG"),
        "exif_rotated_jpeg_40x80": encode(_drawn(rng, 80, 40), "JPEG", exif=rotated),
        "second_png_64x48": encode(_drawn(rng, 64, 48), "PNG"),
        "tiny_png_3x2": encode(_drawn(rng, 3, 2), "PNG"),
    }


def bad_images(seed: int = 0) -> dict[str, bytes]:
    """Encoded media that cannot be annotated, by name: cut short, not an image, or degenerate in size."""
    good = images(seed)
    png, jpeg = good["rgb_png_64x48"], good["rgb_jpeg_100x60"]
    return {
        "empty": b"",
        "text": b"this is not an image",
        "truncated_png": png[: len(png) // 2],
        "truncated_jpeg": jpeg[: len(jpeg) // 2],
        "one_pixel_png": encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
        "one_pixel_wide_png": encode(Image.new("L", (1, 40), 128), "PNG"),
    }


STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
"""What ``datasets``' ``Image`` feature writes to Parquet."""


def struct_column(encoded: dict[str, bytes], directory: Path) -> pa.Array:
    """``encoded`` as ``datasets``-style structs; the last one holds no bytes, only the path of a file it wrote."""
    *inline, (name, data) = encoded.items()
    on_disk = directory / name
    on_disk.write_bytes(data)
    rows = [{"bytes": value, "path": f"{key}.img"} for key, value in inline]
    return pa.array([*rows, {"bytes": None, "path": str(on_disk)}], STRUCT)


BAD_IMAGE_ERRORS = [
    r"MediaError: empty \(0 bytes\)",
    r"MediaError: cannot decode image: unknown format or damaged header \(20 bytes\)",
    r"MediaError: cannot decode image \(OSError: Truncated File Read\)",
    r"MediaError: cannot decode image \(OSError: image file is truncated \(\d+ bytes not processed\)\)",
    r"MediaError: image is 1x1 pixels; at least 2x2 is needed",
    r"MediaError: image is 1x40 pixels; at least 2x2 is needed",
]
"""The row errors of ``bad_images()``, in its order (regular expressions)."""


def assert_row_errors(table: pa.Table, expected: list[str | None]) -> None:
    """Each row's first error message fully matches its pattern; None: the row has no error."""
    import re

    from lakelabel.operators import ERROR_COLUMN

    messages = [row[0]["message"] if row else None for row in table.column(ERROR_COLUMN).to_pylist()]
    assert len(messages) == len(expected)
    for message, pattern in zip(messages, expected, strict=True):
        assert (message is None) if pattern is None else re.fullmatch(pattern, message), (message, pattern)
