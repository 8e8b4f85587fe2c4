"""``text-classification``: a label and a score per text, as ``pipeline("text-classification")`` returns."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from transformers import AutoModelForSequenceClassification
from typing_extensions import override

from operators.base import Operator, OptionError, equal_lists
from operators.loading import load_model, load_tokenizer
from operators.text_batching import forward_rows

LABEL_SCORE = pa.struct([("label", pa.string()), ("score", pa.float32())])


def _scores(logits: np.ndarray, function: str) -> np.ndarray:
    if function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    if function == "softmax":
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return logits


def default_function(config: Any) -> str:
    """The pipeline's default post-processing for a classification head."""
    if config.problem_type == "regression":
        return "none"
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    return "softmax"


class TextClassification(Operator):
    """Classify each text with a sequence-classification model.

    Options (as the pipeline names them): ``top_k`` (default 1: one ``struct<label, score>``; an integer above 1
    or ``null`` for all labels: a ``list`` of them, best first), ``function_to_apply`` (``softmax``, ``sigmoid``
    or ``none``; default chosen from the model's config as the pipeline does), ``truncation`` (default true) and
    ``max_length`` (default: the tokenizer's maximum).
    """

    task: ClassVar[str] = "text-classification"
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
        if function is not None and str(function).lower() not in {"softmax", "sigmoid", "none"}:
            raise OptionError(f"step '{self.config.output}': option function_to_apply must be softmax, sigmoid or none")

    @override
    def output_type(self) -> pa.DataType:
        return LABEL_SCORE if self.options["top_k"] == 1 else pa.list_(LABEL_SCORE)

    @override
    def load(self) -> None:
        self.tokenizer = load_tokenizer(self.config)
        self.model, self.device = load_model(AutoModelForSequenceClassification, self.config)
        model_config = self.model.config
        self.labels = [model_config.id2label[i] for i in range(model_config.num_labels)]
        function = self.options["function_to_apply"]
        self.function = str(function).lower() if function is not None else default_function(model_config)

    @override
    def annotate(self, texts: list[str]) -> pa.Array:
        encodings = self.tokenizer(texts, truncation=self.options["truncation"], max_length=self.options["max_length"])
        rows = forward_rows(self.tokenizer, encodings, lambda batch: self.model(**batch).logits, self.device)
        scores = _scores(torch.stack(rows).numpy(), self.function).astype(np.float32)
        labels = np.asarray(self.labels, dtype=object)
        top_k = self.options["top_k"]
        if top_k == 1:
            best = scores.argmax(axis=-1)
            return pa.StructArray.from_arrays(
                [pa.array(labels[best], pa.string()), pa.array(scores[np.arange(len(best)), best])],
                fields=list(LABEL_SCORE),
            )
        keep = scores.shape[1] if top_k is None else min(top_k, scores.shape[1])
        order = np.argsort(-scores, axis=-1, kind="stable")[:, :keep]
        flat = pa.StructArray.from_arrays(
            [
                pa.array(labels[order].ravel(), pa.string()),
                pa.array(np.take_along_axis(scores, order, axis=-1).ravel()),
            ],
            fields=list(LABEL_SCORE),
        )
        return equal_lists(flat, keep)
