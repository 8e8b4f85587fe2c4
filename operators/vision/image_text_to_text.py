"""``image-text-to-text``: a vision-language chat model's reply to an image and a prompt, as the pipeline gives it.

Each row is the chat ``pipeline("image-text-to-text")`` builds from an image and a prompt: one user message whose
content is the image and then the text, through the processor's chat template with the generation prompt added
(``apply_chat_template(..., add_generation_prompt=True, tokenize=True)``). The CPU stage decodes the image (as every
image task does), applies the template and runs the processor, once per row; the model stage pads the rows' token
ids on the left into batches of rows whose image arrays have one shape (LLaVA's fixed-size crops share a batch;
processors that keep the aspect ratio batch only equal sizes), calls ``generate()`` and decodes each row as the
pipeline's post-processing does: the reply is the decoded sequence less the decoded prompt.

Decoding is greedy unless the step says otherwise, and ``max_new_tokens`` is always bounded (the model's own bound,
else the pipeline's 256).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from typing_extensions import override

from lakelabel.operators.core.base import ModelLoadError, Operator, OptionError, Prepared, Preparer
from lakelabel.operators.core.columns import column_values
from lakelabel.operators.core.loading import load_model
from lakelabel.operators.vision.image_io import load_image

REPLY = pa.struct([("generated_text", pa.string())])
TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")
"""Processor outputs that are one value per token: padded on the left in a batch; every other array is stacked."""
DEFAULT_MAX_NEW_TOKENS = 256
"""The pipeline's own bound on new tokens when the model's generation config sets none."""
MAX_ROWS = 16

_GENERATE = ("num_beams", "do_sample", "temperature", "top_k", "top_p", "repetition_penalty")


class ImageTextToText(Operator):
    """Reply to each image and prompt: ``struct<generated_text: string>``.

    Options: ``prompt`` (one prompt for every row) or ``prompt_column`` (a column of prompts), exactly one;
    ``max_new_tokens`` (null: the model's ``max_new_tokens``, else 256); ``do_sample`` (false: greedy),
    ``num_beams``, ``temperature``, ``top_k``, ``top_p``, ``repetition_penalty`` (null: the model's settings);
    ``seed`` (0, set before each batch when sampling); ``return_full_text`` (false: the reply only; true: the whole
    decoded sequence, templated prompt included).
    """

    task: ClassVar[str] = "image-text-to-text"
    input_kind: ClassVar[str] = "image"
    defaults: ClassVar[dict[str, Any]] = {
        "prompt": None,
        "prompt_column": None,
        "max_new_tokens": None,
        "do_sample": False,
        "num_beams": None,
        "temperature": None,
        "top_k": None,
        "top_p": None,
        "repetition_penalty": None,
        "seed": 0,
        "return_full_text": False,
    }

    @override
    def validate_options(self) -> None:
        step = f"step '{self.config.output}'"
        options = self.options
        prompt, column = options["prompt"], options["prompt_column"]
        if (prompt is None) == (column is None):
            raise OptionError(f"{step}: give exactly one of the options prompt and prompt_column")
        if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
            raise OptionError(f"{step}: option prompt must be a non-empty string")
        if column is not None and (not isinstance(column, str) or not column):
            raise OptionError(f"{step}: option prompt_column must be a column name")
        for name in ("max_new_tokens", "num_beams"):
            if options[name] is not None and not _is_int(options[name], 1):
                raise OptionError(f"{step}: option {name} must be a positive integer or null")
        if options["top_k"] is not None and not _is_int(options["top_k"], 0):
            raise OptionError(f"{step}: option top_k must be a non-negative integer or null")
        for name in ("temperature", "top_p", "repetition_penalty"):
            value = options[name]
            if value is not None and (not _is_number(value) or value <= 0):
                raise OptionError(f"{step}: option {name} must be a positive number or null")
        for name in ("do_sample", "return_full_text"):
            if not isinstance(options[name], bool):
                raise OptionError(f"{step}: option {name} must be true or false")
        if not _is_int(options["seed"], 0):
            raise OptionError(f"{step}: option seed must be a non-negative integer")

    @override
    def output_type(self) -> pa.DataType:
        return REPLY

    @override
    def columns(self) -> tuple[str, ...]:
        column = self.options["prompt_column"]
        return (self.config.input,) if column is None else (self.config.input, column)

    @override
    def row_values(self, batch: pa.Table) -> list[Any]:
        images = column_values(batch, self.config.input)
        column = self.options["prompt_column"]
        prompts = [self.options["prompt"]] * len(images) if column is None else column_values(batch, column)
        return list(zip(images, prompts, strict=True))

    @override
    def check(self, value: tuple[Any, Any]) -> str | None:
        image, prompt = value
        reason = super().check(image)
        if reason is not None:
            return reason
        column = self.options["prompt_column"]
        if prompt is None:
            return f"prompt column '{column}' is null"
        if not isinstance(prompt, str):
            return f"prompt column '{column}' holds {type(prompt).__name__}, not a string"
        if not prompt.strip():
            return f"prompt column '{column}' is empty"
        return None

    @override
    def preparer(self) -> Preparer | None:
        return ChatPreparer(self)

    @override
    def load(self) -> None:
        from transformers import AutoModelForImageTextToText  # noqa: PLC0415 - heavy

        self.processor = load_processor(self.config)
        self.model, self.device = load_model(AutoModelForImageTextToText, self.config)
        tokenizer = self.processor.tokenizer
        generation_config = self.model.generation_config
        settings = {name: self.options[name] for name in _GENERATE if self.options[name] is not None}
        settings["max_new_tokens"] = (
            self.options["max_new_tokens"] or generation_config.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        )
        settings["pad_token_id"] = tokenizer.pad_token_id
        if tokenizer.pad_token_id is None:
            settings["pad_token_id"] = tokenizer.eos_token_id
        self.settings = settings
        eos = generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])

    @override
    def annotate(self, texts: list[Prepared]) -> pa.Array:
        replies: list[str] = [""] * len(texts)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, row in enumerate(texts):
            signature = tuple((key, row[key].shape[1:]) for key in sorted(row) if key not in TEXT_KEYS)
            groups.setdefault(signature, []).append(index)
        for indices in groups.values():
            for start in range(0, len(indices), MAX_ROWS):
                chunk = indices[start : start + MAX_ROWS]
                for index, reply in zip(chunk, self._generate([texts[i] for i in chunk]), strict=True):
                    replies[index] = reply
        return pa.StructArray.from_arrays([pa.array(replies, pa.string())], fields=list(REPLY))

    def _generate(self, rows: list[Prepared]) -> list[str]:
        inputs, pads = self._collate(rows)
        torch.manual_seed(self.options["seed"])
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, **self.settings).cpu()
        width = inputs["input_ids"].shape[1]
        replies = []
        for position, pad in enumerate(pads):
            prompt = sequences[position, pad:width]
            new = sequences[position, width:].tolist()
            ends = [i for i, token in enumerate(new) if token in self.eos_ids]
            new = new[: ends[0] + 1] if ends else new  # what follows the end token in a batch is padding
            replies.append(self._decode(prompt, torch.tensor(new, dtype=prompt.dtype)))
        return replies

    def _collate(self, rows: list[Prepared]) -> tuple[dict[str, torch.Tensor], list[int]]:
        """Left-pad the token arrays of ``rows`` into one batch, concatenate the rest; also each row's padding."""
        length = max(row["input_ids"].shape[-1] for row in rows)
        pads = [length - row["input_ids"].shape[-1] for row in rows]
        pad_id = self.settings["pad_token_id"]
        inputs: dict[str, torch.Tensor] = {}
        for key in rows[0]:
            if key in TEXT_KEYS:
                fill = pad_id if key == "input_ids" else 0
                arrays = [
                    np.pad(row[key], ((0, 0), (pad, 0)), constant_values=fill)
                    for row, pad in zip(rows, pads, strict=True)
                ]
                inputs[key] = torch.from_numpy(np.concatenate(arrays)).to(self.device)
            else:
                tensor = torch.from_numpy(np.concatenate([row[key] for row in rows]))
                inputs[key] = tensor.to(self.device, dtype=self.model.dtype if tensor.is_floating_point() else None)
        return inputs, pads

    def _decode(self, prompt: torch.Tensor, new: torch.Tensor) -> str:
        """The pipeline's post-processing: the decoded sequence, less the decoded prompt where it starts with it."""
        full, decoded_prompt = self.processor.post_process_image_text_to_text(
            [torch.cat([prompt, new]), prompt], skip_special_tokens=True
        )
        if self.options["return_full_text"]:
            return full
        found = full.find(decoded_prompt)
        return full[found + len(decoded_prompt) :] if 0 <= found <= 2 else full


class ChatPreparer(Preparer):
    """Decodes a row's image and runs the chat template and processor on it and the prompt (the CPU stage)."""

    @override
    def load(self) -> None:
        self.processor = load_processor(self.config)

    @override
    def prepare(self, value: tuple[Any, str]) -> Prepared:
        image, prompt = value
        messages = [
            {
                "role": "user",
                "content": [{"type": "image", "image": load_image(image)}, {"type": "text", "text": prompt}],
            }
        ]
        encoded = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="np"
        )
        return {key: np.asarray(array) for key, array in encoded.items()}


def load_processor(config: Any) -> Any:
    """The model's processor (image processor, tokenizer and chat template), refused without a chat template."""
    from transformers import AutoProcessor  # noqa: PLC0415 - heavy; only the workers need it

    try:
        processor = AutoProcessor.from_pretrained(
            config.model, revision=config.revision, trust_remote_code=config.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model '{config.model}': cannot load its processor: {exc}") from exc
    if getattr(processor, "chat_template", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ModelLoadError(
            f"model '{config.model}': image-text-to-text needs a processor with a tokenizer and a chat template"
        )
    return processor


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
