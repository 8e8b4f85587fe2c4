"""Reading a job spec's YAML fields, with errors that name the field (``input.uri``, ``steps[2].options``)."""

from __future__ import annotations

from typing import Any

__all__ = ["SpecError", "mapping", "number", "only", "string"]


class SpecError(ValueError):
    """The job spec is invalid; the message starts with the offending field."""


def mapping(value: Any, where: str) -> dict[str, Any]:
    """``value`` as a mapping, else an error naming ``where``."""
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def string(block: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    """``block[key]`` as a non-empty string, stripped (None when absent and not ``required``)."""
    value = block.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}.{key}: required, a non-empty string" if required else f"{where}.{key}: a string")
    return value.strip()


def only(block: dict[str, Any], allowed: set[str], where: str) -> None:
    """Refuse keys of ``block`` outside ``allowed``, naming them and the allowed ones."""
    unknown = sorted(set(block) - allowed)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def number(value: Any, where: str, *, integer: bool = False, minimum: float = 0) -> Any:
    """``value`` as a number (an integer when ``integer``) of at least ``minimum``."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise SpecError(f"{where}: must be {kind} >= {minimum}, got {value!r}")
    return value
