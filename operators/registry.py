"""Task name to operator class. A new task is one module in ``operators/<room>/`` and one line here.

Classes are imported on first use, so a job pays only for the libraries its own tasks need. Tasks are named as
``transformers.pipeline()`` names them, and so are the aliases it accepts (``sentiment-analysis``, ``ner``,
``text-to-speech``). A step without a model gets the pipeline's default model and revision for its task
(``default_model``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakelabel.operators.core.base import Operator

TASKS: dict[str, str] = {
    "text-classification": "lakelabel.operators.text.text_classification:TextClassification",
    "token-classification": "lakelabel.operators.text.token_classification:TokenClassification",
    "zero-shot-classification": "lakelabel.operators.text.zero_shot:ZeroShotClassification",
    "feature-extraction": "lakelabel.operators.text.feature_extraction:FeatureExtraction",
    "summarization": "lakelabel.operators.text.generation:Summarization",
    "translation": "lakelabel.operators.text.generation:Translation",
    "text-generation": "lakelabel.operators.text.text_generation:TextGeneration",
    "question-answering": "lakelabel.operators.text.question_answering:QuestionAnswering",
    "fill-mask": "lakelabel.operators.text.fill_mask:FillMask",
    "image-classification": "lakelabel.operators.vision.image_classification:ImageClassification",
    "object-detection": "lakelabel.operators.vision.object_detection:ObjectDetection",
    "image-to-text": "lakelabel.operators.vision.image_to_text:ImageToText",
    "image-text-to-text": "lakelabel.operators.vision.image_text_to_text:ImageTextToText",
    "automatic-speech-recognition": "lakelabel.operators.audio.speech_recognition:SpeechRecognition",
    "audio-classification": "lakelabel.operators.audio.audio_classification:AudioClassification",
    "text-to-audio": "lakelabel.operators.speech_synthesis.text_to_speech:TextToSpeech",
}
"""Every task lakelabel runs, named as ``transformers.pipeline()`` names it, with ``module:Class`` of its operator."""

ALIASES: dict[str, str] = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "text-to-speech": "text-to-audio",
}
"""The other names ``pipeline()`` accepts for a task (``transformers.pipelines.TASK_ALIASES``)."""


class UnknownTaskError(KeyError):
    """The step names a task no operator implements, or one without a default model and no model is given."""

    def __str__(self) -> str:
        return str(self.args[0])


def canonical_task(task: str) -> str:
    """The task's own name: ``sentiment-analysis`` is ``text-classification``; other names are returned as given."""
    return ALIASES.get(task, task)


def operator_class(task: str) -> type[Operator]:
    """The operator class for ``task`` (or an alias of it); an unknown task lists the known ones."""
    try:
        module, _, name = TASKS[canonical_task(task)].partition(":")
    except KeyError:
        known = sorted({*TASKS, *(alias for alias, target in ALIASES.items() if target in TASKS)})
        raise UnknownTaskError(f"unknown task '{task}'; known tasks: {', '.join(known)}") from None
    return getattr(import_module(module), name)


def default_model(task: str) -> tuple[str, str]:
    """The model and revision ``pipeline(task)`` loads when it is given no model, as ``transformers`` defines them.

    Raises:
        UnknownTaskError: the task has no default model in the installed ``transformers`` (``summarization``,
            ``translation`` and ``question-answering`` have none in 5.x).
    """
    from transformers.pipelines import SUPPORTED_TASKS  # noqa: PLC0415 - heavy; only for a step without a model

    name = canonical_task(task)
    defaults = SUPPORTED_TASKS.get(name, {}).get("default", {})
    model = defaults.get("model")
    if model is None:
        raise UnknownTaskError(f"task '{task}' has no default model in transformers; name one in the step's model")
    repo, revision = model
    return repo, revision
