"""Crash, re-run, add shards, change the spec: every input row reaches the output exactly once.

The kill tests run the job as its own ``lakelabel run`` process (attached to the session's Ray), SIGKILL it and
every process of its Ray job at a chosen point, as a lost machine would end them, then run the same job file again
and check the output by content.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from lakelabel.jobs.console.status import output_status
from lakelabel.jobs.lake.storage import filesystem
from lakelabel.jobs.output.layout import STATE
from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import load_spec
from lakelabel.operators import ERROR_COLUMN
from tests.conftest import attached

ROOT = Path(__file__).resolve().parents[1]
SHARDS, ROWS = 8, 60


def shard_table(shard: int, rows: int = ROWS) -> pa.Table:
    ids = [shard * 1000 + i for i in range(rows)]
    texts = [
        None if i % 13 == 5 else f"row {i}: the weather in Paris turned {'warm' if i % 2 else 'cold'}" for i in ids
    ]
    return pa.table({"id": pa.array(ids, pa.int64()), "text": pa.array(texts, pa.string())})


def write_shards(fs: fsspec.AbstractFileSystem, prefix: str, shards: range) -> None:
    fs.makedirs(f"{prefix}/day=1", exist_ok=True)
    for shard in shards:
        with fs.open(f"{prefix}/day=1/part-{shard:02d}.parquet", "wb") as handle:
            pq.write_table(shard_table(shard), handle)


def job_file(path: Path, input_uri: str, output_uri: str, steps: list[dict], **extra: Any) -> Path:
    path.write_text(json.dumps({"name": "once", "input": {"uri": input_uri}, "output": {"uri": output_uri},
                                "steps": steps, **extra}))  # fmt: skip
    return path


def output_files(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    fs.invalidate_cache()
    if not fs.exists(root):
        return []
    return sorted(p for p in fs.find(root) if p.endswith(".parquet") and f"/{STATE}/" not in p)


def read_output(fs: fsspec.AbstractFileSystem, root: str) -> pa.Table:
    tables = []
    for path in output_files(fs, root):
        with fs.open(path, "rb") as handle:
            tables.append(pq.read_table(handle))
    return pa.concat_tables(tables)


def assert_every_row_once(fs: fsspec.AbstractFileSystem, root: str, shards: range) -> None:
    """By content: each input (id, text) exactly once, annotated unless its text is null."""
    out = read_output(fs, root)
    expected = pa.concat_tables([shard_table(shard) for shard in shards])
    pairs = sorted(zip(out.column("id").to_pylist(), out.column("text").to_pylist(), strict=True))
    assert pairs == sorted(zip(expected.column("id").to_pylist(), expected.column("text").to_pylist(), strict=True))
    for row in out.to_pylist():
        assert (row["label"] is None) == (row["text"] is None)
        assert (row[ERROR_COLUMN] != []) == (row["text"] is None)


def records(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, dict]:
    fs.invalidate_cache()
    directory = f"{root}/{STATE}/shards"
    if not fs.exists(directory):
        return {}
    found = [json.loads(fs.cat_file(p)) for p in fs.find(directory) if p.endswith(".json")]
    return {r["key"]: r for value in found for r in value.get("records", [value])}  # a bundle's object holds many


def _session_processes(driver: int) -> list[int]:
    """Processes of the Ray session a driver started: their command lines name ``session_..._<driver pid>``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if f"_{driver}/" in command or command.rstrip("\0").endswith(f"_{driver}"):
                found.append(int(entry.name))
    return found


