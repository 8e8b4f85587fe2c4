"""lakelabel and the Ray recipe end to end, each as its own process, timed from outside with its peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import yaml

from benchmarks.memory import PeakMemory
from benchmarks.models import MAX_LENGTH

ROOT = Path(__file__).resolve().parent.parent
STEP = {
    "classification": {"task": "text-classification", "output": "label", "options": {"max_length": MAX_LENGTH}},
    "embeddings": {"task": "feature-extraction", "output": "embedding", "options": {}},
}


@dataclass
class Run:
    """One process: its wall time (start-up included), peak memory, and what it printed."""

    seconds: float
    peak_bytes: int
    stdout: str
    at_peak: dict[str, int]
    largest_bytes: int = 0
    """The largest PSS any one process of the tree reached."""
    largest_name: str = ""


def run_process(args: list[str], env: dict[str, str] | None = None, *, interval_s: float = 3.0) -> Run:
    """Run ``args`` from the repository root, sampling its process tree's memory; fails loudly if it fails."""
    start = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - this interpreter running lakelabel or the recipe
        args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with PeakMemory(process.pid, interval_s) as memory:
        stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {process.returncode}:\n{stdout}\n{stderr[-4000:]}")
    return Run(seconds, memory.peak, stdout, memory.at_peak, memory.largest, memory.largest_name)


def job_file(directory: Path, task: str, model: Path, source: Path, *, step: dict[str, Any] | None = None) -> Path:
    """A lakelabel job over ``source`` with one step of ``task``; ``step`` overrides step fields."""
    spec = {
        "name": f"benchmark-{task}",
        "input": {"uri": str(source)},
        "output": {"uri": str(directory / "out"), "mode": "overwrite"},
        "steps": [{**STEP[task], "model": str(model), "input": "text", **(step or {})}],
    }
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def lakelabel(job: Path) -> tuple[Run, dict[str, Any]]:
    """``lakelabel run JOB`` as a user runs it; returns the run and the output's manifest."""
    run = run_process([sys.executable, "-m", "lakelabel", "run", str(job)])
    spec = yaml.safe_load(job.read_text(encoding="utf-8"))
    manifest = json.loads((Path(spec["output"]["uri"]) / "_SUCCESS").read_text(encoding="utf-8"))
    return run, manifest


def steady_rows_per_s(manifest: dict[str, Any]) -> tuple[float, int]:
    """The step's rows/s from its first finished batch to its last (start-up and the first batch left out)."""
    step = manifest["steps"][0]
    rows = step["rows"] - step["first_batch_rows"]
    span = step["last_batch_at"] - step["first_batch_at"]
    if rows <= 0 or span <= 0:
        raise ValueError("steady state needs at least two batches; use more rows or a smaller batch_size")
    return rows / span, rows


def recipe(task: str, model: Path, source: Path, out: Path) -> Run:
    """The Ray Data recipe (``benchmarks.recipe``) in its own process."""
    args = ["--model", str(model), "--task", task, "--input", str(source), "--output", str(out)]
    return run_process([sys.executable, "-m", "benchmarks.recipe", *args])


DAFT_PYTHON = ROOT / ".venv-daft" / "bin" / "python"


def daft(task: str, model: Path, source: Path, out: Path, *, batch_size: int, instances: int | None) -> Run:
    """Daft's stateful-class UDF (``benchmarks.daft_udf``) in its own process and environment (``.venv-daft``)."""
    args = ["--model", str(model), "--task", task, "--input", str(source), "--output", str(out)]
    args += ["--batch-size", str(batch_size)] + (["--instances", str(instances)] if instances else [])
    return run_process([str(DAFT_PYTHON), "-m", "benchmarks.daft_udf", *args])


def floor(task: str, model: Path, *, actors: int) -> Run:
    """``benchmarks.floor`` in its own process: Ray started, the model loaded on ``actors`` actors, Ray stopped."""
    args = ["--model", str(model), "--task", task, "--actors", str(actors)]
    return run_process([sys.executable, "-m", "benchmarks.floor", *args])


def output_dir(job: Path) -> Path:
    """Where the job file ``job`` writes."""
    return Path(yaml.safe_load(job.read_text(encoding="utf-8"))["output"]["uri"])


def agreement(task: str, reference: Path, other: Path) -> dict[str, float]:
    """How close ``other``'s output is to ``reference``'s, row by row (joined on ``id``).

    Embeddings: the lowest cosine and the share of rows at 0.9995 or more; classification: the share of rows with
    the same label and the largest score difference.
    """
    column = STEP[task]["output"]
    first, second = (
        pq.read_table([str(p) for p in sorted(path.glob("part-*.parquet"))]).sort_by("id")
        for path in (reference, other)
    )
    if first.column("id") != second.column("id"):
        raise ValueError(f"{reference} and {other} hold different rows")
    if task == "embeddings":
        a, b = (np.asarray(table.column(column).to_pylist(), dtype=np.float64) for table in (first, second))
        cosine = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        return {"rows": len(cosine), "min_cosine": round(float(cosine.min()), 6),
                "share_cosine_0.9995": round(float((cosine >= 0.9995).mean()), 4)}  # fmt: skip
    a, b = (table.column(column).to_pylist() for table in (first, second))
    same = np.mean([x["label"] == y["label"] for x, y in zip(a, b, strict=True)])
    diff = max(abs(x["score"] - y["score"]) for x, y in zip(a, b, strict=True))
    return {"rows": len(a), "same_label": round(float(same), 4), "max_score_diff": round(float(diff), 4)}
