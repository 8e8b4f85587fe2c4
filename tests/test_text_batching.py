"""Length-sorted micro-batches: every row once, in ascending length, within the token budget."""

from __future__ import annotations

import random

import pytest

from lakelabel.operators.core.text_batching import length_sorted_chunks


@pytest.mark.parametrize(("budget", "max_rows"), [(64, 256), (1024, 256), (1024, 8)])
def test_chunks_cover_every_row_once_in_ascending_length_within_the_budget(budget: int, max_rows: int) -> None:
    rng = random.Random(budget + max_rows)
    lengths = [rng.randint(3, 300) for _ in range(500)]
    chunks = list(length_sorted_chunks(lengths, token_budget=budget, max_rows=max_rows))
    flat = [row for chunk in chunks for row in chunk]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[row] for row in flat] == sorted(lengths)
    for chunk in chunks:
        longest = max(lengths[row] for row in chunk)
        assert len(chunk) <= max_rows
        assert len(chunk) == 1 or len(chunk) * longest <= budget  # a row longer than the budget goes alone
