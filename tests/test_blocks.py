"""Batch sizes for steps without ``batch_size``: capped by the job's size, fitted to its shards."""

from __future__ import annotations

import pytest

from lakelabel.jobs.blocks import BATCHES_PER_ACTOR, MIN_BATCH_ROWS, batch_rows
from lakelabel.jobs.spec import parse_spec


def step(actors: int = 2, batch_size: int | None = None):
    spec = parse_spec(
        {
            "name": "b",
            "input": {"uri": "/tmp/in"},
            "output": {"uri": "/tmp/out"},
            "steps": [
                {
                    "task": "text-classification",
                    "model": "example-org/model",
                    "input": "text",
                    "output": "label",
                    "concurrency": actors,
                    **({"batch_size": batch_size} if batch_size else {}),
                }
            ],
        }
    )
    only = spec.steps[0]
    return only, only.operator()


def test_a_set_batch_size_is_kept() -> None:
    assert batch_rows(*step(batch_size=7), [200] * 15) == 7


def test_small_shards_are_batched_whole() -> None:
    # 3,000 rows over 2 actors: at most 375 rows a batch, and 375 cuts a 200-row shard; one shard a batch.
    assert batch_rows(*step(actors=2), [200] * 15) == 200
    # 30-row shards, 1 actor, 300 rows: at most 75 rows, so two whole shards a batch.
    assert batch_rows(*step(actors=1), [30] * 10) == 60


def test_large_shards_are_cut_evenly() -> None:
    operator_default = step()[1].batch_size
    rows = batch_rows(*step(actors=2), [2000] * 50)
    assert rows <= operator_default
    assert 2000 % rows == 0  # no short remainder batch per shard
    assert rows == 1000


def test_batches_fit_uniform_shards() -> None:
    default = step()[1].batch_size
    for shard in (1, 64, 200, 500, 1500, 3000, 5000):
        for count in (1, 8, 100):
            for actors in (1, 2, 4):
                rows = batch_rows(*step(actors=actors), [shard] * count)
                share = -(-shard * count // (BATCHES_PER_ACTOR * actors))
                assert rows <= max(MIN_BATCH_ROWS, min(default, share))
                if shard <= rows:
                    assert rows % shard == 0  # whole shards
                else:
                    pieces = -(-shard // rows)
                    last = shard - (pieces - 1) * rows
                    assert last > rows - pieces  # even parts: no short remainder batch


@pytest.mark.parametrize("shards", [[], [0, 0]])
def test_no_rows_still_gives_a_batch_size(shards: list[int]) -> None:
    assert batch_rows(*step(), shards) >= MIN_BATCH_ROWS
