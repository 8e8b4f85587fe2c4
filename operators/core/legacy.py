"""Option names older ``transformers`` pipelines took, mapped to the names lakelabel uses, with their meaning.

Course material and older code write ``pipeline("ner", grouped_entities=True)`` or
``pipeline("text-classification", return_all_scores=True)``; the 4.x pipelines turned these into
``aggregation_strategy="simple"`` and ``top_k=None``, and 5.x refuses them. A step may use either name: the old one
is translated here, before the operator checks its options, so the output is what the 4.x pipeline gave. Setting an
old name and the new one together is refused, as it is ambiguous.

Legacy names per task: ``token-classification``: ``grouped_entities`` and ``ignore_subwords``;
``text-classification``: ``return_all_scores``; ``summarization`` and ``translation``: ``max_length`` (decoder
tokens, the start token included, so ``max_new_tokens`` is one less). ``text-generation`` takes ``max_length``
(prompt and new tokens together) as an option of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lakelabel.operators.core.errors import OptionError

Translation = Callable[[dict[str, Any], str], dict[str, Any]]


def _flag(options: Mapping[str, Any], name: str, step: str) -> bool | None:
    value = options.get(name)
    if value is not None and not isinstance(value, bool):
        raise OptionError(f"{step}: option {name} must be true or false")
    return value


def _replace(options: dict[str, Any], old: tuple[str, ...], new: str, value: Any, step: str) -> dict[str, Any]:
    if new in options:
        raise OptionError(f"{step}: option {' / '.join(old)} is the older name of {new}; set only {new}")
    rest = {key: item for key, item in options.items() if key not in old}
    return {**rest, new: value}


def _entities(options: dict[str, Any], step: str) -> dict[str, Any]:
    """4.x: ``grouped_entities`` and ``ignore_subwords`` -> ``first``; ``grouped_entities`` alone -> ``simple``."""
    grouped = _flag(options, "grouped_entities", step)
    subwords = _flag(options, "ignore_subwords", step)
    if "grouped_entities" not in options and "ignore_subwords" not in options:
        return options
    strategy = ("first" if subwords else "simple") if grouped else "none"
    return _replace(options, ("grouped_entities", "ignore_subwords"), "aggregation_strategy", strategy, step)


def _all_scores(options: dict[str, Any], step: str) -> dict[str, Any]:
    """4.x: ``return_all_scores=True`` -> ``top_k=None`` (every label), ``False`` -> ``top_k=1``."""
    if "return_all_scores" not in options:
        return options
    every = _flag(options, "return_all_scores", step)
    return _replace(options, ("return_all_scores",), "top_k", None if every else 1, step)


def _decoder_length(options: dict[str, Any], step: str) -> dict[str, Any]:
    """``max_length`` of an encoder-decoder ``generate()`` counts the decoder's start token: one more than new."""
    if "max_length" not in options:
        return options
    length = options["max_length"]
    if not isinstance(length, int) or isinstance(length, bool) or length < 2:
        raise OptionError(f"{step}: option max_length must be an integer of at least 2")
    return _replace(options, ("max_length",), "max_new_tokens", length - 1, step)


LEGACY: dict[str, Translation] = {
    "token-classification": _entities,
    "text-classification": _all_scores,
    "summarization": _decoder_length,
    "translation": _decoder_length,
}
"""Per task, the function that rewrites a step's options from the older pipeline names."""


def translate(task: str, options: Mapping[str, Any], step: str) -> dict[str, Any]:
    """``options`` with the older pipelines' names of ``task`` replaced by the current ones (same meaning)."""
    rewrite = LEGACY.get(task)
    return dict(options) if rewrite is None else rewrite(dict(options), step)
