"""``feature-extraction``: one pooled sentence vector per text, as sentence-transformers computes it.

``pipeline("feature-extraction")`` returns every token's vector; a data lake wants one fixed-size vector per row.
This operator mean-pools the last hidden state over the attention mask (or takes the CLS vector) and, optionally,
L2-normalises it. For a sentence-transformers directory (``modules.json``) the defaults follow that model's own
pooling, normalisation and maximum sequence length, so MiniLM gives the vectors sentence-transformers gives.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from transformers import AutoModel
from typing_extensions import override

from lakelabel.operators.core.base import Operator, OperatorConfig, OptionError
from lakelabel.operators.core.loading import load_config, load_model, load_tokenizer, read_model_json
from lakelabel.operators.core.text_batching import SORT_WINDOW, forward_rows, mean_pool


def sentence_transformers_defaults(config: OperatorConfig) -> dict[str, Any]:
    """Pooling, normalisation and max length declared by a sentence-transformers model directory."""
    found: dict[str, Any] = {}
    modules = read_model_json(config, "modules.json") or []
    found["normalize"] = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
    for module in modules:
        if str(module.get("type", "")).endswith("Pooling"):
            pooling = read_model_json(config, f"{module.get('path', '1_Pooling')}/config.json") or {}
            if pooling.get("pooling_mode_cls_token"):
                found["pooling"] = "cls"
    bert_config = read_model_json(config, "sentence_bert_config.json") or {}
    if bert_config.get("max_seq_length"):
        found["max_length"] = int(bert_config["max_seq_length"])
    return found


class SentenceEncoder:
    """Texts to pooled vectors; shared by ``feature-extraction`` and similarity zero-shot labels."""

    def __init__(self, config: OperatorConfig, *, pooling: str, normalize: bool, max_length: int | None) -> None:
        self.tokenizer = load_tokenizer(config)
        self.model, self.device = load_model(AutoModel, config)
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length

    def encode(self, texts: list[str]) -> np.ndarray:
        """One float32 vector per text, in order."""
        encodings = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        rows = forward_rows(self.tokenizer, encodings, self._pool, self.device, dtype=self.model.dtype)
        vectors = torch.stack(rows)
        if self.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
        return vectors.numpy().astype(np.float32)

    def _pool(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.model(**batch).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0].float()
        return mean_pool(hidden, batch["attention_mask"])


class FeatureExtraction(Operator):
    """Embed each text as a fixed-size ``list<float32>`` vector.

    Options: ``pooling`` (``mean`` or ``cls``), ``normalize`` (L2), ``max_length``; each defaults to what a
    sentence-transformers model declares, else ``mean``, no normalisation and the tokenizer's maximum.
    """

    task: ClassVar[str] = "feature-extraction"
    batch_size: ClassVar[int] = SORT_WINDOW
    defaults: ClassVar[dict[str, Any]] = {"pooling": None, "normalize": None, "max_length": None}

    @override
    def validate_options(self) -> None:
        if self.options["pooling"] not in {None, "mean", "cls"}:
            raise OptionError(f"step '{self.config.output}': option pooling must be mean or cls")

    @override
    def output_type(self) -> pa.DataType:
        if not hasattr(self, "_dimension"):
            self._dimension = int(load_config(self.config).hidden_size)
        return pa.list_(pa.float32(), self._dimension)

    def resolved_options(self) -> dict[str, Any]:
        """Explicit options over the model's own sentence-transformers defaults over plain defaults."""
        declared = sentence_transformers_defaults(self.config)
        return {
            "pooling": self.options["pooling"] or declared.get("pooling", "mean"),
            "normalize": bool(
                declared.get("normalize") if self.options["normalize"] is None else self.options["normalize"]
            ),
            "max_length": self.options["max_length"] or declared.get("max_length"),
        }

    @override
    def load(self) -> None:
        self.encoder = SentenceEncoder(self.config, **self.resolved_options())
        self._dimension = int(self.encoder.model.config.hidden_size)

    @override
    def annotate(self, texts: list[str]) -> pa.Array:
        vectors = self.encoder.encode(texts)
        return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), self._dimension)
