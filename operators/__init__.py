"""Batch operators that annotate one column of an Arrow table with a Hugging Face model."""

from operators.base import Operator, OperatorConfig, OptionError, Resources
from operators.columns import ERROR_COLUMN, ERROR_TYPE
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
