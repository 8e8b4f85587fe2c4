"""Batch operators that annotate one column of an Arrow table with a Hugging Face model."""

from lakelabel.operators.core.base import ModelLoadError, Operator, OperatorConfig, OptionError, Resources
from lakelabel.operators.core.columns import ERROR_COLUMN, ERROR_TYPE
from lakelabel.operators.registry import (
    ALIASES,
    TASKS,
    OperatorImportError,
    UnknownTaskError,
    canonical_task,
    default_model,
    lookup,
    operator_class,
    resolve,
)

__all__ = [
    "ALIASES",
    "ERROR_COLUMN",
    "ERROR_TYPE",
    "TASKS",
    "ModelLoadError",
    "Operator",
    "OperatorConfig",
    "OperatorImportError",
    "OptionError",
    "Resources",
    "UnknownTaskError",
    "canonical_task",
    "default_model",
    "lookup",
    "operator_class",
    "resolve",
]
