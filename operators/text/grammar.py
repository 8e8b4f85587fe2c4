"""Constrained decoding with xgrammar: a JSON Schema compiled once per worker, a logits processor per ``generate()``.

xgrammar (the ``llm`` extra) compiles the schema against the model's tokenizer into a grammar whose token masks it
computes in C++; ``xgrammar.contrib.hf.LogitsProcessor`` applies them in ``generate()`` and holds one matcher per
row of the batch, so a fresh processor is made for every ``generate()`` call. Output is compact JSON (no free
whitespace, which a weak model would otherwise emit without end). Why xgrammar rather than outlines or
lm-format-enforcer, with measurements: ``docs/llm-labeling.md`` (``python -m benchmarks.grammar_cost``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from lakelabel.operators.core.base import OptionError

EXTRA = "llm"


def require_xgrammar(step: str) -> None:
    """Raise ``OptionError`` naming the extra to install when xgrammar is missing (checked at construction)."""
    missing = [name for name in ("xgrammar", "jsonschema") if importlib.util.find_spec(name) is None]
    if missing:
        raise OptionError(
            f"{step}: response_format and choices need {' and '.join(missing)}: pip install 'lakelabel[{EXTRA}]'"
        )


class JsonGrammar:
    """A JSON Schema compiled for one model's tokenizer; ``processor()`` gives a fresh logits processor."""

    def __init__(
        self, schema: Mapping[str, Any], tokenizer: Any, *, vocab_size: int, stop_token_ids: list[int]
    ) -> None:
        import xgrammar as xgr  # noqa: PLC0415 - the llm extra, needed on model workers only

        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_token_ids)
        self._compiled = xgr.GrammarCompiler(info).compile_json_schema(dict(schema), any_whitespace=False)
        self._processor = xgr.contrib.hf.LogitsProcessor

    def processor(self) -> Any:
        """A logits processor for one ``generate()`` call (it keeps per-row state and cannot be reused)."""
        return self._processor(self._compiled)
