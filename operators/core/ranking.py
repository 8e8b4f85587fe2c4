"""Ranked labels from classification logits, as the text-, image- and audio-classification pipelines return them.

``function_to_apply`` (``softmax``, ``sigmoid`` or ``none``; by default chosen from the model's config) turns each
row of logits into scores, and ``top_k`` keeps that many labels, best first, as ``struct<label, score>`` values.
The text and image pipelines score in numpy and sort by score (ties keep label order): `Ranking.ranked` and
`Ranking.best`. The audio pipeline scores in torch and takes ``Tensor.topk``: `Ranking.top`. Each operator uses
its own pipeline's arithmetic, so its scores and tie order are the pipeline's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lakelabel.operators.core.base import OptionError
from lakelabel.operators.core.columns import equal_lists

if TYPE_CHECKING:
    import torch

LABEL_SCORE = pa.struct([("label", pa.string()), ("score", pa.float32())])
FUNCTIONS = ("softmax", "sigmoid", "none")


def check_options(options: Mapping[str, Any], step: str, *, any_case: bool = True) -> None:
    """Refuse a ``top_k`` that is not a positive integer or null, or an unknown ``function_to_apply``.

    Args:
        options: The operator's options, ``top_k`` and ``function_to_apply`` among them.
        step: The step's output column, named in the error.
        any_case: Accept function names in any letter case, as the text and image pipelines do (the audio
            pipeline accepts only lowercase names).

    Raises:
        OptionError: Naming the step and the option.
    """
    top_k = options["top_k"]
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise OptionError(f"step '{step}': option top_k must be a positive integer or null")
    function = options["function_to_apply"]
    if function is not None and (str(function).lower() if any_case else function) not in FUNCTIONS:
        raise OptionError(f"step '{step}': option function_to_apply must be one of {', '.join(FUNCTIONS)}")


def default_function(model_config: Any, *, one_label_sigmoid: bool = True) -> str:
    """The pipelines' default ``function_to_apply`` for a classification head.

    Args:
        model_config: The model's config (``problem_type`` and ``num_labels`` are read).
        one_label_sigmoid: Use sigmoid for a head of one label, as the text and image pipelines do (the audio
            pipeline goes by ``problem_type`` only).

    Returns:
        ``none`` for regression, ``sigmoid`` for multi-label classification, otherwise ``softmax``.
    """
    if model_config.problem_type == "regression":
        return "none"
    if model_config.problem_type == "multi_label_classification" or (
        one_label_sigmoid and model_config.num_labels == 1
    ):
        return "sigmoid"
    return "softmax"


def apply_function(logits: np.ndarray, function: str) -> np.ndarray:
    """The text and image pipelines' numpy softmax, sigmoid or identity over the last axis."""
    if function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    if function == "softmax":
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return logits


def label_scores(labels: np.ndarray, scores: np.ndarray) -> pa.StructArray:
    """A ``struct<label: string, score: float32>`` array from equal-length label names and scores."""
    return pa.StructArray.from_arrays(
        [pa.array(labels, pa.string()), pa.array(np.asarray(scores, np.float32), pa.float32())],
        fields=list(LABEL_SCORE),
    )


@dataclass(frozen=True)
class Ranking:
    """How one model's logits become ranked labels.

    Attributes:
        labels: The label names in id order (a numpy object array).
        function: ``softmax``, ``sigmoid`` or ``none``.
        keep: How many labels each row keeps (``top_k`` capped at the number of labels; all for null).
    """

    labels: np.ndarray
    function: str
    keep: int

    @classmethod
    def for_model(cls, model_config: Any, options: Mapping[str, Any], *, one_label_sigmoid: bool = True) -> Ranking:
        """The ranking that ``options`` (``top_k``, ``function_to_apply``) ask of a model with ``model_config``.

        Args:
            model_config: The model's config (``id2label``, ``num_labels``, ``problem_type``).
            options: Checked options (see `check_options`); function names are matched in lowercase.
            one_label_sigmoid: See `default_function`.

        Returns:
            The model's labels, the function to apply and the number of labels to keep.
        """
        num_labels = model_config.num_labels
        labels = np.asarray([model_config.id2label[i] for i in range(num_labels)], dtype=object)
        top_k = options["top_k"]
        function = options["function_to_apply"]
        return cls(
            labels=labels,
            function=(
                str(function).lower()
                if function is not None
                else default_function(model_config, one_label_sigmoid=one_label_sigmoid)
            ),
            keep=num_labels if top_k is None else min(top_k, num_labels),
        )

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Float32 scores for float32 ``logits`` of shape (rows, labels), as the text and image pipelines compute."""
        return apply_function(logits, self.function).astype(np.float32)

    def best(self, logits: np.ndarray) -> pa.StructArray:
        """The best label of each row: ``struct<label, score>``, as ``pipeline("text-classification")`` by default."""
        scores = self.scores(logits)
        best = scores.argmax(axis=-1)
        return label_scores(self.labels[best], scores[np.arange(len(best)), best])

    def ranked(self, logits: np.ndarray) -> pa.ListArray:
        """The ``keep`` best labels of each row, best first, equal scores in label order (a stable sort)."""
        scores = self.scores(logits)
        order = np.argsort(-scores, axis=-1, kind="stable")[:, : self.keep]
        flat = label_scores(self.labels[order].ravel(), np.take_along_axis(scores, order, axis=-1).ravel())
        return equal_lists(flat, self.keep)

    def top(self, logits: torch.Tensor) -> pa.ListArray:
        """The ``keep`` best labels of each row of CPU float32 ``logits``, scored and ranked as the audio pipeline.

        Softmax and sigmoid are torch's, and the order is ``Tensor.topk``'s.
        """
        if self.function == "softmax":
            logits = logits.softmax(-1)
        elif self.function == "sigmoid":
            logits = logits.sigmoid()
        scores, ids = logits.topk(self.keep)
        return equal_lists(label_scores(self.labels[ids.numpy()].ravel(), scores.numpy().ravel()), self.keep)
