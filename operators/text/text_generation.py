"""``text-generation``: a continuation per prompt, as ``pipeline("text-generation")`` gives it.

``struct<generated_text: string>``, from a decoder-only model (``AutoModelForCausalLM``), following the
``transformers`` 5 pipeline: the continuation is the decoded new tokens, and with ``return_full_text`` (the
default) it follows the prompt as given. Batches are padded on the left (the pad token is the end-of-text token
when the tokenizer has none) with an attention mask. A prompt longer than the context window less
``max_new_tokens`` keeps its last tokens (the pipeline's ``handle_long_generation="hole"``); an empty prompt
generates from the model's start token, as the pipeline does.

Options, batching and decoding settings are those of ``lakelabel.operators.text.generation``.

Labeling with a chat model (``docs/llm-labeling.md``):

* ``messages``: a chat whose placeholders are filled from the row's columns (``lakelabel.operators.text.chat``),
  applied with the model's chat template as the pipeline applies a chat; the output is the assistant's reply alone (the
  pipeline's ``generated_text`` with ``return_full_text=False``). A model without a chat template is refused. A chat
  longer than the window less ``max_new_tokens`` has its longest filled-in values cut (instructions and examples stay).
  ``sanitize_control_tokens`` (default true) encodes control tokens inside the messages (``<|im_start|>`` in a
  row's text) as plain text, so a row cannot open a turn of its own; false gives the pipeline's default.
* ``response_format``: a JSON Schema; the output column is its Arrow type (``lakelabel.operators.text.structured``) and
  decoding is constrained by the schema's grammar (``lakelabel.operators.text.grammar``). A reply that does not parse
  or validate (cut off by ``max_new_tokens``) is a row error. ``choices: [a, b, c]``: the reply is one of them, a
  ``string`` column (``max_new_tokens`` defaults to the longest choice's length in bytes, quotes included, plus one).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pyarrow as pa
from transformers import AutoModelForCausalLM
from typing_extensions import override

from lakelabel.operators.core.base import ModelLoadError, OptionError, RowFailures
from lakelabel.operators.core.columns import column_values
from lakelabel.operators.core.loading import load_config, load_model, load_tokenizer
from lakelabel.operators.text.chat import MessageTemplate, placeholder_value
from lakelabel.operators.text.generation import Generation
from lakelabel.operators.text.generation_options import GENERATE_DEFAULTS
from lakelabel.operators.text.grammar import JsonGrammar, require_xgrammar
from lakelabel.operators.text.structured import ReplyReader, SchemaError, arrow_type, check_schema, grammar_schema

_FIT_TRIES = 8


class TextGeneration(Generation):
    """Continue each prompt: ``struct<generated_text: string>`` (a ``list`` with ``num_return_sequences`` > 1).

    Options: those of ``Summarization`` (``max_new_tokens`` default: the model's ``max_new_tokens``, else 256; it
    must leave room for a prompt in the context window), ``return_full_text`` (default true: the prompt followed by
    the continuation; false: the continuation alone), ``prefix`` (default: the model's ``config.prefix``, if any) and
    ``clean_up_tokenization_spaces`` (default null: the tokenizer's setting, as the pipeline does), ``max_length``
    (the older bound on prompt and new tokens together, as ``generate()`` counts it; instead of
    ``max_new_tokens``); for labeling with a chat model, ``messages``, ``response_format`` and ``choices`` (see the
    module's documentation).
    """

    task: ClassVar[str] = "text-generation"
    field: ClassVar[str] = "generated_text"
    encoder_decoder: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {
        **GENERATE_DEFAULTS,
        "return_full_text": True,
        "prefix": None,
        "clean_up_tokenization_spaces": None,
        "messages": None,
        "sanitize_control_tokens": True,
        "response_format": None,
        "choices": None,
        "max_length": None,
    }

    @override
    def validate_options(self) -> None:
        super().validate_options()
        step = self._step()
        for name in ("return_full_text", "sanitize_control_tokens"):
            if not isinstance(self.options[name], bool):
                raise OptionError(f"{step}: option {name} must be true or false")
        limit = self.options["max_length"]
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 2:
                raise OptionError(f"{step}: option max_length must be an integer of at least 2")
            if self.options["max_new_tokens"] is not None:
                raise OptionError(f"{step}: give max_length (prompt and new tokens) or max_new_tokens, not both")
        self.template: MessageTemplate | None = None
        if self.options["messages"] is not None:
            self.template = MessageTemplate(self.options["messages"], step=step)
            if self.config.input not in self.template.fields:
                raise OptionError(
                    f"{step}: option messages must use the step's input column as a placeholder"
                    f" ({{{self.config.input}}}); it uses {', '.join(self.template.fields) or 'none'}"
                )
        self.schema = self._schema(step)
        if self.schema is None:
            return
        require_xgrammar(step)
        try:
            self.typed = arrow_type(self.schema)
            self.grammar_schema = grammar_schema(self.schema)
        except SchemaError as exc:
            raise SchemaError(f"{step}: option {exc}") from None
        if self.options["num_return_sequences"] != 1 or (self.options["num_beams"] or 1) != 1:
            raise OptionError(
                f"{step}: response_format and choices take one greedy or sampled reply per row"
                " (num_beams and num_return_sequences must be 1)"
            )
        if self.options["max_length"] is not None:
            raise OptionError(f"{step}: response_format and choices take max_new_tokens, not max_length")
        if self.config.options.get("return_full_text") is True:
            raise OptionError(f"{step}: option return_full_text: a structured reply is the value alone")

    def _schema(self, step: str) -> dict[str, Any] | None:
        """The JSON Schema of ``response_format`` (or of ``choices``), checked; None for free text."""
        given, choices = self.options["response_format"], self.options["choices"]
        if given is not None and choices is not None:
            raise OptionError(f"{step}: give either option response_format or option choices, not both")
        if choices is not None:
            if (
                not isinstance(choices, list)
                or not choices
                or not all(isinstance(c, str) and c for c in choices)
                or len(set(choices)) != len(choices)
            ):
                raise OptionError(f"{step}: option choices must be a list of distinct non-empty strings")
            if "max_new_tokens" not in self.config.options:  # enough for the longest choice, one byte per token
                longest = max(len(json.dumps(choice, ensure_ascii=False).encode()) for choice in choices)
                self.options["max_new_tokens"] = longest + 1
            return {"enum": list(choices)}
        if given is None:
            return None
        if isinstance(given, dict) and given.get("type") == "json_schema":  # OpenAI's shape
            given = (given.get("json_schema") or {}).get("schema")
        if not isinstance(given, dict):
            raise SchemaError(f"{step}: option response_format must be a JSON Schema (a mapping)")
        check_schema(given, f"{step}: option response_format")
        return given

    @override
    def output_type(self) -> pa.DataType:
        return super().output_type() if self.schema is None else self.typed

    @override
    def columns(self) -> tuple[str, ...]:
        if self.template is None:
            return super().columns()
        return (self.config.input, *(field for field in self.template.fields if field != self.config.input))

    @override
    def row_values(self, batch: pa.Table) -> list[Any]:
        if self.template is None:
            return super().row_values(batch)
        values = {field: column_values(batch, field) for field in self.template.fields}
        return [{field: values[field][row] for field in values} for row in range(batch.num_rows)]

    @override
    def check(self, value: Any) -> str | None:
        if self.template is None:
            return super().check(value)
        for field, raw in value.items():
            text, reason = placeholder_value(raw, field)
            if reason is not None:
                return reason
            value[field] = text  # the row's dict (made by row_values) now holds the text its placeholder takes
        return None

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
        if self.template is not None and not self.tokenizer.chat_template:
            raise ModelLoadError(
                f"model '{self.config.model}' has no chat template (chat_template in its tokenizer_config.json):"
                " option messages needs a chat model; without messages the input column is a raw prompt"
            )
        self.model, self.device = load_model(AutoModelForCausalLM, self.config)
        self._settings(getattr(self.model.config, "prefix", None))
        self.grammar: JsonGrammar | None = None
        if self.schema is not None:
            self.grammar = JsonGrammar(
                self.grammar_schema,
                self.tokenizer,
                vocab_size=self.model.get_output_embeddings().weight.shape[0],  # the logits' width
                stop_token_ids=self._stops(),
            )
            self.reader = ReplyReader(self.schema)
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

    def _stops(self) -> list[int]:
        """The tokens that end a reply: the generation config's end-of-text ids, else the tokenizer's."""
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return [int(token) for token in (eos if isinstance(eos, list) else [eos])]

    def _chat_ids(self, values: dict[str, str]) -> list[int]:
        """One row's chat as token ids; longest filled-in values cut until it fits the window less new tokens."""
        assert self.template is not None
        values = dict(values)
        for _ in range(_FIT_TRIES):
            ids = self.tokenizer.apply_chat_template(
                self.template.fill(values),
                add_generation_prompt=not self.template.prefill,
                continue_final_message=self.template.prefill,
                sanitize_control_tokens=self.options["sanitize_control_tokens"],
                tokenize=True,
                return_dict=False,
            )
            over = len(ids) - self.keep if self.keep is not None else 0
            longest = max(values, key=lambda field: len(values[field]))
            if over <= 0 or not values[longest]:
                break
            tokens = self.tokenizer(values[longest], add_special_tokens=False)["input_ids"]
            values[longest] = self.tokenizer.decode(tokens[: max(0, len(tokens) - over)])
        if self.keep is not None and len(ids) > self.keep:
            ids = ids[-self.keep :]  # the template alone overflows: keep its end, as for a raw prompt
        return list(ids)

    @override
    def _chunk_settings(self) -> dict[str, Any]:
        return {} if self.grammar is None else {"logits_processor": [self.grammar.processor()]}

    def _annotate_structured(self, texts: list[Any]) -> pa.Array:
        """Replies decoded under the schema's grammar, read and validated; failed rows raise ``RowFailures``."""
        values: list[Any] = []
        reasons: dict[int, str] = {}
        for position, (reply,) in enumerate(self._generate(texts)):
            value, reason = self.reader.read(reply)
            if reason is None:
                try:
                    values.append(pa.array([value], self.typed))
                    continue
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                    reason = f"the reply's value has no {self.typed} form: {exc}"
            reasons[position] = reason
            values.append(pa.nulls(1, self.typed))
        array = pa.concat_arrays(values)
        if reasons:
            raise RowFailures(array, reasons)
        return array

    @override
    def _encode(self, texts: list[Any]) -> list[list[int]]:
        if self.template is not None:
            return [self._chat_ids(values) for values in texts]
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
    def annotate(self, texts: list[Any]) -> pa.Array:
        """Generate for each prompt; with ``max_length``, group the prompts by token length.

        ``max_length`` is the pipeline's older bound on prompt and new tokens together: prompts of one length run
        together, with ``max_new_tokens`` set to ``max_length`` less that length (at least 1, as ``generate()``).
        """
        if self.schema is not None:
            return self._annotate_structured(texts)
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
    def _finish(self, text: Any, generated: str) -> str:
        if self.template is not None or self.schema is not None or not self.options["return_full_text"]:
            return generated
        return text + generated
