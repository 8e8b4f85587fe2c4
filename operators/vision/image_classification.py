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

from lakelabel.operators.core.base import Operator, Prepared, Preparer
from lakelabel.operators.core.loading import load_model
from lakelabel.operators.core.ranking import LABEL_SCORE, Ranking, check_options
from lakelabel.operators.vision.image_io import MAX_PIXELS, ImagePreparer, model_inputs, shape_batches


class ImageClassification(Operator):
    """Label each image: ``list<struct<label: string, score: float32>>``, best first.

    Options (as the pipeline names them): ``top_k`` (default 5, capped at the number of labels; ``null`` for all
    labels) and ``function_to_apply`` (``softmax``, ``sigmoid`` or ``none``; by default sigmoid for a
    multi-label or single-label head, none for regression, else softmax, as the pipeline chooses).
    """

    task: ClassVar[str] = "image-classification"
    input_kind: ClassVar[str] = "image"
    defaults: ClassVar[dict[str, Any]] = {"top_k": 5, "function_to_apply": None, "max_pixels": MAX_PIXELS}

    @override
    def validate_options(self) -> None:
        check_options(self.options, self.config.output)

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
        self.ranking = Ranking.for_model(self.model.config, self.options)

    @override
    def annotate(self, texts: list[Prepared]) -> pa.Array:
        logits = np.empty((len(texts), len(self.ranking.labels)), np.float32)
        for batch in shape_batches(texts):
            inputs = model_inputs(texts, batch, self.model, self.device, pixel_mask=False)
            with torch.inference_mode():
                logits[batch] = self.model(**inputs).logits.float().cpu().numpy()
        return self.ranking.ranked(logits)
