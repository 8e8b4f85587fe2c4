"""The batching and placement choices behind lakelabel's defaults, measured one at a time.

    python -m benchmarks.throughput --techniques

Forward-pass choices (autograd mode, attention kernel, float32 or bfloat16 at each token budget) are timed with
the limit's own loop; the batch window (how
many rows are sorted by length together) with lakelabel's text-classification operator in this process; the
placement of the model on the cores (one actor with every core's threads, one single-threaded actor per core, a
second batch queued per actor) with ``lakelabel run`` end to end. Classification, MiniLM, the benchmark corpus.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from benchmarks import baselines, job
from lakelabel.operators import OperatorConfig, operator_class

WINDOWS = (64, 256, 1024)
BUDGETS = (1024, 2048, 4096, 8192)


def dtype_budgets(model: Path, corpus: list[str], *, threads: int = 1) -> Iterator[tuple[str, float]]:
    """The forward at each token budget in float32 and in bfloat16, on ``threads`` threads (an actor's one)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for dtype in (torch.float32, torch.bfloat16):
            forward = baselines.Forward(model, "classification", dtype=dtype)
            forward.run(corpus[:16], rows=16, budget=None)  # warm-up
            for budget in BUDGETS:
                rate = len(corpus) / forward.run(corpus, rows=None, budget=budget)
                yield f"forward, {str(dtype).removeprefix('torch.')}, {budget}-token budget, {threads} thread(s)", rate
    finally:
        torch.set_num_threads(previous)


def _forward_variants(model: Path, corpus: list[str]) -> list[tuple[str, float]]:
    found = []
    modes: dict[str, Callable[[], Any]] = {
        "torch.inference_mode": torch.inference_mode,
        "torch.no_grad": torch.no_grad,
        "autograd on": contextlib.nullcontext,
    }
    forward = baselines.Forward(model, "classification")
    for name, mode in modes.items():
        forward.mode = mode
        found.append((f"forward, {name}", len(corpus) / forward.run(corpus, rows=None, budget=2048)))
    for attention in ("sdpa", "eager"):
        forward = baselines.Forward(model, "classification", attn_implementation=attention)
        found.append((f"forward, {attention} attention", len(corpus) / forward.run(corpus, rows=None, budget=2048)))
    return found


def _window_variants(model: Path, corpus: list[str]) -> Iterator[tuple[str, float]]:
    config = OperatorConfig(model=str(model), input="text", output="label", options={"max_length": 256})
    operator = operator_class("text-classification")(config)
    operator.setup()
    operator(pa.table({"text": corpus[:8]}))
    for window in WINDOWS:
        start = time.perf_counter()
        for offset in range(0, len(corpus), window):
            operator(pa.table({"text": corpus[offset : offset + window]}))
        yield f"operator, batches of {window} rows sorted by length", len(corpus) / (time.perf_counter() - start)


PLACEMENTS = {
    "1 actor, 2 CPUs (2 torch threads), batch_size unset": {"concurrency": 1, "num_cpus": 2},
    "2 actors, 1 CPU each, batches of 512 (bundles of 3 shards, cut 512 + 88)": {"concurrency": 2, "batch_size": 512},
    "2 actors, 1 CPU each, batch_size unset (one shard a batch)": {"concurrency": 2},
}


def _placements(model: Path, source: Path, work: Path) -> Iterator[tuple[str, float]]:
    for name, step in PLACEMENTS.items():
        run, manifest = job.lakelabel(job.job_file(work, "classification", model, source, step=step))
        steady, _ = job.steady_rows_per_s(manifest)
        yield f"lakelabel run, {name}: steady state", steady
        yield f"lakelabel run, {name}: start-up included", manifest["totals"]["rows_out"] / run.seconds


def measure(model: Path, corpus: list[str], source: Path, work: Path) -> list[tuple[str, float]]:
    """Every variant's rows/s; the in-process ones over every fifth text of ``corpus``."""
    sample = baselines.sample(corpus, 5)
    found = _forward_variants(model, sample)
    found += list(_window_variants(model, sample))
    found += list(dtype_budgets(model, sample))
    found += list(_placements(model, source, work))
    return found
