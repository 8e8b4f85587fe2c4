"""Jobs submitted with ``lakelabel submit --wait`` to a real three-node Ray cluster on loopback.

One head (no CPU slots: it only coordinates and runs the job's driver) and two workers with custom resources
``node_a`` and ``node_b``, started with ``cluster/local.py``. The step runs two actors, one per worker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakelabel.operators import ERROR_COLUMN
from tests.local_cluster import LocalCluster, cluster_env

pytestmark = pytest.mark.ray  # a cluster of its own

WORKERS = ("worker-1", "worker-2")


@pytest.fixture(scope="module")
def cluster() -> LocalCluster:
    root = Path(tempfile.mkdtemp(prefix="llc-", dir="/tmp"))  # short: Ray's socket paths must stay under 108 bytes
    env = cluster_env(
        # Rows flow once both actors of a pool are up, so both workers get batches however slowly one starts.
        RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S="300",
        # Notice a killed node within seconds rather than Ray's default half a minute.
        RAY_health_check_period_ms="1000",
        RAY_health_check_failure_threshold="3",
    )
    resources = ['{"node_a": 1}', '{"node_b": 1}']
    args = ["--workers", "2", "--head-cpus", "0", "--worker-cpus", "3"]
    cluster = LocalCluster.up(root, env=env, args=[*args, *(a for r in resources for a in ("--worker-resources", r))])
    pids = [cluster.pid(name) for name in ("head", *WORKERS)]
    try:
        yield cluster
    finally:
        cluster.down()
        left = [pid for pid in pids if Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)]
        shutil.rmtree(root, ignore_errors=True)
    assert not left, f"cluster/local.py down left node processes running: {left}"


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


def source(shards: int, rows: int) -> list[pa.Table]:
    tables = []
    for shard in range(shards):
        ids = list(range(shard * 1000, shard * 1000 + rows))
        texts = [None if i % 13 == 5 else f"Ticket {i}: the service in Paris was great" for i in ids]
        tables.append(pa.table({"id": pa.array(ids, pa.int64()), "text": pa.array(texts, pa.string())}))
    return tables


def write_job(root: Path, name: str, tables: list[pa.Table], model: str, *, batch_size: int) -> Path:
    for index, table in enumerate(tables):
        (root / "in").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "in" / f"part-{index:02d}.parquet")
    job = {
        "name": name,
        "input": {"uri": str(root / "in")},
        "output": {"uri": str(root / "out")},
        "steps": [
            {
                "task": "text-classification",
                "model": model,
                "input": "text",
                "output": "sentiment",
                "batch_size": batch_size,
                "concurrency": 2,
            }
        ],
    }
    path = root / "job.yaml"
    path.write_text(json.dumps(job, indent=2), encoding="utf-8")
    return path


def committed_rows(out: Path) -> pa.Table:
    """Every row of every committed Parquet file under ``out`` (names starting with ``_`` are lakelabel's own)."""
    files = [p for p in sorted(out.rglob("*.parquet")) if not any(part.startswith("_") for part in p.parts)]
    assert files, f"no Parquet output under {out}"
    return pa.concat_tables(pq.read_table(path) for path in files)


def assert_every_row_once(out: Path, tables: list[pa.Table]) -> None:
    expected = pa.concat_tables(tables)
    rows = committed_rows(out)
    got = sorted(zip(rows.column("id").to_pylist(), rows.column("text").to_pylist(), strict=True))
    want = sorted(zip(expected.column("id").to_pylist(), expected.column("text").to_pylist(), strict=True))
    assert got == want, f"{len(got)} rows out for {len(want)} in; duplicated or missing rows"
    labels = [
        (text, value and value["label"])
        for text, value in zip(rows.column("text").to_pylist(), rows.column("sentiment").to_pylist(), strict=True)
    ]
    assert all((label in {"negative", "neutral", "positive"}) == (text is not None) for text, label in labels)


def manifest(out: Path) -> dict[str, Any]:
    path = out / "_SUCCESS"
    assert path.exists(), f"no manifest at {path}"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def first_run(cluster: LocalCluster, models: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("first")
    tables = source(shards=4, rows=30)
    job = write_job(root, "cluster-first", tables, models["classifier"], batch_size=8)
    result = cluster.submit(job, "--wait")
    return {"result": result, "out": root / "out", "tables": tables}


def test_submit_wait_runs_the_job_and_writes_every_row_once(first_run: dict) -> None:
    result = first_run["result"]
    assert result.returncode == 0, f"submit --wait exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    assert "SUCCEEDED" in result.stderr
    assert "120 rows in, 120 rows out" in result.stdout, "the job's own log is streamed to the client"
    assert_every_row_once(first_run["out"], first_run["tables"])
    assert manifest(first_run["out"])["complete"] is True


def test_the_step_ran_on_both_worker_nodes(first_run: dict, cluster: LocalCluster) -> None:
    steps = manifest(first_run["out"]).get("steps")
    assert steps, "the manifest has no 'steps' list"
    assert "nodes" in steps[0], "the manifest's steps[0] has no 'nodes' (Ray node ids the step ran on)"
    nodes = set(steps[0]["nodes"])
    ids = cluster.node_ids()
    assert nodes <= set(ids.values()), f"unknown node ids {nodes - set(ids.values())}; cluster: {ids}"
    assert nodes == {ids[name] for name in WORKERS}, f"step ran on {nodes}; workers are {ids}"


def test_a_failing_job_fails_the_submit(cluster: LocalCluster, models: dict[str, str], tmp_path: Path) -> None:
    job = write_job(tmp_path, "cluster-missing-input", [], models["classifier"], batch_size=8)  # no input shards
    result = cluster.submit(job, "--wait")
    assert result.returncode == 2, f"{result.stdout}\n{result.stderr}"  # the job's own exit code: `lakelabel run`'s 2
    assert "FAILED" in result.stderr


def test_an_operator_of_your_own_is_shipped_with_the_job(cluster: LocalCluster, tmp_path: Path) -> None:
    """The class's module lies outside the repository and on no node's path: only ``submit`` can bring it there."""
    from tests.test_own_operators import MODULE, sha256, write_module

    module = write_module(tmp_path / "ops")
    assert str(module.parent) not in cluster.env.get("PYTHONPATH", "")
    tables = source(shards=2, rows=20)
    for index, table in enumerate(tables):
        (tmp_path / "in").mkdir(exist_ok=True)
        pq.write_table(table, tmp_path / "in" / f"part-{index:02d}.parquet")
    step = {"operator": f"{MODULE}:Upper", "input": "text", "output": "upper", "batch_size": 4, "concurrency": 2}
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"name": "cluster-own-operator", "input": {"uri": str(tmp_path / "in")},
                               "output": {"uri": str(tmp_path / "out")}, "steps": [step]}))  # fmt: skip
    env = cluster.client_env()  # the submitting process checks the job: it imports the module
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(module.parent), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        cluster.submit_command(job, "--wait"), env=env, capture_output=True, text=True, timeout=400, check=False
    )
    assert result.returncode == 0, f"submit --wait exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    rows = committed_rows(tmp_path / "out")
    assert rows.num_rows == 40
    for text, upper, errors in zip(*(rows.column(c).to_pylist() for c in ("text", "upper", ERROR_COLUMN)), strict=True):
        assert upper == (None if text is None else text.upper())
        assert errors == ([] if text is not None else [{"step": "upper", "message": "input column 'text' is null"}])
    done = manifest(tmp_path / "out")
    assert done["complete"] is True
    assert done["provenance"]["operators"] == [
        {"step": "upper", "class": f"{MODULE}:Upper", "source_sha256": sha256(module)}
    ]


