"""Task name to operator class. A new task is one module in ``operators/`` and one line here.

Classes are imported on first use, so a job pays only for the libraries its own tasks need.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from operators.core.base import Operator

TASKS: dict[str, str] = {
    "text-classification": "operators.text.text_classification:TextClassification",
    "token-classification": "operators.text.token_classification:TokenClassification",
    "zero-shot-classification": "operators.text.zero_shot:ZeroShotClassification",
    "feature-extraction": "operators.text.feature_extraction:FeatureExtraction",
    "summarization": "operators.text.generation:Summarization",
    "translation": "operators.text.generation:Translation",
    "text-generation": "operators.text.text_generation:TextGeneration",
    "question-answering": "operators.text.question_answering:QuestionAnswering",
    "fill-mask": "operators.text.fill_mask:FillMask",
    "image-classification": "operators.vision.image_classification:ImageClassification",
    "object-detection": "operators.vision.object_detection:ObjectDetection",
    "image-to-text": "operators.vision.image_to_text:ImageToText",
    "automatic-speech-recognition": "operators.audio.speech_recognition:SpeechRecognition",
    "audio-classification": "operators.audio.audio_classification:AudioClassification",
}
"""Every task lakelabel runs, named as ``transformers.pipeline()`` names it, with ``module:Class`` of its operator."""


class UnknownTaskError(KeyError):
    """The step names a task no operator implements."""

    def __str__(self) -> str:
        return str(self.args[0])


def operator_class(task: str) -> type[Operator]:
    """The operator class for ``task``; an unknown task lists the known ones."""
    try:
        module, _, name = TASKS[task].partition(":")
    except KeyError:
        raise UnknownTaskError(f"unknown task '{task}'; known tasks: {', '.join(sorted(TASKS))}") from None
    return getattr(import_module(module), name)
