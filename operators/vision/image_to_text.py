"""``image-to-text``: a caption per image from a captioning model, decoded as the 4.x pipeline decoded it.

``transformers`` 5 folded this task into ``image-text-to-text`` (chat models that need a prompt); a captioning model
generates from the image alone: a ``VisionEncoderDecoderModel`` (ViT-GPT2, TrOCR, ...), BLIP's
``BlipForConditionalGeneration`` or ``GitForCausalLM``. The CPU stage decodes each image and runs the model's image
processor on it; the model stage stacks rows of one input shape, calls ``generate()`` on the batch and decodes each
sequence with ``skip_special_tokens=True``. Generation is greedy by default and always bounded by
``max_new_tokens``; other generation settings come from the model's ``generation_config`` unless an option names
them.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pyarrow as pa
import torch
from typing_extensions import override

from lakelabel.operators.core.base import ModelLoadError, Operator, OptionError, Prepared, Preparer
from lakelabel.operators.core.loading import load_config, load_model, load_tokenizer
from lakelabel.operators.vision.image_io import ImagePreparer, model_inputs, shape_batches

CAPTION = pa.struct([("generated_text", pa.string())])

CAPTIONING_MODELS = ("vision-encoder-decoder", "blip", "git")
"""Model types that caption from pixel values alone; chat models that need a prompt are refused."""

_POSITIVE_INTS = ("max_new_tokens", "num_beams")
_OPTIONAL_NON_NEGATIVE_INTS = ("min_new_tokens", "no_repeat_ngram_size", "top_k")
_OPTIONAL_FLOATS = ("temperature", "top_p", "repetition_penalty", "length_penalty")


class ImageToText(Operator):
    """Caption each image: ``struct<generated_text: string>``.

    Options (``generate()`` keyword arguments): ``max_new_tokens`` (default 30; a positive integer, never null),
    ``num_beams`` (default 1) and ``do_sample`` (default false): greedy decoding unless set otherwise;
    ``min_new_tokens``, ``no_repeat_ngram_size``, ``repetition_penalty``, ``length_penalty``, and with
    ``do_sample`` ``temperature``, ``top_k`` and ``top_p`` (default null: the model's ``generation_config``).
    """

    task: ClassVar[str] = "image-to-text"
    input_kind: ClassVar[str] = "image"
    defaults: ClassVar[dict[str, Any]] = {
        "max_new_tokens": 30,
        "num_beams": 1,
        "do_sample": False,
        "min_new_tokens": None,
        "no_repeat_ngram_size": None,
        "repetition_penalty": None,
        "length_penalty": None,
        "temperature": None,
        "top_k": None,
        "top_p": None,
    }

    @override
    def validate_options(self) -> None:
        step = f"step '{self.config.output}'"
        for name in _POSITIVE_INTS:
            value = self.options[name]
            if not _is_int(value) or value < 1:
                raise OptionError(f"{step}: option {name} must be a positive integer")
        for name in _OPTIONAL_NON_NEGATIVE_INTS:
            value = self.options[name]
            if value is not None and (not _is_int(value) or value < 0):
                raise OptionError(f"{step}: option {name} must be a non-negative integer or null")
        for name in _OPTIONAL_FLOATS:
            value = self.options[name]
            if value is not None and (
                not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0
            ):
                raise OptionError(f"{step}: option {name} must be a positive number or null")
        if not isinstance(self.options["do_sample"], bool):
            raise OptionError(f"{step}: option do_sample must be true or false")
        minimum = self.options["min_new_tokens"]
        if minimum is not None and minimum > self.options["max_new_tokens"]:
            raise OptionError(f"{step}: option min_new_tokens must not exceed max_new_tokens")

    @override
    def output_type(self) -> pa.DataType:
        return CAPTION

    @override
    def preparer(self) -> Preparer | None:
        return ImagePreparer(self)

    @override
    def load(self) -> None:
        from transformers import AutoModelForImageTextToText  # noqa: PLC0415 - heavy

        model_type = load_config(self.config).model_type
        if model_type not in CAPTIONING_MODELS:
            raise ModelLoadError(
                f"model '{self.config.model}': image-to-text runs captioning models that generate from the image "
                f"alone ({', '.join(CAPTIONING_MODELS)}); '{model_type}' is not one"
            )
        self.tokenizer = load_tokenizer(self.config)
        self.model, self.device = load_model(AutoModelForImageTextToText, self.config)
        self.generate_kwargs = {key: value for key, value in self.options.items() if value is not None}

    @override
    def annotate(self, texts: list[Prepared]) -> pa.Array:
        captions: list[str] = [""] * len(texts)
        for batch in shape_batches(texts):
            inputs = model_inputs(texts, batch, self.model, self.device, pixel_mask=False)
            with torch.inference_mode():
                sequences = self.model.generate(**inputs, **self.generate_kwargs)
            decoded = self.tokenizer.batch_decode(sequences.cpu(), skip_special_tokens=True)
            for index, text in zip(batch, decoded, strict=True):
                captions[index] = text
        return pa.StructArray.from_arrays([pa.array(captions, pa.string())], fields=list(CAPTION))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
