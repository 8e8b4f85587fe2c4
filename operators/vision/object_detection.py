"""``object-detection``: scored, labelled boxes per image, as ``pipeline("object-detection")`` returns them.

The CPU stage decodes each image and runs the model's image processor on it (a detection processor resizes keeping
the aspect ratio) and keeps the image's original ``(height, width)``. The model stage runs rows of one input shape
together — padding rows of other sizes into one batch would change a row's detections (see ``image_io``) — and
post-processes with the image processor's own ``post_process_object_detection``, scaling boxes to the original
size. Boxes are whole pixels, cut toward zero as the pipeline cuts them, and may reach outside the image as the
model predicts them.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pyarrow as pa
import torch
from typing_extensions import override

from lakelabel.operators.core.base import ModelLoadError, Operator, OptionError, Prepared, Preparer
from lakelabel.operators.core.loading import load_model
from lakelabel.operators.vision.image_io import (
    MAX_PIXELS,
    ImagePreparer,
    accepts_pixel_mask,
    load_image_processor,
    model_inputs,
    shape_batches,
)

BOX = pa.struct([("xmin", pa.int32()), ("ymin", pa.int32()), ("xmax", pa.int32()), ("ymax", pa.int32())])
DETECTION = pa.struct([("score", pa.float32()), ("label", pa.string()), ("box", BOX)])


class ObjectDetection(Operator):
    """Detect objects in each image, in the model's order of detections.

    Output: ``list<struct<score: float32, label: string, box: struct<xmin, ymin, xmax, ymax: int32>>>``.
    Options (as the pipeline names them): ``threshold`` (default 0.5): the score a detection needs, from 0 to 1.
    """

    task: ClassVar[str] = "object-detection"
    input_kind: ClassVar[str] = "image"
    defaults: ClassVar[dict[str, Any]] = {"threshold": 0.5, "max_pixels": MAX_PIXELS}

    @override
    def validate_options(self) -> None:
        threshold = self.options["threshold"]
        if (
            not isinstance(threshold, int | float)
            or isinstance(threshold, bool)
            or not math.isfinite(threshold)
            or not 0 <= threshold <= 1
        ):
            raise OptionError(f"step '{self.config.output}': option threshold must be a number from 0 to 1")

    @override
    def output_type(self) -> pa.DataType:
        return pa.list_(DETECTION)

    @override
    def preparer(self) -> Preparer | None:
        return ImagePreparer(self)

    @override
    def load(self) -> None:
        from transformers import AutoModelForObjectDetection  # noqa: PLC0415 - heavy

        self.processor = load_image_processor(self.config)
        if not hasattr(self.processor, "post_process_object_detection"):
            raise ModelLoadError(
                f"model '{self.config.model}': its image processor ({type(self.processor).__name__}) has no "
                "post_process_object_detection"
            )
        self.model, self.device = load_model(AutoModelForObjectDetection, self.config)
        self.labels = self.model.config.id2label
        self.pixel_mask = accepts_pixel_mask(self.model)

    @override
    def annotate(self, texts: list[Prepared]) -> pa.Array:
        detections: list[list[dict[str, Any]]] = [[] for _ in texts]
        threshold = float(self.options["threshold"])
        for batch in shape_batches(texts):
            inputs = model_inputs(texts, batch, self.model, self.device, pixel_mask=self.pixel_mask)
            with torch.inference_mode():
                outputs = self.model(**inputs)
            outputs = outputs.__class__(
                {key: value.float().cpu() if torch.is_tensor(value) else value for key, value in outputs.items()}
            )
            target_sizes = torch.tensor([texts[i]["target_size"].tolist() for i in batch], dtype=torch.int32)
            found = self.processor.post_process_object_detection(outputs, threshold, target_sizes)
            for index, result in zip(batch, found, strict=True):
                detections[index] = [
                    {"score": float(score), "label": self.labels[int(label)], "box": _box(box)}
                    for score, label, box in zip(result["scores"], result["labels"], result["boxes"], strict=True)
                ]
        return pa.array(detections, pa.list_(DETECTION))


def _box(box: torch.Tensor) -> dict[str, int]:
    xmin, ymin, xmax, ymax = box.int().tolist()
    return {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}
