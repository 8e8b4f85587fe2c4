"""The yardsticks lakelabel is measured against, each timed over the same texts in this process.

- ``limit``: the model's forward pass alone, tokenisation included, no I/O, over length-sorted batches; the best
  of fixed row counts and token budgets.
- ``pipeline_loop``: ``transformers.pipeline()`` called over the texts at batch size 1, 8 and 32.
- ``ray_recipe`` (in ``benchmarks.recipe``): Ray Data's documented recipe, Parquet to Parquet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline

from benchmarks.models import MAX_LENGTH
from lakelabel.operators.core.text_batching import length_sorted_chunks

TASKS = ("classification", "embeddings")
PIPELINE_TASK = {"classification": "text-classification", "embeddings": "feature-extraction"}
ROW_COUNTS = (8, 32, 128)
TOKEN_BUDGETS = (2048, 4096, 8192, 16384)
PIPELINE_BATCHES = (1, 8, 32)


@dataclass
class Result:
    """One contender's measurement."""

    name: str
    rows: int
    tokens: int
    seconds: float
    detail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def token_counts(model_dir: Path, texts: list[str]) -> list[int]:
    """Tokens per text after truncation at ``MAX_LENGTH``, special tokens included."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]]


def sample(texts: list[str], every: int) -> list[str]:
    """Every ``every``-th text: the same length mix as the whole corpus, fewer rows."""
    return texts[::every]


class Forward:
    """The model alone: tokenise, sort by length, pad each batch, forward, pool (embeddings)."""

    def __init__(self, model_dir: Path, task: str, **load: Any) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model_class = AutoModelForSequenceClassification if task == "classification" else AutoModel
        self.model = model_class.from_pretrained(model_dir, **load).eval()
        self.task = task
        self.mode: Callable[[], Any] = torch.inference_mode

    def run(self, texts: list[str], *, rows: int | None, budget: int | None) -> float:
        start = time.perf_counter()
        encodings = self.tokenizer(texts, truncation=True, max_length=MAX_LENGTH)
        ids = encodings["input_ids"]
        lengths = [len(row) for row in ids]
        outputs = [None] * len(texts)
        with self.mode():
            chunks = length_sorted_chunks(lengths, token_budget=budget or 1 << 62, max_rows=rows or len(lengths))
            for chunk in chunks:
                padded = self.tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt")
                if self.task == "classification":
                    values = self.model(**padded).logits.softmax(-1)
                else:
                    hidden = self.model(**padded).last_hidden_state
                    mask = padded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    values = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
                for position, row in enumerate(chunk):
                    outputs[row] = values[position]
        return time.perf_counter() - start


def limit(
    model_dir: Path, task: str, texts: list[str], tokens: int, *, sweep_every: int = 5, dtype: str = "float32"
) -> Result:
    """The best row count or token budget on a sample of the texts, then timed over all of them, in ``dtype``."""
    forward = Forward(model_dir, task, dtype=getattr(torch, dtype))
    trial = sample(texts, sweep_every)
    forward.run(trial[:16], rows=16, budget=None)  # warm-up: first-call allocations
    configs = [(rows, None) for rows in ROW_COUNTS] + [(None, budget) for budget in TOKEN_BUDGETS]
    timings = {config: forward.run(trial, rows=config[0], budget=config[1]) for config in configs}
    rows, budget = min(timings, key=timings.__getitem__)
    seconds = forward.run(texts, rows=rows, budget=budget)
    best = f"{rows} rows" if rows else f"{budget}-token budget"
    sweep = {(f"rows={r}" if r else f"budget={b}"): round(len(trial) / s, 2) for (r, b), s in timings.items()}
    return Result("a. limit: forward only", len(texts), tokens, seconds, f"length-sorted, {best}", {"sweep": sweep})


def _consume(task: str, outputs: list) -> None:
    if task == "embeddings":  # what a user of the pipeline does to get one vector per text
        for tokens in outputs:
            vector = np.asarray(tokens[0], dtype=np.float32).mean(axis=0)
            vector /= np.linalg.norm(vector) or 1.0


def pipeline_loop(model_dir: Path, task: str, texts: list[str], tokens: int) -> Result:
    """``pipeline()`` over the texts at each batch size in ``PIPELINE_BATCHES``; the best one."""
    pipe = pipeline(PIPELINE_TASK[task], model=str(model_dir), device=-1)
    kwargs = {"truncation": True, "max_length": MAX_LENGTH}
    if task == "embeddings":
        kwargs = {"tokenize_kwargs": kwargs}
    pipe(texts[:4], **kwargs)  # warm-up
    timings = {}
    for batch_size in PIPELINE_BATCHES:
        start = time.perf_counter()
        _consume(task, list(pipe(texts, batch_size=batch_size, **kwargs)))
        timings[batch_size] = time.perf_counter() - start
    best = min(timings, key=timings.__getitem__)
    by_batch = {f"batch={b}": round(len(texts) / s, 2) for b, s in timings.items()}
    return Result("b. pipeline() loop", len(texts), tokens, timings[best], f"batch_size={best}", {"sweep": by_batch})
