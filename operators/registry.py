"""Task name to operator class. A new task is one module in ``operators/`` and one line here."""

from __future__ import annotations

from operators.base import Operator
from operators.feature_extraction import FeatureExtraction
from operators.text_classification import TextClassification
from operators.token_classification import TokenClassification
from operators.zero_shot import ZeroShotClassification

TASKS: dict[str, type[Operator]] = {
    operator.task: operator
    for operator in (TextClassification, TokenClassification, ZeroShotClassification, FeatureExtraction)
}


class UnknownTaskError(KeyError):
    """The step names a task no operator implements."""

    def __str__(self) -> str:
        return str(self.args[0])


def operator_class(task: str) -> type[Operator]:
    """The operator class for ``task``; an unknown task lists the known ones."""
    try:
        return TASKS[task]
    except KeyError:
        raise UnknownTaskError(f"unknown task '{task}'; known tasks: {', '.join(sorted(TASKS))}") from None
