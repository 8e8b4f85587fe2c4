"""Word error rate: word-level Levenshtein distance over the reference's word count, after light normalisation."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lower-cased words, punctuation dropped."""
    return _WORD.findall(text.lower())


def edits(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions + insertions + deletions that turn ``reference`` into ``hypothesis``."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i]
        for j, hyp in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus word error rate: total edits over total reference words."""
    pairs = [(words(r), words(h)) for r, h in zip(references, hypotheses, strict=True)]
    return sum(edits(r, h) for r, h in pairs) / max(1, sum(len(r) for r, _ in pairs))
