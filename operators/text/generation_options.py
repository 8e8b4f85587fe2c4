"""Options of the generated-text operators: their checks, and the ``generate()`` settings they resolve to.

An option left at null takes the model's own setting (its ``generation_config.json``; for summarization and
translation updated with ``config.task_specific_params`` of the task, as the 4.x pipelines did), and ``generate()``'s
default where the model sets none: greedy decoding (``num_beams`` 1, ``do_sample`` false). ``max_new_tokens`` is
always bounded: when the job leaves it out it is the model's ``max_new_tokens``, else (encoder-decoder models only)
its ``max_length`` less the decoder's start token, else ``DEFAULT_MAX_NEW_TOKENS``; an explicit null is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lakelabel.operators.core.base import OptionError

DEFAULT_MAX_NEW_TOKENS = 256
"""New tokens per output when neither the job nor the model bounds them: the pipelines' own default."""

GENERATE_DEFAULTS: dict[str, Any] = {
    "max_new_tokens": None,
    "min_new_tokens": None,
    "num_beams": None,
    "do_sample": None,
    "temperature": None,
    "top_k": None,
    "top_p": None,
    "repetition_penalty": None,
    "no_repeat_ngram_size": None,
    "length_penalty": None,
    "early_stopping": None,
    "num_return_sequences": 1,
    "seed": 0,
}
"""The ``generate()`` options every generated-text operator takes, and ``seed``."""

PASSED_TO_GENERATE = tuple(name for name in GENERATE_DEFAULTS if name not in {"max_new_tokens", "seed"})

_POSITIVE_INTS = ("num_beams",)
_NON_NEGATIVE_INTS = ("min_new_tokens", "top_k", "no_repeat_ngram_size")
_POSITIVE_NUMBERS = ("temperature", "repetition_penalty")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_generate_options(options: Mapping[str, Any], given: Mapping[str, Any], step: str) -> None:
    """Raise ``OptionError`` naming the first invalid option.

    Args:
        options: every option, defaults filled in.
        given: the options the job named (an explicit ``max_new_tokens: null`` is refused).
        step: ``step '<output>'``, for the message.
    """
    maximum = options["max_new_tokens"]
    if ("max_new_tokens" in given or maximum is not None) and (not _is_int(maximum) or maximum < 1):
        raise OptionError(
            f"{step}: option max_new_tokens must be a positive integer (leave it out for the model's default)"
        )
    minimum = options["min_new_tokens"]
    if _is_int(minimum) and maximum is not None and minimum > maximum:
        raise OptionError(f"{step}: option min_new_tokens must not exceed max_new_tokens")
    _check_numbers(options, step)
    if options["do_sample"] is not None and not isinstance(options["do_sample"], bool):
        raise OptionError(f"{step}: option do_sample must be true, false or null")
    if options["early_stopping"] not in {None, True, False, "never"}:
        raise OptionError(f"{step}: option early_stopping must be true, false, 'never' or null")
    sequences = options["num_return_sequences"]
    if not _is_int(sequences) or sequences < 1:
        raise OptionError(f"{step}: option num_return_sequences must be a positive integer")
    seed = options["seed"]
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise OptionError(f"{step}: option seed must be a non-negative integer")


def _check_numbers(options: Mapping[str, Any], step: str) -> None:
    for name in _POSITIVE_INTS:
        value = options[name]
        if value is not None and (not _is_int(value) or value < 1):
            raise OptionError(f"{step}: option {name} must be a positive integer or null")
    for name in _NON_NEGATIVE_INTS:
        value = options[name]
        if value is not None and (not _is_int(value) or value < 0):
            raise OptionError(f"{step}: option {name} must be a non-negative integer or null")
    for name in _POSITIVE_NUMBERS:
        value = options[name]
        if value is not None and (not _is_number(value) or value <= 0):
            raise OptionError(f"{step}: option {name} must be a positive number or null")
    top_p = options["top_p"]
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise OptionError(f"{step}: option top_p must be a number in (0, 1] or null")
    length_penalty = options["length_penalty"]
    if length_penalty is not None and not _is_number(length_penalty):
        raise OptionError(f"{step}: option length_penalty must be a number or null")


def check_optional(options: Mapping[str, Any], step: str, names: tuple[str, ...], kind: type) -> None:
    """Raise ``OptionError`` unless each option of ``names`` is null or of type ``kind``."""
    for name in names:
        value = options[name]
        if value is not None and not isinstance(value, kind):
            raise OptionError(f"{step}: option {name} must be a {kind.__name__} or null")


def generate_settings(
    options: Mapping[str, Any], generation_config: Any, *, encoder_decoder: bool, step: str
) -> dict[str, Any]:
    """The ``generate()`` keyword arguments: the options set, and a bounded ``max_new_tokens``.

    Args:
        options: the operator's options.
        generation_config: the model's ``GenerationConfig`` (task settings already applied).
        encoder_decoder: whether the model's ``max_length`` counts decoder tokens only (and so bounds new tokens).
        step: ``step '<output>'``, for the message.

    Returns:
        Keyword arguments for ``generate()``.
    """
    settings = {name: options[name] for name in PASSED_TO_GENERATE if options[name] is not None}
    settings["max_new_tokens"] = options["max_new_tokens"] or default_max_new_tokens(
        generation_config, encoder_decoder=encoder_decoder
    )
    if settings.get("min_new_tokens", 0) > settings["max_new_tokens"]:
        raise OptionError(
            f"{step}: option min_new_tokens ({settings['min_new_tokens']}) exceeds max_new_tokens"
            f" ({settings['max_new_tokens']}, the model's default)"
        )
    sampling = settings.get("do_sample", generation_config.do_sample) is True
    beams = settings.get("num_beams", generation_config.num_beams) or 1
    if not sampling and settings["num_return_sequences"] > beams:
        raise OptionError(
            f"{step}: option num_return_sequences ({settings['num_return_sequences']}) needs num_beams at least as"
            f" large (it is {beams}) or do_sample true"
        )
    return settings


def default_max_new_tokens(generation_config: Any, *, encoder_decoder: bool) -> int:
    """The model's bound on new tokens, else ``DEFAULT_MAX_NEW_TOKENS``."""
    if generation_config.max_new_tokens:
        return int(generation_config.max_new_tokens)
    if encoder_decoder and generation_config.max_length and generation_config.max_length > 1:
        return int(generation_config.max_length) - 1  # the decoder's start token counts in max_length
    return DEFAULT_MAX_NEW_TOKENS


def rows_per_output(settings: Mapping[str, Any], generation_config: Any) -> int:
    """How many sequences ``generate()`` carries per input row (beams or returned sequences)."""
    beams = settings.get("num_beams", generation_config.num_beams) or 1
    return max(int(beams), int(settings["num_return_sequences"]))
