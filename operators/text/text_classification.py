"""``text-classification``: a label and a score per text, as ``pipeline("text-classification")`` returns."""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
import torch
from transformers import AutoModelForSequenceClassification
from typing_extensions import override

from lakelabel.operators.core.base import Operator, OptionError
from lakelabel.operators.core.loading import load_model, load_tokenizer
from lakelabel.operators.core.ranking import FUNCTIONS, LABEL_SCORE, Ranking
from lakelabel.operators.core.text_batching import SORT_WINDOW, forward_rows


class TextClassification(Operator):
    """Classify each text with a sequence-classification model.

    Options (as the pipeline names them): ``top_k`` (default 1: one ``struct<label, score>``; an integer above 1
    or ``null`` for all labels: a ``list`` of them, best first), ``function_to_apply`` (``softmax``, ``sigmoid``
    or ``none``; default chosen from the model's config as the pipeline does), ``truncation`` (default true) and
    ``max_length`` (default: the tokenizer's maximum).
    """

    task: ClassVar[str] = "text-classification"
    batch_size: ClassVar[int] = SORT_WINDOW
    defaults: ClassVar[dict[str, Any]] = {
        "top_k": 1,
        "function_to_apply": None,
        "truncation": True,
        "max_length": None,
    }

    @override
    def validate_options(self) -> None:
        top_k = self.options["top_k"]
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise OptionError(f"step '{self.config.output}': option top_k must be a positive integer or null")
        function = self.options["function_to_apply"]
        if function is not None and str(function).lower() not in FUNCTIONS:
            raise OptionError(f"step '{self.config.output}': option function_to_apply must be softmax, sigmoid or none")

    @override
    def output_type(self) -> pa.DataType:
        return LABEL_SCORE if self.options["top_k"] == 1 else pa.list_(LABEL_SCORE)

    @override
    def load(self) -> None:
        self.tokenizer = load_tokenizer(self.config)
        self.model, self.device = load_model(AutoModelForSequenceClassification, self.config)
        self.ranking = Ranking.for_model(self.model.config, self.options)

    @override
    def annotate(self, texts: list[str]) -> pa.Array:
        encodings = self.tokenizer(texts, truncation=self.options["truncation"], max_length=self.options["max_length"])
        rows = forward_rows(
            self.tokenizer, encodings, lambda batch: self.model(**batch).logits, self.device, dtype=self.model.dtype
        )
        logits = torch.stack(rows).numpy()
        return self.ranking.best(logits) if self.options["top_k"] == 1 else self.ranking.ranked(logits)
