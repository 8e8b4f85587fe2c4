"""Rows per batch for a step whose ``batch_size`` is unset.

A large batch is a large sort window: rows are sorted by length within it and cut into forward passes by a token
budget, so little compute goes to padding (the operator's default, 1,024 rows for text encoders). Two things cap it:

- work is handed to actors a batch at a time, so a job with few rows per actor gets smaller batches, at least
  ``BATCHES_PER_ACTOR`` per actor: the last batch one actor runs alone, once the others are done, stays short;
- Ray Data hands each shard to the step as one block and cuts a batch from whole blocks, with the rest of a
  bundle becoming a short extra batch. The batch size is therefore fitted to the shards: a whole number of shards
  when shards are small, an even part of a shard when they are large.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakelabel.jobs.spec import StepSpec
    from lakelabel.operators import Operator

MIN_BATCH_ROWS = 16
BATCHES_PER_ACTOR = 4


def batch_rows(step: StepSpec, operator: Operator, shard_rows: list[int], *, actors: int | None = None) -> int:
    """Rows per batch of ``step`` over shards of ``shard_rows`` rows, for a pool of at most ``actors`` actors.

    The step's ``batch_size`` when set; else the operator's default, capped so each of the step's actors gets at
    least ``BATCHES_PER_ACTOR`` batches, then fitted to the largest shard. ``actors`` defaults to the step's own
    ``concurrency`` (one actor when unset).
    """
    if step.batch_size:
        return step.batch_size
    if actors is None:
        actors = step.concurrency[1] if step.concurrency else 1
    share = -(-sum(shard_rows) // (BATCHES_PER_ACTOR * actors))
    rows = max(MIN_BATCH_ROWS, min(operator.batch_size, share))
    shard = max(shard_rows, default=0)
    if shard <= 0:
        return rows
    if shard <= rows:
        return shard * (rows // shard)
    return -(-shard // -(-shard // rows))
