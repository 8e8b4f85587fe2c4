"""Chat input for ``text-generation``: messages whose placeholders are filled from each row's columns.

A step's ``messages`` are a system message, few-shot examples and a user template; ``{name}`` is the value of
column ``name`` of the row (``{transcript.text}`` reads a struct field), ``{{`` and ``}}`` are literal braces::

    messages:
      - {role: system, content: "Label the review's sentiment as positive, negative or neutral."}
      - {role: user, content: "The battery died in a day."}          # a few-shot example
      - {role: assistant, content: "negative"}
      - {role: user, content: "Title: {title}. {text}"}

The filled messages go through the model's chat template exactly as ``pipeline("text-generation")`` applies a chat:
with the generation prompt, or continuing the last message when it is the assistant's (a prefill). The step's
``input`` column must be one of the placeholders.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lakelabel.operators.core.base import OptionError

ROLES = ("system", "user", "assistant")

_SCALAR_TYPES = (str, int, float)


@dataclass(frozen=True)
class _Part:
    literal: str
    field: str | None


class MessageTemplate:
    """The ``messages`` option, parsed once: which columns it reads and how a row fills it.

    Example:
        >>> template = MessageTemplate([{"role": "user", "content": "Sentiment of: {text}"}], step="step 'x'")
        >>> template.fill({"text": "great"})
        [{'role': 'user', 'content': 'Sentiment of: great'}]
    """

    def __init__(self, messages: Any, *, step: str) -> None:
        if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
            raise OptionError(f"{step}: option messages must be a non-empty list of {{role, content}} mappings")
        self.roles: list[str] = []
        self.parts: list[list[_Part]] = []
        fields: dict[str, None] = {}
        for index, message in enumerate(messages):
            where = f"{step}: option messages[{index}]"
            if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
                raise OptionError(f"{where} must be a mapping with exactly the keys role and content")
            role, content = message["role"], message["content"]
            if role not in ROLES:
                raise OptionError(f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}")
            if not isinstance(content, str):
                raise OptionError(f"{where}.content must be a string")
            parts = _parse(content, where)
            fields.update((part.field, None) for part in parts if part.field is not None)
            self.roles.append(role)
            self.parts.append(parts)
        if "user" not in self.roles:
            raise OptionError(f"{step}: option messages needs a user message")
        self.fields: tuple[str, ...] = tuple(fields)
        """The columns the placeholders name, in order of first use."""
        self.prefill = self.roles[-1] == "assistant"
        """Whether the last message is the assistant's: the reply continues it (the pipeline's default)."""

    def fill(self, values: Mapping[str, str]) -> list[dict[str, str]]:
        """The messages of one row, each placeholder replaced by ``values[column]``."""
        return [
            {"role": role, "content": "".join(p.literal + (values[p.field] if p.field else "") for p in parts)}
            for role, parts in zip(self.roles, self.parts, strict=True)
        ]


def _parse(content: str, where: str) -> list[_Part]:
    try:
        pieces = list(string.Formatter().parse(content))
    except ValueError as exc:
        raise OptionError(f"{where}.content: {exc} (write literal braces as {{{{ and }}}})") from None
    parts = []
    for literal, field, spec, conversion in pieces:
        if field is not None and (not field.strip() or spec or conversion):
            raise OptionError(
                f"{where}.content: placeholder {{{field}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} must be a plain column name such as {{text}}"
            )
        parts.append(_Part(literal, field))
    return parts


def placeholder_value(value: Any, column: str) -> tuple[str | None, str | None]:
    """A column value as placeholder text: ``(text, None)``, or ``(None, reason)`` for a row error."""
    if value is None:
        return None, f"input column '{column}' is null"
    if isinstance(value, bool) or not isinstance(value, _SCALAR_TYPES):
        return None, f"input column '{column}' holds {type(value).__name__}, not text or a number"
    return str(value), None
