"""Batched forward passes for text encoders: length-sorted micro-batches cut by a token budget.

Texts are tokenised once without padding, sorted by length, cut into micro-batches whose padded size stays
within a token budget, run under ``torch.inference_mode`` and put back in their original order. Padding waste is
small and a long text never drags a whole batch to its length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

TOKEN_BUDGET = 8192
"""Padded tokens per micro-batch (rows x longest row) where no device-specific budget applies."""

CPU_TOKEN_BUDGET = 2048
"""On CPU, small micro-batches run fastest (MiniLM, 2 cores: 52 rows/s at 2,048 tokens, 39 at 8,192)."""

CPU_BFLOAT16_TOKEN_BUDGET = 2048
"""On CPU in bfloat16 (AVX-512 BF16 / AMX kernels): see docs/throughput.md for the sweep behind it."""

GPU_TOKEN_BUDGET = 16384
"""On a GPU, large micro-batches keep it busy."""

MAX_ROWS = 256

SORT_WINDOW = 1024
"""Default rows per batch for text encoders: each batch is sorted by length before it is cut into micro-batches
(MiniLM, 2 cores: 31 rows/s in batches of 64, 41 of 256, 47 of 1,024; 52 with the whole corpus sorted at once)."""

_MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def length_sorted_chunks(
    lengths: Sequence[int], *, token_budget: int = TOKEN_BUDGET, max_rows: int = MAX_ROWS
) -> Iterator[list[int]]:
    """Yield row indices in ascending length, cut so that ``rows x longest <= token_budget``."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    chunk: list[int] = []
    for index in order:
        longest = lengths[index]  # ascending order: the newest row is the longest
        if chunk and ((len(chunk) + 1) * longest > token_budget or len(chunk) >= max_rows):
            yield chunk
            chunk = []
        chunk.append(index)
    if chunk:
        yield chunk


def token_budget(device: torch.device, dtype: torch.dtype = torch.float32) -> int:
    """Padded tokens per micro-batch for a forward pass on ``device`` in ``dtype``."""
    if device.type != "cpu":
        return GPU_TOKEN_BUDGET
    return CPU_BFLOAT16_TOKEN_BUDGET if dtype == torch.bfloat16 else CPU_TOKEN_BUDGET


def forward_rows(
    tokenizer: PreTrainedTokenizerBase,
    encodings: BatchEncoding,
    run: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    device: torch.device,
    *,
    trim: bool = False,
    dtype: torch.dtype = torch.float32,
) -> list[torch.Tensor]:
    """Run ``run`` over unpadded ``encodings`` in length-sorted micro-batches; one float32 CPU tensor per row.

    ``run`` receives padded model inputs on ``device`` and returns a tensor whose first dimension is the row; a
    model in ``dtype`` (bfloat16, float16) gets that dtype's token budget, and its outputs come back as float32, so
    what is computed from them (pooling, softmax, scores) is float32. With ``trim``, per-token outputs are cut back
    to each row's own tokens (padding removed).
    """
    keys = [key for key in _MODEL_KEYS if key in encodings]
    lengths = [len(ids) for ids in encodings["input_ids"]]
    results: list[torch.Tensor | None] = [None] * len(lengths)
    left = tokenizer.padding_side == "left"
    for chunk in length_sorted_chunks(lengths, token_budget=token_budget(device, dtype)):
        features = [{key: encodings[key][i] for key in keys} for i in chunk]
        padded = tokenizer.pad(features, return_tensors="pt")
        inputs = {key: padded[key].to(device, non_blocking=True) for key in keys}
        with torch.inference_mode():
            output = run(inputs).float().cpu()
        for position, row in enumerate(chunk):
            value = output[position]
            if trim:
                width = value.shape[0]
                value = value[width - lengths[row] :] if left else value[: lengths[row]]
            results[row] = value
    return [value for value in results if value is not None]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of token vectors over the attention mask, as sentence-transformers pools."""
    hidden = hidden.float()  # a float16 sum over hundreds of tokens can overflow
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
