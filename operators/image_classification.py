"""``image-classification``: ranked labels per image, as ``pipeline("image-classification")`` returns them.

The CPU stage decodes each image (RGB, EXIF orientation applied) and runs the model's image processor on it, as
the pipeline does per input. The model stage stacks rows of one input shape (a classifier's processor resizes every
image to one size) and post-processes the logits as the pipeline does.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from typing_extensions import override

from operators.base import Operator, OptionError, Prepared, Preparer, equal_lists
from operators.image_io import ImagePreparer, model_inputs, shape_batches
from operators.loading import load_model

LABEL_SCORE = pa.struct([("label", pa.string()), ("score", pa.float32())])
FUNCTIONS = ("softmax", "sigmoid", "none")


def default_function(model_config: Any) -> str:
    """The pipeline's default post-processing: by ``problem_type``, and sigmoid for a single-label head."""
    if model_config.problem_type == "regression":
        return "none"
    if model_config.problem_type == "multi_label_classification" or model_config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def apply_function(logits: np.ndarray, function: str) -> np.ndarray:
    """The pipeline's softmax, sigmoid or identity over the last axis, in float32."""
    if function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    if function == "softmax":
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return logits


class ImageClassification(Operator):
    """Label each image: ``list<struct<label: string, score: float32>>``, best first.

    Options (as the pipeline names them): ``top_k`` (default 5, capped at the number of labels; ``null`` for all
    labels) and ``function_to_apply`` (``softmax``, ``sigmoid`` or ``none``; by default sigmoid for a
    multi-label or single-label head, none for regression, else softmax, as the pipeline chooses).
    """

    task: ClassVar[str] = "image-classification"
    input_kind: ClassVar[str] = "image"
    defaults: ClassVar[dict[str, Any]] = {"top_k": 5, "function_to_apply": None}

    @override
    def validate_options(self) -> None:
        top_k = self.options["top_k"]
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise OptionError(f"step '{self.config.output}': option top_k must be a positive integer or null")
        function = self.options["function_to_apply"]
        if function is not None and str(function).lower() not in FUNCTIONS:
            raise OptionError(
                f"step '{self.config.output}': option function_to_apply must be one of {', '.join(FUNCTIONS)}"
            )

    @override
    def output_type(self) -> pa.DataType:
        return pa.list_(LABEL_SCORE)

    @override
    def preparer(self) -> Preparer | None:
        return ImagePreparer(self)

    @override
    def load(self) -> None:
        from transformers import AutoModelForImageClassification  # noqa: PLC0415 - heavy

        self.model, self.device = load_model(AutoModelForImageClassification, self.config)
        model_config = self.model.config
        self.labels = np.asarray([model_config.id2label[i] for i in range(model_config.num_labels)], dtype=object)
        top_k = self.options["top_k"]
        self.top_k = model_config.num_labels if top_k is None else min(top_k, model_config.num_labels)
        function = self.options["function_to_apply"]
        self.function = str(function).lower() if function is not None else default_function(model_config)

    @override
    def annotate(self, texts: list[Prepared]) -> pa.Array:
        logits = np.empty((len(texts), len(self.labels)), np.float32)
        for batch in shape_batches(texts):
            inputs = model_inputs(texts, batch, self.model, self.device, pixel_mask=False)
            with torch.inference_mode():
                logits[batch] = self.model(**inputs).logits.float().cpu().numpy()
        scores = apply_function(logits, self.function).astype(np.float32)
        order = np.argsort(-scores, axis=-1, kind="stable")[:, : self.top_k]
        flat = pa.StructArray.from_arrays(
            [
                pa.array(self.labels[order].ravel(), pa.string()),
                pa.array(np.take_along_axis(scores, order, axis=-1).ravel(), pa.float32()),
            ],
            fields=list(LABEL_SCORE),
        )
        return equal_lists(flat, self.top_k)