def _batches_done_on(cluster: LocalCluster, node_id: str) -> int:
    """Batches the step's actors finished on ``node_id`` so far (Ray reports task events about once a second)."""
    return sum(
        1
        for task in cluster.tasks()
        if task.get("node_id") == node_id
        and task.get("state") == "FINISHED"
        and task.get("name", "").endswith("(_StepWorker)).submit")  # a batch, not the actor's creation
    )


def test_the_job_survives_losing_a_worker_node(cluster: LocalCluster, models: dict[str, str], tmp_path: Path) -> None:
    shards = 12
    tables = source(shards=shards, rows=100)
    job = write_job(tmp_path, "cluster-node-loss", tables, models["classifier"], batch_size=4)
    out = tmp_path / "out"
    victim = cluster.node_ids()["worker-1"]
    earlier = _batches_done_on(cluster, victim)  # by the module's earlier jobs
    process = subprocess.Popen(
        cluster.submit_command(job, "--wait"),
        env=cluster.client_env(),
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while _batches_done_on(cluster, victim) == earlier:  # kill it once it has done some of this job's work
            assert process.poll() is None, f"the job ended before worker-1 did any work:\n{process.communicate()}"
            if time.monotonic() > deadline:
                names = {t.get("name") for t in cluster.tasks() if t.get("node_id") == victim}
                pytest.fail(f"worker-1 finished no batch of the step in 300 s; its tasks: {names}")
            time.sleep(0.5)
        placement = {
            a["class_name"]: name
            for a in cluster.actors()
            if a["state"] == "ALIVE"
            for name, node in cluster.node_ids().items()
            if a["node_id"] == node
        }
        cluster.kill("worker-1")
        assert process.poll() is None, "the job ended before the kill"
        assert not (out / "_SUCCESS").exists(), "the kill landed after the job"
        stdout, stderr = process.communicate(timeout=400)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, (
        f"submit --wait exited {process.returncode}; actors at the kill: {placement}\n{stdout}\n{stderr}"
    )
    assert_every_row_once(out, tables)
    result = manifest(out)
    assert result["complete"] is True
    assert victim in result["steps"][0]["nodes"], "worker-1 did part of the step before it was killed"
    status = {node["name"]: node for node in cluster.status()["nodes"]}
    assert not status["worker-1"]["running"]
    assert status["worker-2"]["running"]
