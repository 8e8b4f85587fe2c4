"""Task name to operator class. A new task is one module in ``operators/`` and one line here.

Classes are imported on first use, so a job pays only for the libraries its own tasks need.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from operators.base import Operator

TASKS: dict[str, str] = {
    "text-classification": "operators.text_classification:TextClassification",
    "token-classification": "operators.token_classification:TokenClassification",
    "zero-shot-classification": "operators.zero_shot:ZeroShotClassification",
    "feature-extraction": "operators.feature_extraction:FeatureExtraction",
    "summarization": "operators.generation:Summarization",
    "translation": "operators.generation:Translation",
    "text-generation": "operators.text_generation:TextGeneration",
    "question-answering": "operators.question_answering:QuestionAnswering",
    "fill-mask": "operators.fill_mask:FillMask",
    "image-classification": "operators.image_classification:ImageClassification",
    "object-detection": "operators.object_detection:ObjectDetection",
    "image-to-text": "operators.image_to_text:ImageToText",
    "automatic-speech-recognition": "operators.speech_recognition:SpeechRecognition",
    "audio-classification": "operators.audio_classification:AudioClassification",
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
