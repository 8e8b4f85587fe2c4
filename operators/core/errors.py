"""The errors an operator raises while it is built or loaded, apart from the contract so that helpers can raise them."""

from __future__ import annotations

__all__ = ["ModelLoadError", "OptionError"]


class ModelLoadError(RuntimeError):
    """A model or tokenizer could not be loaded; the message names the model."""


class OptionError(ValueError):
    """A step's ``options`` hold an unknown key or a value the task cannot use."""
