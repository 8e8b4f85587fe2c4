"""Whether reusing the KV cache of a shared chat prefix (system message and few-shot examples) pays here.

On the tiny chat model of the tests (``tests.tiny_chat``), 32 chats that share a 338-token prefix (a system message
and four few-shot examples) and differ in the last user message, each answered with 4 new tokens, greedy, one
thread: (1) what the operator does, left-padded batches of 8 and no reuse; (2) one chat at a time, no reuse;
(3) one chat at a time, generating from a copy of the prefix's cache computed once. All three must give the same
tokens. ``python -m benchmarks.prefix_reuse`` (seconds).

A prefix cache cannot be shared inside a left-padded batch (the prefix sits at a different position in every row),
so reuse means giving up batching, or padding between prefix and suffix, which ``generate()`` does not support.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from tests.tiny_chat import build_chat

NEW_TOKENS = 4
BATCH = 8


def _chats() -> list[list[dict[str, str]]]:
    system = {"role": "system", "content": "Label the sentiment of the review as positive, negative or neutral."}
    shots: list[dict[str, str]] = []
    for i in range(4):
        review = f"Example review number {i}: the product arrived late but works well enough for daily use."
        shots += [{"role": "user", "content": review}, {"role": "assistant", "content": "neutral"}]
    texts = [f"Review {i}: " + "The battery lasts long and the screen is bright. " * (1 + i % 4) for i in range(32)]
    return [[system, *shots], *([system, *shots, {"role": "user", "content": text}] for text in texts)]


def measure() -> dict[str, float]:
    """Rows per second of each way; raises if their tokens differ."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:
        path = build_chat(Path(root) / "chat")
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer.padding_side = "left"
    prefix, *chats = _chats()
    prefix_ids = tokenizer.apply_chat_template(prefix, tokenize=True, return_dict=False)
    ids = [
        tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False)
        for chat in chats
    ]
    settings: dict[str, Any] = {
        "max_new_tokens": NEW_TOKENS,
        "min_new_tokens": NEW_TOKENS,
        "do_sample": False,
        "pad_token_id": tokenizer.pad_token_id,
    }

    def batched() -> list[list[int]]:
        out = []
        for start in range(0, len(ids), BATCH):
            padded = tokenizer.pad([{"input_ids": i} for i in ids[start : start + BATCH]], return_tensors="pt")
            with torch.inference_mode():
                sequences = model.generate(**padded, **settings)
            out += sequences[:, padded["input_ids"].shape[1] :].tolist()
        return out

    def one_by_one(*, reuse: bool) -> list[list[int]]:
        cache = DynamicCache()
        if reuse:
            with torch.inference_mode():
                model(torch.tensor([prefix_ids]), past_key_values=cache)
        out = []
        for row in ids:
            inputs = torch.tensor([row])
            extra = {"past_key_values": copy.deepcopy(cache)} if reuse else {}
            with torch.inference_mode():
                sequences = model.generate(inputs, attention_mask=torch.ones_like(inputs), **settings, **extra)
            out.append(sequences[0, len(row) :].tolist())
        return out

    ways: dict[str, Callable[[], list[list[int]]]] = {
        "batched, no reuse": batched,
        "one by one, no reuse": lambda: one_by_one(reuse=False),
        "one by one, prefix cache": lambda: one_by_one(reuse=True),
    }
    rates, tokens = {}, None
    for name, way in ways.items():
        way()  # warm-up
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            got = way()
            best = min(best, time.perf_counter() - start)
        if tokens is not None and got != tokens:
            raise AssertionError(f"{name}: tokens differ from the batched run")
        tokens = got
        rates[name] = len(ids) / best
    return rates


def main() -> None:
    """Print rows per second of each way."""
    for name, rate in measure().items():
        print(f"{name:28s} {rate:7.1f} rows/s")


if __name__ == "__main__":
    main()
