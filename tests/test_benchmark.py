"""The throughput harness on a tiny input: it runs every contender and reports what it measured.

Behaviour only: no timing is asserted (the figures themselves come from ``make bench`` on a quiet machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmarks.baselines import token_counts
from benchmarks.corpus import texts, write_shards
from benchmarks.job import DAFT_PYTHON, steady_rows_per_s
from benchmarks.memory import PeakMemory, descendants, tree_pss
from benchmarks.models import tiny_classifier

ROOT = Path(__file__).resolve().parent.parent
NAMES = [
    "a. limit: forward only",
    "b. pipeline() loop",
    "c. Ray Data recipe",
    "d. lakelabel, steady state",
    "d. lakelabel, start-up included",
    "e. ceiling with start-up for any Ray job",
]
BFLOAT16 = [
    "g. limit in bfloat16: forward only",
    "g. lakelabel in bfloat16, steady state",
    "g. lakelabel in bfloat16, start-up included",
]


def _harness(*args: str) -> dict:
    out = Path(args[args.index("--work") + 1]) / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-4000:]}"
    return json.loads(out.read_text(encoding="utf-8"))


def test_the_corpus_is_deterministic_and_mixed_in_length(tmp_path: Path) -> None:
    assert texts(50) == texts(50)
    assert texts(50, seed=1) != texts(50)
    counts = token_counts(tiny_classifier(tmp_path / "tiny"), texts(400))
    assert min(counts) < 30
    assert max(counts) == 256  # the longest are truncated
    assert 90 < sum(counts) / len(counts) < 150


def test_shards_hold_every_row_once(tmp_path: Path) -> None:
    paths = write_shards(tmp_path, 25, shard_rows=10)
    tables = [pq.read_table(path) for path in paths]
    assert [t.num_rows for t in tables] == [10, 10, 5]
    assert [i for t in tables for i in t.column("id").to_pylist()] == list(range(25))
    assert [x for t in tables for x in t.column("text").to_pylist()] == texts(25)


def test_steady_state_leaves_out_the_first_batch() -> None:
    step = {"rows": 1000, "first_batch_rows": 200, "first_batch_at": 10.0, "last_batch_at": 30.0}
    assert steady_rows_per_s({"steps": [step]}) == (40.0, 800)
    with pytest.raises(ValueError, match="two batches"):
        steady_rows_per_s({"steps": [{**step, "rows": 200, "last_batch_at": 10.0}]})


def test_memory_covers_the_process_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(64 << 20); time.sleep(30)"])
    try:
        for _ in range(100):
            if child.pid in descendants(os.getpid()) and tree_pss(child.pid) > 64 << 20:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert child.pid in descendants(os.getpid())
        assert tree_pss(os.getpid()) > tree_pss(child.pid) > 64 << 20
    finally:
        child.kill()
        child.wait()


def test_the_largest_process_of_the_tree_is_tracked_apart_from_the_sum() -> None:
    code = "import time; x = bytearray(96 << 20); x[::4096] = b'1' * len(x[::4096]); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        with PeakMemory(child.pid, interval_s=0.1) as memory:
            for _ in range(100):
                if memory.largest > 96 << 20:
                    break
                subprocess.run(["sleep", "0.1"], check=True)
        assert memory.largest > 96 << 20
        assert memory.largest <= memory.peak
        assert memory.largest_name.startswith("python")
    finally:
        child.kill()
        child.wait()


@pytest.mark.ray
def test_the_harness_prints_all_four_side_by_side(tmp_path: Path) -> None:
    step = '{"concurrency": 1, "batch_size": 8}'
    args = ["--tiny", "--rows", "48", "--sweep-every", "1", "--tasks", "classification", "--work", str(tmp_path)]
    report = _harness(*args, "--step", step)
    results = report["classification"]
    daft = DAFT_PYTHON.exists()  # row (f) runs where `make bench` has made Daft's environment
    assert [r["name"] for r in results] == NAMES + (["f. Daft, start-up included"] if daft else []) + BFLOAT16
    assert all(r["rows_per_s"] > 0 and r["tokens_per_s"] > 0 for r in results)
    assert [r["rows"] for r in results[:3]] == [48, 3, 48]  # the pipeline() loop runs over every twentieth text
    assert 0 < results[3]["rows"] < 48  # steady state leaves out the first batch
    assert results[4]["rows"] == 48
    assert results[3]["extra"]["peak_bytes"] > 0
    out = tmp_path / "classification-48" / "out"
    assert sum(pq.read_table(path).num_rows for path in out.glob("part-*.parquet")) == 48
    ceiling = results[5]
    assert ceiling["extra"]["bare_seconds"] > 0
    assert ceiling["seconds"] > results[0]["seconds"]  # the limit's time plus Ray's fixed cost
    agreement = results[-2]["extra"]["agreement"]
    assert agreement["rows"] == 48
    assert 0 <= agreement["same_label"] <= 1
    assert agreement["max_score_diff"] >= 0
    fixed_out = tmp_path / "classification-fixed" / "out"
    assert sum(pq.read_table(path).num_rows for path in fixed_out.glob("part-*.parquet")) == 1  # one row per actor
    if daft:
        runs = sorted((tmp_path / "classification-48" / "daft").iterdir())
        assert len(runs) == 6  # batch 1, 8, 32, each with Daft's default concurrency and with one instance
        assert all(sum(pq.read_table(path).num_rows for path in run.glob("*.parquet")) == 48 for run in runs)


@pytest.mark.ray
def test_the_memory_runs_report_a_peak_per_size(tmp_path: Path) -> None:
    args = ["--tiny", "--memory", "--memory-rows", "40", "80", "--shard-rows", "20", "--work", str(tmp_path)]
    report = _harness(*args, "--step", '{"batch_size": 16}')
    assert [entry["rows"] for entry in report["memory"]] == [40, 80]
    assert all(entry["peak_mib"] > 0 for entry in report["memory"])


def test_the_gpu_check_compares_outputs_field_by_field() -> None:
    from benchmarks.gpu import _agree

    row = {"label": "pos", "score": 0.5, "spans": [{"word": "Paris", "start": 3, "score": 0.25}]}
    near = {"label": "pos", "score": 0.5004, "spans": [{"word": "Paris", "start": 3, "score": 0.2502}]}
    assert _agree(row, near, 1e-3) == (True, pytest.approx(4e-4))
    assert _agree(row, near, 1e-4)[0] is False
    assert _agree(row, {**near, "label": "neg"}, 1e-3)[0] is False
    assert _agree(row, {**near, "spans": []}, 1e-3)[0] is False
    assert _agree([0.1, float("nan")], [0.1, float("nan")], 1e-3)[0] is False


def test_the_gpu_check_runs_an_operator_on_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import gpu

    monkeypatch.setattr(gpu, "CASES", [case for case in gpu.CASES if case.task == "text-classification"])
    (entry,) = gpu.check_operators(tmp_path, device="cpu", half="bfloat16")
    assert entry["float32"] == {"rows": 4, "agree": 4, "largest_gap": 0.0}
    assert entry["bfloat16"]["rows"] == 4
    assert entry["bfloat16"]["largest_gap"] > 0  # half precision really ran: its scores differ a little
