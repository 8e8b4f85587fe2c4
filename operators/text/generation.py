"""``summarization`` and ``translation``: generated text per row, and the generating base ``text-generation`` shares.

``transformers`` 5 removed the summarization, translation and text2text-generation pipelines; these operators keep
them as batch operators on the model classes, with the 4.x pipelines' output fields and behaviour:

* ``summarization`` (``struct<summary_text: string>``) and ``translation`` (``struct<translation_text: string>``)
  run an encoder-decoder model (``AutoModelForSeq2SeqLM``). As in 4.x, the input is the model's prefix followed by
  the text (T5's ``"summarize: "``, from ``config.task_specific_params`` of the task, else ``config.prefix``), the
  task's ``task_specific_params`` update the model's generation settings, and outputs are decoded with
  ``skip_special_tokens=True`` and, by default, without cleaning up tokenization spaces. Unlike 4.x, which did not
  truncate, an input longer than the encoder's window (the tokenizer's ``model_max_length``, else the config's
  ``max_position_embeddings``) is truncated to it. An empty text is summarised like any other (the model sees its
  special tokens, or the prefix); a text that gives no tokens at all gets a row error.

With ``num_return_sequences`` above 1 the output is a ``list`` of those structs, best first for beam search.
Decoding settings are in ``lakelabel.operators.text.generation_options``: greedy unless the model's generation settings
or the job say otherwise, ``max_new_tokens`` always bounded. Rows are tokenised once, sorted by length and cut into
batches by a token budget; padding is masked, so a row's greedy output does not depend on the batch it ran in.
Sampling (``do_sample``) is seeded with ``seed`` before each batch: a job run twice gives the same texts.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import pyarrow as pa
import torch
from transformers import AutoModelForSeq2SeqLM
from typing_extensions import override

from lakelabel.operators.core.base import ModelLoadError, Operator, OptionError
from lakelabel.operators.core.columns import equal_lists
from lakelabel.operators.core.loading import load_model, load_tokenizer
from lakelabel.operators.core.text_batching import length_sorted_chunks
from lakelabel.operators.text.generation_options import (
    GENERATE_DEFAULTS,
    check_generate_options,
    check_optional,
    generate_settings,
    rows_per_output,
)

TOKEN_BUDGET = 16384
"""Tokens per ``generate()`` batch: rows x (longest input + ``max_new_tokens``) x beams or returned sequences."""

MAX_ROWS = 64

_UNBOUNDED = 1_000_000
_WINDOW_KEYS = ("max_position_embeddings", "n_positions")


def context_window(tokenizer: Any, model_config: Any) -> int | None:
    """The model's input window: the tokenizer's ``model_max_length`` when set, else the config's, else None."""
    length = tokenizer.model_max_length
    if isinstance(length, int) and 0 < length < _UNBOUNDED:
        return length
    for key in _WINDOW_KEYS:
        value = getattr(model_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class Generation(Operator):
    """Generated text per row: tokenise, batch by length, ``generate()``, decode, restore row order."""

    field: ClassVar[str]
    encoder_decoder: ClassVar[bool]

    @override
    def validate_options(self) -> None:
        step = self._step()
        check_generate_options(self.options, self.config.options, step)
        check_optional(self.options, step, ("prefix",), str)
        check_optional(self.options, step, ("clean_up_tokenization_spaces",), bool)

    @override
    def output_type(self) -> pa.DataType:
        struct = pa.struct([(self.field, pa.string())])
        return struct if self.options["num_return_sequences"] == 1 else pa.list_(struct)

    def _step(self) -> str:
        return f"step '{self.config.output}'"

    def _settings(self, model_prefix: str | None) -> None:
        """Resolve the prefix and the ``generate()`` settings once the model is loaded."""
        prefix = self.options["prefix"]
        self.prefix: str = prefix if prefix is not None else (model_prefix or "")
        generation_config = self.model.generation_config
        self.settings = generate_settings(
            self.options, generation_config, encoder_decoder=self.encoder_decoder, step=self._step()
        )
        self.settings["pad_token_id"] = self.tokenizer.pad_token_id
        self.width = rows_per_output(self.settings, generation_config)
        self.window = context_window(self.tokenizer, self.model.config)

    def _pad_with_eos(self) -> None:
        if self.tokenizer.pad_token is None:
            if self.tokenizer.eos_token is None:
                raise ModelLoadError(f"model '{self.config.model}': its tokenizer has neither a pad nor an eos token")
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @abstractmethod
    def _encode(self, texts: list[Any]) -> list[list[int]]:
        """Token ids per text, ready to pad into a batch."""

    def _finish(self, text: str, generated: str) -> str:
        """The output text of a row from its input and its decoded new tokens."""
        del text
        return generated

    def _chunk_settings(self) -> dict[str, Any]:
        """Extra ``generate()`` arguments made fresh for each batch (e.g. a grammar's logits processor)."""
        return {}

    @override
    def annotate(self, texts: list[str]) -> pa.Array:
        per_row = self.settings["num_return_sequences"]
        outputs = self._generate(texts)
        struct = pa.StructArray.from_arrays(
            [pa.array([text for row in outputs for text in row], pa.string())], names=[self.field]
        )
        return struct if per_row == 1 else equal_lists(struct, per_row)

    def _generate(self, texts: list[Any]) -> list[list[str]]:
        """Each row's outputs (``num_return_sequences`` of them), in row order."""
        ids = self._encode(texts)
        per_row = self.settings["num_return_sequences"]
        outputs: list[list[str]] = [[] for _ in texts]
        extra = self.settings["max_new_tokens"]
        costs = [(len(row) + extra) * self.width for row in ids]
        for chunk in length_sorted_chunks(costs, token_budget=TOKEN_BUDGET, max_rows=MAX_ROWS):
            padded = self.tokenizer.pad(
                [{"input_ids": ids[i]} for i in chunk], return_attention_mask=True, return_tensors="pt"
            )
            inputs = {key: padded[key].to(self.device) for key in ("input_ids", "attention_mask")}
            torch.manual_seed(self.options["seed"])
            with torch.inference_mode():
                sequences = self.model.generate(**inputs, **self.settings, **self._chunk_settings())
            start = 0 if self.encoder_decoder else inputs["input_ids"].shape[1]
            decoded = self.tokenizer.batch_decode(
                sequences[:, start:].cpu(),
                skip_special_tokens=True,
                clean_up_tokenization_spaces=self.options["clean_up_tokenization_spaces"],
            )
            for position, row in enumerate(chunk):
                found = decoded[position * per_row : (position + 1) * per_row]
                outputs[row] = [self._finish(texts[row], text) for text in found]
        return outputs


class _Seq2Seq(Generation):
    """An encoder-decoder model: the prefixed text, truncated to the encoder's window, in; the decoded output out."""

    encoder_decoder: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {
        **GENERATE_DEFAULTS,
        "prefix": None,
        "clean_up_tokenization_spaces": False,
    }

    def _task_key(self, params: dict[str, Any]) -> str | None:
        """The key of this task in the model's ``task_specific_params``."""
        return self.task if self.task in params else None

    @override
    def load(self) -> None:
        self.tokenizer = load_tokenizer(self.config)
        self._pad_with_eos()
        self.model, self.device = load_model(AutoModelForSeq2SeqLM, self.config)
        all_params = getattr(self.model.config, "task_specific_params", None) or {}
        self.task_key = self._task_key(all_params)
        params = dict(all_params[self.task_key]) if self.task_key else {}
        prefix = params.pop("prefix", None)
        if params:  # the 4.x pipelines applied the task's settings on top of the model's generation config
            self.model.generation_config.update(**params)
        self._settings(prefix if prefix is not None else getattr(self.model.config, "prefix", None))

    def _tokenize(self, texts: list[str]) -> Any:
        return self.tokenizer(
            [self.prefix + text for text in texts], truncation=self.window is not None, max_length=self.window
        )

    @override
    def _encode(self, texts: list[str]) -> list[list[int]]:
        return list(self._tokenize(texts)["input_ids"])

    @override
    def refuse(self, text: str) -> str | None:
        if text.strip() or not self._ready or self._encode([text])[0]:
            return None
        return "the text is empty and the model's tokenizer gives no tokens for it"


class Summarization(_Seq2Seq):
    """Summarise each text: ``struct<summary_text: string>`` (a ``list`` of them with ``num_return_sequences`` > 1).

    Options: ``max_new_tokens`` (default: the model's bound, else 256), ``min_new_tokens``, ``num_beams``,
    ``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``, ``no_repeat_ngram_size``,
    ``length_penalty``, ``early_stopping`` (default null: the model's setting), ``num_return_sequences`` (default 1),
    ``seed`` (default 0), ``prefix`` (default: the model's) and ``clean_up_tokenization_spaces`` (default false).
    """

    task: ClassVar[str] = "summarization"
    field: ClassVar[str] = "summary_text"


class Translation(_Seq2Seq):
    """Translate each text: ``struct<translation_text: string>`` (a ``list`` with ``num_return_sequences`` > 1).

    Options: those of ``Summarization``, and ``src_lang`` / ``tgt_lang``. For a multilingual tokenizer (mBART,
    M2M100, NLLB, ...) they set the source language's special tokens and force the target language's token first,
    as 4.x's ``TranslationPipeline`` did, and both are then required. For a model with T5-style
    ``task_specific_params`` they pick ``translation_<src>_to_<tgt>`` (its prefix and settings); without them, the
    model's first ``translation_*`` entry is used, as ``pipeline("translation")`` did.
    """

    task: ClassVar[str] = "translation"
    field: ClassVar[str] = "translation_text"
    defaults: ClassVar[dict[str, Any]] = {**_Seq2Seq.defaults, "src_lang": None, "tgt_lang": None}

    @override
    def validate_options(self) -> None:
        super().validate_options()
        check_optional(self.options, self._step(), ("src_lang", "tgt_lang"), str)

    @override
    def _task_key(self, params: dict[str, Any]) -> str | None:
        source, target = self.options["src_lang"], self.options["tgt_lang"]
        if source is not None and target is not None:
            key = f"translation_{source}_to_{target}"
            return key if key in params else None
        if source is None and target is None:
            return next((key for key in params if key.startswith("translation")), None)
        return None

    @override
    def load(self) -> None:
        super().load()
        self.multilingual = callable(getattr(self.tokenizer, "_build_translation_inputs", None))
        if not self.multilingual:
            return
        source, target = self.options["src_lang"], self.options["tgt_lang"]
        parts = self.task_key.split("_") if self.task_key and source is None and target is None else []
        if len(parts) == 4:  # translation_xx_to_yy: the 4.x pipeline took the languages from the task's name
            source, target = parts[1], parts[3]
        self.languages = (source, target)
        if source is None or target is None:
            raise OptionError(
                f"{self._step()}: model '{self.config.model}' is multilingual: options src_lang and tgt_lang are"
                " required"
            )
        try:
            forced = self._tokenize(["probe"])["forced_bos_token_id"]
        except (ValueError, KeyError) as exc:
            raise OptionError(f"{self._step()}: options src_lang/tgt_lang ({source!r}, {target!r}): {exc}") from exc
        if forced is None or forced == self.tokenizer.unk_token_id:
            raise OptionError(f"{self._step()}: option tgt_lang {target!r} is not a language of this tokenizer")
        self.settings["forced_bos_token_id"] = int(forced)

    @override
    def _tokenize(self, texts: list[str]) -> Any:
        if not getattr(self, "multilingual", False):
            return super()._tokenize(texts)
        source, target = self.languages
        return self.tokenizer._build_translation_inputs(  # what 4.x's TranslationPipeline called
            [self.prefix + text for text in texts],
            return_tensors=None,
            src_lang=source,
            tgt_lang=target,
            truncation=self.window is not None,
            max_length=self.window,
        )
