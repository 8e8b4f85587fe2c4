"""Actor pools for steps without ``concurrency``: sized to the cluster's cores or GPUs, set pools kept."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray.data

from lakelabel.jobs.cli import main
from lakelabel.jobs.plan import make_plan
from lakelabel.jobs.pools import IO_SLOTS, Machine, cpu_slots, size_pools
from lakelabel.jobs.ray_adapter import cluster_machine
from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import parse_spec
from tests.conftest import write_parquet

NEVER_LOADED = "example-org/model-that-does-not-exist"
ROWS = 12_000


def text_step(output: str, **fields: Any) -> dict[str, Any]:
    return {"task": "text-classification", "model": NEVER_LOADED, "input": "text", "output": output, **fields}


def image_step(output: str, **fields: Any) -> dict[str, Any]:
    return {"task": "image-classification", "model": NEVER_LOADED, "input": "image", "output": output, **fields}


def spec(*steps: dict[str, Any], uri: str = "/tmp/lakelabel-pools-in"):
    return parse_spec({"name": "pools", "input": {"uri": uri}, "output": {"uri": f"{uri}-out"}, "steps": list(steps)})


def pools(machine: Machine, *steps: dict[str, Any], rows: int = ROWS):
    job = spec(*steps)
    operators = [step.operator() for step in job.steps]
    return size_pools(job.steps, operators, machine, rows=rows), operators


def cores(count: int, gpus: int = 0) -> Machine:
    return Machine.local(cores=count, gpus=gpus)


def test_a_cpu_step_gets_one_single_threaded_actor_per_core() -> None:
    for count in (1, 2, 16):
        (pool,), _ = pools(cores(count), text_step("label"))
        assert (pool.low, pool.high, pool.cpus, pool.gpus) == (count, count, 1.0, 0.0)
        assert "left after reads and writes" in pool.reason


def test_a_cluster_keeps_one_slot_for_reads_and_writes() -> None:
    (pool,), _ = pools(Machine(cpus=16, gpus=0, label="a 16-slot cluster"), text_step("label"))
    assert pool.high == 16 - IO_SLOTS


def test_a_set_concurrency_wins() -> None:
    (fixed, scaling), _ = pools(cores(16), text_step("a", concurrency=3), text_step("b", concurrency=[1, 4]))
    assert (fixed.low, fixed.high) == (3, 3)
    assert (scaling.low, scaling.high, scaling.range) == (1, 4, "1..4")
    assert fixed.reason == scaling.reason == "set by the step's concurrency"


def test_several_steps_share_the_cores_without_oversubscribing() -> None:
    for count in (2, 3, 8, 16):
        machine = cores(count)
        found, operators = pools(machine, text_step("a"), text_step("b"), text_step("c", concurrency=2))
        assert found[2].high == 2
        assert all(pool.low >= 1 for pool in found)
        if count + IO_SLOTS >= 2 + 2 + IO_SLOTS:  # room for one actor each beside the set pool
            assert sum(pool.high * pool.cpus for pool in found) + IO_SLOTS <= machine.cpus
            assert cpu_slots(found, operators) <= machine.cpus
        assert found[0].high >= found[1].high >= found[0].high - 1  # an even share


def test_a_full_cluster_still_gives_each_step_one_actor() -> None:
    (first, second), _ = pools(cores(2), text_step("a", concurrency=4), text_step("b"))
    assert (second.low, second.high) == (1, 1)
    assert "one actor" in second.reason
    assert first.high == 4


def test_gpu_steps_get_one_actor_per_gpu() -> None:
    machine = Machine(cpus=32, gpus=4, label="4 GPUs")
    (only,), _ = pools(machine, text_step("label"))
    assert (only.high, only.gpus) == (4, 1.0)
    two, _ = pools(machine, text_step("a"), text_step("b"))
    assert [pool.high for pool in two] == [2, 2]
    (halves,), _ = pools(machine, text_step("label", num_gpus=0.5))
    assert halves.high == 8
    set_and_sized, _ = pools(machine, text_step("a", concurrency=3), text_step("b"))
    assert [pool.high for pool in set_and_sized] == [3, 1]


def test_cpu_steps_on_a_gpu_cluster_take_the_cores_the_gpu_actors_leave() -> None:
    machine = Machine(cpus=16, gpus=2, label="2 GPUs")
    (gpu, cpu), _ = pools(machine, text_step("a"), text_step("b", num_gpus=0))
    assert (gpu.high, gpu.gpus) == (2, 1.0)
    assert (cpu.high, cpu.gpus) == (16 - IO_SLOTS - 2, 0.0)


def test_without_gpus_a_gpu_step_runs_on_the_cores() -> None:
    (pool,), _ = pools(cores(4, gpus=0), text_step("label"))
    assert (pool.high, pool.gpus) == (4, 0.0)


def test_a_step_that_decodes_media_counts_its_preparing_actors() -> None:
    machine = cores(8)
    (pool,), operators = pools(machine, image_step("label"))
    assert pool.high == 4  # 8 cores: 4 model actors and up to 4 preparing actors
    assert pool.high * (pool.cpus + operators[0].preparer().resources().num_cpus) + IO_SLOTS <= machine.cpus


def test_a_small_job_does_not_load_the_model_on_every_core() -> None:
    (pool,), _ = pools(cores(16), text_step("label"), rows=40)
    assert pool.high == 3  # 40 rows: three batches of at least 16 rows
    assert "capped at 3" in pool.reason
    (one,), _ = pools(cores(16), text_step("label"), rows=0)
    assert one.high == 1


@pytest.mark.parametrize(("count", "batch"), [(4, 250), (8, 84)])
def test_plan_renders_the_sizes_and_why(tmp_path: Path, count: int, batch: int) -> None:
    for shard in range(8):
        write_parquet(tmp_path / "in" / f"part-{shard}.parquet", text=[f"text {i}" for i in range(250)])
    job = spec(text_step("label"), text_step("other", concurrency=[1, 2], batch_size=64), uri=str(tmp_path / "in"))
    machine = cores(count)
    text = make_plan(job).render(machine)
    assert f"pools sized for {machine.label}" in text
    sized = count - 2  # the cores the set pool of 2 leaves
    # 2,000 rows over `sized` actors, at least 4 batches each, in even parts of the 250-row shards
    assert f"batch_size {batch}, actors {sized}, cpus 1 per actor" in text
    assert f"actors: one actor per CPU slot left after reads and writes: {sized} of {count + IO_SLOTS}" in text
    assert "batch_size 64, actors 1..2, cpus 1 per actor" in text
    assert "actors: set by the step's concurrency" in text
    assert "batch_size: set by the step" in text
    assert f"lowered to give each of {sized} actor(s) at least 4 of the job's 2000 rows' batches" in text


def test_plan_without_a_cluster_sizes_for_this_machine(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    write_parquet(tmp_path / "in" / "a.parquet", text=[f"text {i}" for i in range(100)])
    job = tmp_path / "job.yaml"
    job.write_text(
        f"name: pools\ninput: {{uri: {tmp_path / 'in'}}}\noutput: {{uri: {tmp_path / 'out'}}}\n"
        f"steps:\n  - {{task: text-classification, model: {NEVER_LOADED}, input: text, output: label}}\n"
    )
    assert main(["plan", str(job)]) == 0
    assert f"pools sized for {Machine.local().label}\n" in capsys.readouterr().out


def test_a_job_without_concurrency_starts_the_sized_pool(
    tmp_path: Path, models: dict[str, str], ray_local: None
) -> None:
    shards, rows = 4, 40
    for shard in range(shards):
        write_parquet(tmp_path / "in" / f"part-{shard}.parquet", text=[f"text {shard} {i}" for i in range(rows)])
    step = {"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label"}
    job = spec(step, uri=str(tmp_path / "in"))
    assert job.steps[0].concurrency is None
    # The session's Ray has 8 CPU slots on this one machine: it counts as one per core plus one for I/O.
    machine = cluster_machine()
    assert machine.cpus == min(8, (os.cpu_count() or 1) + IO_SLOTS)
    expected = min(int(machine.cpus) - IO_SLOTS, -(-shards * rows // 16))
    # Reads start while the actors load; here every actor must be up before the first batch, so that each one
    # reports in even if another could take every batch of so small a job.
    context = ray.data.DataContext.get_current()
    previous, context.wait_for_min_actors_s = context.wait_for_min_actors_s, 600
    try:
        summary = run_job(job)
    finally:
        context.wait_for_min_actors_s = previous
    assert summary.rows_out == shards * rows
    (stats,) = summary.steps
    assert stats.actors == expected  # every actor of the pool loaded the model
    assert stats.rows == shards * rows


@pytest.mark.ray
def test_a_set_pool_larger_than_the_local_ray_restarts_it_with_the_slots_it_needs(
    tmp_path: Path, models: dict[str, str]
) -> None:
    # `lakelabel run FILE` starts a local Ray of cores + 1 slots while the file's steps are checked; a step whose
    # set pool needs more gets a Ray restarted with them (here one actor more than the cores, plus one for I/O).
    actors = (os.cpu_count() or 1) + 1
    for shard in range(actors):
        write_parquet(tmp_path / "in" / f"part-{shard}.parquet", text=[f"text {shard} {i}" for i in range(20)])
    step = {"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label",
            "concurrency": actors}  # fmt: skip
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"name": "wide", "input": {"uri": str(tmp_path / "in")},
                               "output": {"uri": str(tmp_path / "out")}, "steps": [step]}))  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-m", "lakelabel", "run", str(job)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).resolve().parent.parent,
        env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    (log_file,) = (tmp_path / "out" / "_lakelabel" / "logs").glob("*.log")
    logged = log_file.read_text()
    assert f"restarting the local Ray with {actors + IO_SLOTS} CPU slot(s)" in logged, logged[-3000:]
    # The pool it asked for. How many of the pool's actors had loaded the model by the time so small a job ended
    # depends on the machine's load (the manifest counts those), so that count is only bounded by the pool.
    asked = rf"step label: {actors} actor\(s\) with 1 CPU\(s\) and 0 GPU\(s\) each, \d+ rows per batch: set by"
    assert re.search(asked, logged), logged[-3000:]
    manifest = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    assert manifest["totals"]["rows_out"] == actors * 20
    assert 1 <= manifest["steps"][0]["actors"] <= actors
