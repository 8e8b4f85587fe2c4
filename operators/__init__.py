"""Batch operators that annotate one column of an Arrow table with a Hugging Face model."""

from operators.core.base import Operator, OperatorConfig, OptionError, Resources
from operators.core.columns import ERROR_COLUMN, ERROR_TYPE
from operators.registry import TASKS, UnknownTaskError, operator_class

__all__ = [
    "ERROR_COLUMN",
    "ERROR_TYPE",
    "TASKS",
    "Operator",
    "OperatorConfig",
    "OptionError",
    "Resources",
    "UnknownTaskError",
    "operator_class",
]
