"""``fill-mask``: the likeliest tokens for the one mask token of each text, as ``pipeline("fill-mask")`` gives them.

Texts are tokenized once, sorted by length and run in micro-batches; only the logits at each row's mask token
leave the model, and the softmax, ``targets`` and ``top_k`` selection, the filled-in sequence and the token string
are the pipeline's own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from transformers import AutoModelForMaskedLM
from typing_extensions import override

from lakelabel.operators.core.base import Operator, OptionError
from lakelabel.operators.core.columns import equal_lists
from lakelabel.operators.core.loading import load_model, load_tokenizer
from lakelabel.operators.core.text_batching import TOKEN_BUDGET, length_sorted_chunks

if TYPE_CHECKING:
    from collections.abc import Sequence

    from transformers import BatchEncoding

log = logging.getLogger("lakelabel")

FILLED = pa.struct(
    [("score", pa.float32()), ("token", pa.int32()), ("token_str", pa.string()), ("sequence", pa.string())]
)

_UNBOUNDED = 1_000_000
_LOGITS_BUDGET = 1 << 26
"""Logits (tokens x vocabulary) one micro-batch may produce: the model scores every position, not only masks."""


class FillMask(Operator):
    """Fill each text's mask token: ``list<struct<score, token, token_str, sequence>>``, best first.

    Options, as the pipeline names them: ``top_k`` (default 5) and ``targets`` (a word or a list of words to
    score instead of the whole vocabulary; a word the vocabulary lacks is replaced by its first token, as the
    pipeline does, and ``top_k`` is capped at the number of targets).

    Each row must hold exactly one mask token (``tokenizer.mask_token``, e.g. ``[MASK]``); a row without one gets
    the pipeline's error ("No mask_token ([MASK]) found on the input"), and a row with several gets a row error
    too (the pipeline returned a nested list, one per mask, scored independently). A text longer than the model's
    window is truncated to it, as the pipeline does with ``tokenizer_kwargs={"truncation": True}`` (without it
    the pipeline fails on such texts); a mask beyond the window counts as missing.
    """

    task: ClassVar[str] = "fill-mask"
    defaults: ClassVar[dict[str, Any]] = {"top_k": 5, "targets": None}

    @override
    def validate_options(self) -> None:
        step = f"step '{self.config.output}'"
        top_k = self.options["top_k"]
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise OptionError(f"{step}: option top_k must be a positive integer")
        targets = self.options["targets"]
        if targets is None:
            return
        words = [targets] if isinstance(targets, str) else targets
        if not isinstance(words, list | tuple) or not words or not all(isinstance(w, str) and w for w in words):
            raise OptionError(f"{step}: option targets must be a non-empty word or a non-empty list of them")

    @override
    def output_type(self) -> pa.DataType:
        return pa.list_(FILLED)

    @override
    def load(self) -> None:
        self.tokenizer = load_tokenizer(self.config)
        if self.tokenizer.mask_token_id is None:
            raise OptionError(f"model '{self.config.model}': fill-mask needs a tokenizer with a mask_token")
        self.model, self.device = load_model(AutoModelForMaskedLM, self.config)
        window = self.tokenizer.model_max_length
        if not window or window >= _UNBOUNDED:
            window = int(getattr(self.model.config, "max_position_embeddings", 512))
        self.window = int(window)
        vocabulary = int(getattr(self.model.config, "vocab_size", None) or len(self.tokenizer))
        self.target_ids = None if self.options["targets"] is None else self._target_ids(self.options["targets"])
        choices = vocabulary if self.target_ids is None else len(self.target_ids)
        if self.target_ids is None and self.options["top_k"] > vocabulary:
            raise OptionError(
                f"step '{self.config.output}': option top_k ({self.options['top_k']}) exceeds the vocabulary "
                f"({vocabulary}) of model '{self.config.model}'"
            )
        self.top_k = min(self.options["top_k"], choices)
        self.token_budget = max(1, min(TOKEN_BUDGET, _LOGITS_BUDGET // vocabulary))
        self._token_strs: dict[int, str] = {}

    def _target_ids(self, targets: str | Sequence[str]) -> torch.Tensor:
        """Vocabulary ids of ``targets`` as the pipeline finds them (a missing word: its first token)."""
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in [targets] if isinstance(targets, str) else targets:
            id_ = vocab.get(target)
            if id_ is None:
                pieces = self.tokenizer(
                    target,
                    add_special_tokens=False,
                    return_attention_mask=False,
                    return_token_type_ids=False,
                    max_length=1,
                    truncation=True,
                )["input_ids"]
                if not pieces:
                    log.warning("step '%s': target %r is not in the vocabulary; ignored", self.config.output, target)
                    continue
                id_ = pieces[0]
                log.warning(
                    "step '%s': target %r is not in the vocabulary; using %r",
                    self.config.output,
                    target,
                    self.tokenizer.convert_ids_to_tokens(id_),
                )
            ids.append(id_)
        ids = list(set(ids))  # the pipeline's order, which decides between targets scored alike
        if not ids:
            raise OptionError(f"step '{self.config.output}': option targets: no target is a token of the model")
        return torch.tensor(np.array(ids))

    def _encode(self, texts: list[str]) -> BatchEncoding:
        return self.tokenizer(texts, truncation=True, max_length=self.window)

    @override
    def refuse(self, text: str) -> str | None:
        (ids,) = self._encode([text])["input_ids"]
        masks = ids.count(self.tokenizer.mask_token_id)
        if masks == 1:
            return None
        mask = self.tokenizer.mask_token
        if masks == 0:
            beyond = " (the text is truncated to the model's window)" if mask in text else ""
            return f"No mask_token ({mask}) found on the input{beyond}"
        return f"{masks} mask tokens ({mask}) found on the input; fill-mask fills exactly one per row"

    def _mask_probabilities(self, encodings: BatchEncoding) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k probabilities and token ids at each row's mask, in row order (CPU tensors)."""
        keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in encodings]
        lengths = [len(ids) for ids in encodings["input_ids"]]
        values = torch.empty(len(lengths), self.top_k)
        tokens = torch.empty(len(lengths), self.top_k, dtype=torch.long)
        target_ids = None if self.target_ids is None else self.target_ids.to(self.device)
        for chunk in length_sorted_chunks(lengths, token_budget=self.token_budget):
            padded = self.tokenizer.pad([{key: encodings[key][i] for key in keys} for i in chunk], return_tensors="pt")
            inputs = {key: padded[key].to(self.device, non_blocking=True) for key in keys}
            rows, positions = (inputs["input_ids"] == self.tokenizer.mask_token_id).nonzero(as_tuple=True)
            if len(rows) != len(chunk):
                raise ValueError(f"expected one mask token per row, found {len(rows)} in {len(chunk)} rows")
            with torch.inference_mode():
                logits = self.model(**inputs).logits[rows, positions]
                probs = logits.float().softmax(dim=-1)
                if target_ids is not None:
                    probs = probs[..., target_ids]
                top = probs.topk(self.top_k)
            order = torch.tensor(chunk)
            values[order] = top.values.cpu()
            picked = top.indices.cpu() if target_ids is None else self.target_ids[top.indices.cpu()]
            tokens[order] = picked
        return values, tokens

    def _token_str(self, token: int) -> str:
        text = self._token_strs.get(token)
        if text is None:
            text = self._token_strs[token] = self.tokenizer.decode([token])
        return text

    @override
    def annotate(self, texts: list[str]) -> pa.Array:
        encodings = self._encode(texts)
        values, tokens = self._mask_probabilities(encodings)
        mask_id, pad_id = self.tokenizer.mask_token_id, self.tokenizer.pad_token_id
        filled: list[list[int]] = []
        for row_ids, row_tokens in zip(encodings["input_ids"], tokens.tolist(), strict=True):
            ids = np.asarray(row_ids)
            position = int(np.flatnonzero(ids == mask_id)[0])
            for token in row_tokens:
                candidate = ids.copy()
                candidate[position] = token
                filled.append(candidate[candidate != pad_id].tolist())
        sequences = self.tokenizer.batch_decode(filled, skip_special_tokens=True)
        flat_tokens = tokens.flatten().tolist()
        flat = pa.StructArray.from_arrays(
            [
                pa.array(values.flatten().numpy(), pa.float32()),
                pa.array(flat_tokens, pa.int32()),
                pa.array([self._token_str(token) for token in flat_tokens], pa.string()),
                pa.array(sequences, pa.string()),
            ],
            fields=list(FILLED),
        )
        return equal_lists(flat, self.top_k)
