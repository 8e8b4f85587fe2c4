"""Batch operators that annotate one column of an Arrow table with a Hugging Face model."""

from lakelabel.operators.core.base import ModelLoadError, Operator, OperatorConfig, OptionError, Resources
from lakelabel.operators.core.columns import ERROR_COLUMN, ERROR_TYPE
from lakelabel.operators.registry import ALIASES, TASKS, UnknownTaskError, canonical_task, default_model, operator_class

__all__ = [
    "ALIASES",
    "ERROR_COLUMN",
    "ERROR_TYPE",
    "TASKS",
    "ModelLoadError",
    "Operator",
    "OperatorConfig",
    "OptionError",
    "Resources",
    "UnknownTaskError",
    "canonical_task",
    "default_model",
    "operator_class",
]
