"""``text-generation``: a continuation per prompt, as ``pipeline("text-generation")`` gives it.

``struct<generated_text: string>``, from a decoder-only model (``AutoModelForCausalLM``), following the
``transformers`` 5 pipeline: the continuation is the decoded new tokens, and with ``return_full_text`` (the
default) it follows the prompt as given. Batches are padded on the left (the pad token is the end-of-text token
when the tokenizer has none) with an attention mask. A prompt longer than the context window less
``max_new_tokens`` keeps its last tokens (the pipeline's ``handle_long_generation="hole"``); an empty prompt
generates from the model's start token, as the pipeline does.

Options, batching and decoding settings are those of ``operators.text.generation``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
from transformers import AutoModelForCausalLM
from typing_extensions import override

from operators.core.base import ModelLoadError, OptionError
from operators.core.loading import load_config, load_model, load_tokenizer
from operators.text.generation import Generation
from operators.text.generation_options import GENERATE_DEFAULTS


class TextGeneration(Generation):
    """Continue each prompt: ``struct<generated_text: string>`` (a ``list`` with ``num_return_sequences`` > 1).

    Options: those of ``Summarization`` (``max_new_tokens`` default: the model's ``max_new_tokens``, else 256; it
    must leave room for a prompt in the context window), ``return_full_text`` (default true: the prompt followed by
    the continuation; false: the continuation alone), ``prefix`` (default: the model's ``config.prefix``, if any) and
    ``clean_up_tokenization_spaces`` (default null: the tokenizer's setting, as the pipeline does) and
    ``max_length`` (the older bound on prompt and new tokens together, as ``generate()`` counts it; instead of
    ``max_new_tokens``).
    """

    task: ClassVar[str] = "text-generation"
    field: ClassVar[str] = "generated_text"
    encoder_decoder: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {
        **GENERATE_DEFAULTS,
        "return_full_text": True,
        "prefix": None,
        "clean_up_tokenization_spaces": None,
        "max_length": None,
    }

    @override
    def validate_options(self) -> None:
        super().validate_options()
        if not isinstance(self.options["return_full_text"], bool):
            raise OptionError(f"{self._step()}: option return_full_text must be true or false")
        limit = self.options["max_length"]
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 2:
                raise OptionError(f"{self._step()}: option max_length must be an integer of at least 2")
            if self.options["max_new_tokens"] is not None:
                raise OptionError(
                    f"{self._step()}: give max_length (prompt and new tokens) or max_new_tokens, not both"
                )

    @override
    def load(self) -> None:
        if load_config(self.config).is_encoder_decoder:
            raise ModelLoadError(
                f"model '{self.config.model}' is an encoder-decoder model: text-generation runs decoder-only models"
                " (use summarization or translation)"
            )
        self.tokenizer = load_tokenizer(self.config)
        self.tokenizer.padding_side = "left"
        self._pad_with_eos()
        self.model, self.device = load_model(AutoModelForCausalLM, self.config)
        self._settings(getattr(self.model.config, "prefix", None))
        if self.options["max_length"] is not None:
            self.settings["max_new_tokens"] = 1  # room a prompt must leave; annotate() sets it per prompt length
        self.keep: int | None = None
        if self.window is not None:
            self.keep = self.window - self.settings["max_new_tokens"]
            if self.keep < 1:
                raise OptionError(
                    f"{self._step()}: option max_new_tokens ({self.settings['max_new_tokens']}) leaves no room for"
                    f" a prompt in the {self.window}-token context window of model '{self.config.model}'"
                )

    @override
    def _encode(self, texts: list[str]) -> list[list[int]]:
        start = self.tokenizer.bos_token_id
        rows = []
        for ids in self.tokenizer([self.prefix + text for text in texts])["input_ids"]:
            if not ids and start is not None:
                ids = [start]  # noqa: PLW2901 - an empty prompt generates from the start token, as the pipeline does
            if self.keep is not None and len(ids) > self.keep:
                ids = ids[-self.keep :]  # noqa: PLW2901 - the pipeline's "hole": keep the prompt's end
            rows.append(list(ids))
        return rows

    @override
    def annotate(self, texts: list[str]) -> pa.Array:
        """Generate for each prompt; with ``max_length``, group the prompts by token length.

        ``max_length`` is the pipeline's older bound on prompt and new tokens together: prompts of one length run
        together, with ``max_new_tokens`` set to ``max_length`` less that length (at least 1, as ``generate()``).
        """
        limit = self.options["max_length"]
        if limit is None:
            return super().annotate(texts)
        groups: dict[int, list[int]] = {}
        for row, ids in enumerate(self._encode(texts)):
            groups.setdefault(len(ids), []).append(row)
        parts, order = [], []
        for length, rows in sorted(groups.items()):
            self.settings["max_new_tokens"] = max(1, limit - length)
            parts.append(super().annotate([texts[row] for row in rows]))
            order.extend(rows)
        positions = sorted(range(len(order)), key=order.__getitem__)
        return pa.concat_arrays(parts).take(pa.array(positions))

    @override
    def refuse(self, text: str) -> str | None:
        limit = self.options["max_length"]
        if limit is not None and self._ready and len(self._encode([text])[0]) >= limit:
            return f"the prompt has {len(self._encode([text])[0])} tokens: max_length {limit} leaves none to generate"
        if text.strip() or not self._ready or self.tokenizer.bos_token_id is not None:
            return None
        if self.tokenizer(self.prefix + text)["input_ids"]:
            return None
        return "the prompt is empty and the model has no start token to generate from"

    @override
    def _finish(self, text: str, generated: str) -> str:
        return text + generated if self.options["return_full_text"] else generated
