"""Decoding a cell of encoded image into what the model's image processor gives, and batching the results.

A cell (bytes, or ``datasets``' ``struct<bytes, path>``) is decoded with Pillow the way ``transformers``'
``load_image`` does for the pipelines: the first frame, the EXIF orientation applied, converted to RGB (alpha is
dropped, palettes and greyscale are expanded). The file is verified and then decoded in full, so a truncated PNG or
JPEG fails instead of coming out half grey. The model's Pillow-backend image processor (``backend="pil"``, which
needs no torchvision) then runs on that one image, as the pipelines run it per input.

Bad media raise ``MediaError`` with a reason: bytes that are no image, a truncated file, an image with a side of a
single pixel, an image that the image processor cannot resize, or one that comes out smaller than the model's
patches (a thin strip resized to fit a maximum edge).

The module also holds what the image operators share for batching prepared rows: rows whose arrays have the same
shape are stacked and run together. Rows of different sizes (detection processors keep the aspect ratio) are not
padded into one batch: a ViT-style detector such as YOLOS has no pixel mask and a convolutional backbone sees the
padding at the image's edge, so a padded row would not give what the row gives alone.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageOps
from typing_extensions import override

from lakelabel.operators.core.base import ModelLoadError, Prepared, Preparer
from lakelabel.operators.core.loading import load_config
from lakelabel.operators.core.media import MediaError, media_bytes

if TYPE_CHECKING:
    from transformers import BaseImageProcessor, PretrainedConfig

    from lakelabel.operators.core.base import OperatorConfig

MIN_SIDE = 2
"""Images need at least this many pixels on each side; a one-pixel strip holds nothing to annotate."""

INPUT_KEYS = ("pixel_values", "pixel_mask")
"""The image processor outputs a prepared row keeps."""

VALUE_BUDGET = 32 * 3 * 384 * 384
"""Input values (rows x channels x height x width) per forward pass."""

MAX_ROWS = 64

MAX_PIXELS = 50_000_000
"""Default pixel limit (width x height, e.g. 8660x5773) of an image, checked from its header before decoding: a
decompression bomb (a few KB of PNG that decode to gigabytes) becomes a row error instead. The step option
``max_pixels`` changes it."""


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode encoded image bytes to an upright RGB Pillow image; raise ``MediaError`` naming what was wrong.

    The size is read from the header first: an image above ``max_pixels`` is refused before any pixel is decoded.
    """
    try:
        with Image.open(io.BytesIO(data)) as probe:
            _check_pixels(*probe.size, max_pixels)
            probe.verify()  # structure and checksums (PNG chunks' CRCs) without decoding the pixels
        image = Image.open(io.BytesIO(data))
        image.load()  # decodes every byte of the first frame: a truncated file raises here
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(f"image too large to decode: {exc}") from None
    except Image.UnidentifiedImageError:
        raise MediaError(f"cannot decode image: unknown format or damaged header ({len(data)} bytes)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError, EOFError, struct.error
        raise MediaError(f"cannot decode image ({_reason(exc)})") from None
    try:
        image = ImageOps.exif_transpose(image)
        return image.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - a broken EXIF block or palette
        raise MediaError(f"cannot convert the {image.mode} image to RGB ({_reason(exc)})") from None


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise MediaError(
            f"image is {width}x{height} = {width * height} pixels, above the limit of {max_pixels} "
            "(step option max_pixels); not decoded"
        )


def load_image(value: Any, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The upright RGB image of a cell (bytes or ``struct<bytes, path>``), at least ``MIN_SIDE`` on each side."""
    image = decode_image(media_bytes(value), max_pixels=max_pixels)
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise MediaError(f"image is {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    return image


def load_image_processor(config: OperatorConfig) -> BaseImageProcessor:
    """The model's image processor (``preprocessor_config.json``), Pillow backend."""
    from transformers import AutoImageProcessor  # noqa: PLC0415 - heavy; only the workers need it

    try:
        return AutoImageProcessor.from_pretrained(
            config.model, backend="pil", revision=config.revision, trust_remote_code=config.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model '{config.model}': cannot load its image processor: {exc}") from exc


def patch_side(model_config: PretrainedConfig) -> int:
    """The smallest input side the vision model can use: its patch size (ViT-style encoders), else 1."""
    for candidate in (
        model_config,
        getattr(model_config, "encoder", None),
        getattr(model_config, "vision_config", None),
    ):
        patch = getattr(candidate, "patch_size", None)
        if isinstance(patch, int):
            return patch
        if isinstance(patch, list | tuple) and patch:
            return int(max(patch))
    return 1


def process_image(processor: BaseImageProcessor, image: Image.Image, min_side: int = 1) -> Prepared:
    """Run ``processor`` on one image: ``pixel_values`` ``[C, H, W]`` (and a ``pixel_mask`` that is not all ones).

    Also ``target_size``: the image's ``(height, width)``, which detection post-processing scales boxes to.
    """
    width, height = image.size
    try:
        processed = processor(images=image, return_tensors="np", input_data_format="channels_last")
    except Exception as exc:  # noqa: BLE001 - the processor's reason is reported on the row
        raise MediaError(f"the image processor cannot use this {width}x{height} image: {_reason(exc)}") from None
    arrays = {key: np.asarray(processed[key])[0] for key in INPUT_KEYS if key in processed}
    pixels = arrays["pixel_values"]
    if min(pixels.shape[-2:]) < min_side:
        raise MediaError(
            f"image of {width}x{height} pixels becomes {pixels.shape[-1]}x{pixels.shape[-2]} after the image "
            f"processor, smaller than the model's {min_side}-pixel patches"
        )
    mask = arrays.pop("pixel_mask", None)
    if mask is not None and not mask.all():
        arrays["pixel_mask"] = mask.astype(np.uint8)  # only a processor that pads to a fixed size gives one
    arrays["target_size"] = np.array([height, width], np.int32)
    return arrays


class ImagePreparer(Preparer):
    """Decodes one row's image and runs the model's image processor on it (the CPU stage of every image task)."""

    @override
    def load(self) -> None:
        self.processor = load_image_processor(self.config)
        self.min_side = patch_side(load_config(self.config))

    @override
    def prepare(self, value: Any) -> Prepared:
        limit = self.operator.options.get("max_pixels", MAX_PIXELS)
        return process_image(self.processor, load_image(value, max_pixels=limit), self.min_side)


def shape_batches(
    items: list[Prepared], *, value_budget: int = VALUE_BUDGET, max_rows: int = MAX_ROWS
) -> Iterator[list[int]]:
    """Yield indices of rows whose ``pixel_values`` have one shape, at most ``value_budget`` values per batch."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(tuple(item["pixel_values"].shape), []).append(index)
    for shape, indices in groups.items():
        rows = max(1, min(max_rows, value_budget // max(1, int(np.prod(shape)))))
        for start in range(0, len(indices), rows):
            yield indices[start : start + rows]


def accepts_pixel_mask(model: Any) -> bool:
    """Whether the model's forward takes a ``pixel_mask`` (DETR-style) rather than pixel values alone."""
    return "pixel_mask" in inspect.signature(model.forward).parameters


def model_inputs(
    items: list[Prepared], batch: list[int], model: Any, device: torch.device, *, pixel_mask: bool
) -> dict[str, torch.Tensor]:
    """Stack the rows ``batch`` of ``items`` into model inputs on ``device`` (pixel values in the model's dtype)."""
    pixels = np.stack([items[i]["pixel_values"] for i in batch])
    inputs = {"pixel_values": torch.from_numpy(pixels).to(device, dtype=model.dtype)}
    if pixel_mask:
        height, width = pixels.shape[-2:]
        masks = [items[i].get("pixel_mask", np.ones((height, width), np.uint8)) for i in batch]
        inputs["pixel_mask"] = torch.from_numpy(np.stack(masks).astype(np.int64)).to(device)
    return inputs


def _reason(error: BaseException) -> str:
    text = str(error).strip().rstrip(".")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