def _job_processes(driver: int) -> list[int]:
    """Processes of the Ray job a driver ran on the session's Ray (``ray_local``): its workers and actors.

    Ray starts each job's workers with ``RAY_JOB_ID`` in their environment. Detached actors the job created (Ray
    Data's, which every later job of that Ray uses) are left alone: they belong to the Ray, not to the run.
    """
    import ray
    from ray._private import state

    if not ray.is_initialized():
        return []
    jobs = {job["JobID"] for job in state.jobs() if job["DriverPid"] == driver}
    shared = {actor["Pid"] for actor in state.actors().values() if actor["IsDetached"]}
    marks = {f"RAY_JOB_ID={job}".encode() for job in jobs}
    found = []
    for entry in Path("/proc").iterdir():
        if marks and entry.name.isdigit() and int(entry.name) not in shared:
            try:
                environ = set((entry / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if environ & marks:
                found.append(int(entry.name))
    return found


def crash(process: subprocess.Popen) -> None:
    """SIGKILL the driver, its process group and every process of its Ray job, or of the Ray session it started,
    as a lost machine would."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    for _ in range(3):
        for pid in _session_processes(process.pid) + _job_processes(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        time.sleep(0.5)


def run_until(job: Path, condition: Callable[[], bool], log: Path, ray: str | None) -> None:
    """Start ``lakelabel run JOB`` as its own process on the Ray at ``ray``; SIGKILL it once ``condition()`` holds.

    ``ray`` None: the process starts a Ray of its own (its workers then see this process's environment).
    """
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "lakelabel", "run", str(job)],
            cwd=ROOT,
            env=attached(ray) if ray else {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if condition():
                crash(process)
                return
            time.sleep(0.02)
    code = process.poll()
    crash(process) if code is None else None
    pytest.fail(f"the job ended (exit {code}) before the kill point; its log:\n{log.read_text()[-3000:]}")


def kill_points(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, Callable[[], bool]]:
    def exists(path: str) -> bool:
        fs.invalidate_cache()
        return fs.exists(path)

    return {
        "early": lambda: exists(f"{root}/{STATE}/run.json"),
        # Some shards committed, others in flight (staged, or not back yet: a shard whose rows come back in one
        # batch commits straight from it, so pieces need not be there at the same moment).
        "during-writes": lambda: 0 < len(records(fs, root)) < SHARDS,
        "mid-way": lambda: len(records(fs, root)) >= 2,
    }


def steps(models: dict[str, str], minilm: str) -> list[dict]:
    return [
        {"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label",
         "batch_size": 8},
        {"task": "feature-extraction", "model": minilm, "input": "text", "output": "embedding", "batch_size": 4},
    ]  # fmt: skip


def kill_and_resume(job: Path, uri: str, point: str, tmp_path: Path, ray: str) -> None:
    spec = load_spec(job)
    fs, root = filesystem(uri, spec.storage)
    run_until(job, kill_points(fs, root)[point], tmp_path / "killed.log", ray)
    before = records(fs, root)
    assert len(before) < SHARDS, "the kill came after every shard was committed"
    killed_run = json.loads(fs.cat_file(f"{root}/{STATE}/run.json"))["run_id"]
    text, complete = output_status(uri, spec.storage)
    assert not complete
    assert f"{len(before)} done, {SHARDS - len(before)} pending, 0 quarantined" in text
    assert "not finished" in text

    summary = run_job(spec)
    print(f"killed {point}: {len(before)} of {SHARDS} shards committed before the kill; re-run: {summary.render()}")
    assert (summary.shards_skipped, summary.shards_processed) == (len(before), SHARDS - len(before))
    assert summary.rows_in == ROWS * (SHARDS - len(before))
    after = records(fs, root)
    assert {key: r["run_id"] for key, r in after.items() if key in before} == dict.fromkeys(before, killed_run)
    assert {r["run_id"] for key, r in after.items() if key not in before} == {
        json.loads(fs.cat_file(f"{root}/_SUCCESS"))["run"]["id"]
    }
    assert len(output_files(fs, root)) == SHARDS
    assert_every_row_once(fs, root, range(SHARDS))
    assert not fs.exists(f"{root}/{STATE}/staging")
    text, complete = output_status(uri, spec.storage)
    assert complete, text
    assert f"{SHARDS} done, 0 pending, 0 quarantined" in text


@pytest.mark.parametrize("point", ["early", "during-writes", "mid-way"])
def test_killed_local_job_resumes_with_every_row_once(
    point: str, tmp_path: Path, models: dict[str, str], minilm: str, ray_local: str
) -> None:
    fs = fsspec.filesystem("file")
    write_shards(fs, str(tmp_path / "in"), range(SHARDS))
    job = job_file(tmp_path / "job.yaml", str(tmp_path / "in"), str(tmp_path / "out"), steps(models, minilm))
    kill_and_resume(job, str(tmp_path / "out"), point, tmp_path, ray_local)


@pytest.mark.parametrize("point", ["early", "during-writes", "mid-way"])
def test_killed_s3_job_resumes_with_every_row_once(
    point: str, tmp_path: Path, s3_endpoint: str, models: dict[str, str], minilm: str, ray_local: str
) -> None:
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    bucket = f"once-{point}"
    fs.mkdir(bucket)
    write_shards(fs, f"{bucket}/in", range(SHARDS))
    job = job_file(tmp_path / "job.yaml", f"s3://{bucket}/in/", f"s3://{bucket}/out/", steps(models, minilm),
                   storage={"endpoint_url": s3_endpoint})  # fmt: skip
    kill_and_resume(job, f"s3://{bucket}/out/", point, tmp_path, ray_local)
