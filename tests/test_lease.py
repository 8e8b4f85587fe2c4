"""One run per output at a time: overlapping ``lakelabel run``s of one job, and a SIGKILLed holder's lease expiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakelabel.jobs.console.status import output_status
from lakelabel.jobs.lake.storage import filesystem
from lakelabel.jobs.output.layout import Layout
from lakelabel.jobs.output.lease import LEASE, LeaseHeldError, acquire, read_lease
from lakelabel.jobs.spec import StorageSpec
from tests import fault_ops
from tests.conftest import attached
from tests.test_exactly_once import crash

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
SHARDS, ROWS = 2, 20


def test_a_local_lease_is_exclusive_renewed_and_taken_over_once_expired(tmp_path: Path) -> None:
    layout = Layout(fs=fsspec.filesystem("file"), root=str(tmp_path / "out"), input_root="")
    first = acquire(layout, uri="out", seconds=1.5)
    with pytest.raises(LeaseHeldError, match=r"out is in use by another run: lakelabel run on .* \(pid \d+\)"):
        acquire(layout, uri="out", seconds=1.5)
    renewed = read_lease(layout)["renewed_at"]
    time.sleep(1.2)
    assert read_lease(layout)["renewed_at"] > renewed, "the holder's thread renews the lease"
    first._stop.set()  # the holder stops renewing, as a killed run does, and leaves its lease behind
    first._thread.join()
    with pytest.raises(LeaseHeldError):
        acquire(layout, uri="out", seconds=1.5)
    second = acquire(layout, uri="out", seconds=1.5, wait=5)  # waits for the expiry, then takes it over
    assert read_lease(layout)["token"] == second.token
    second.release()
    assert read_lease(layout) is None
    first.release()  # no longer its lease: nothing to remove, no error


def test_a_lease_whose_holder_died_on_this_machine_is_taken_over_at_once(tmp_path: Path) -> None:
    layout = Layout(fs=fsspec.filesystem("file"), root=str(tmp_path / "out"), input_root="")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    held = acquire(layout, uri="out", seconds=600)
    held._stop.set()
    held._thread.join()
    lease = read_lease(layout)
    lease["pid"] = int(gone.stdout)  # a process that has ended
    (tmp_path / "out" / LEASE).write_text(json.dumps(lease))
    taken = acquire(layout, uri="out", seconds=600)  # no wait: the holder is known to be dead
    assert read_lease(layout)["token"] == taken.token
    taken.release()


def test_a_lease_left_by_an_ended_run_of_this_process_is_taken_over_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(fs=fsspec.filesystem("file"), root=str(tmp_path / "out"), input_root="")
    ended = acquire(layout, uri="out", seconds=600)
    with pytest.raises(LeaseHeldError):  # a live run of this same process still holds it
        acquire(layout, uri="out", seconds=600)

    def unreachable(*_: object, **__: object) -> None:
        raise OSError("the store is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(layout.fs, "rm", unreachable)
        ended.release()  # the run ends during an outage: its lease stays behind
    assert read_lease(layout)["token"] == ended.token
    again = acquire(layout, uri="out", seconds=600)  # the next run of this process, with no wait
    assert read_lease(layout)["token"] == again.token
    again.release()
    assert read_lease(layout) is None


def write_inputs(fs: fsspec.AbstractFileSystem, prefix: str) -> list[int]:
    ids = []
    for shard in range(SHARDS):
        rows = [shard * 1000 + i for i in range(ROWS)]
        ids += rows
        with fs.open(f"{prefix}/part-{shard}.parquet", "wb") as handle:
            pq.write_table(pa.table({"id": rows, "text": [f"text {i}" for i in rows]}), handle)
    return ids


def start(job: Path, log: Path, ray: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fault_ops", "run", str(job)],
        cwd=ROOT,
        env=attached(ray, PYTHONPATH=str(ROOT)),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_overlapping_runs_one_proceeds_and_a_killed_holders_lease_expires(
    tmp_path: Path, models: dict[str, str], s3_endpoint: str, ray_local: str
) -> None:
    # The runs are `lakelabel run` processes attached to the session's Ray: the lease is the output's, not Ray's.
    storage = StorageSpec(endpoint_url=s3_endpoint)
    fs, _ = filesystem("s3://lease", storage)
    if not fs.exists("lease"):
        fs.mkdir("lease")
    ids = write_inputs(fs, "lease/in")
    out = "s3://lease/out"
    job, pause = tmp_path / "job.json", tmp_path / "pause"
    job.write_text(json.dumps({
        "name": "overlap", "input": {"uri": "s3://lease/in/"}, "output": {"uri": out, "lease_seconds": 6},
        "storage": {"endpoint_url": s3_endpoint},
        "steps": [{"task": fault_ops.TASK, "model": models["classifier"], "input": "text", "output": "length",
                   "batch_size": 4, "options": {"pause_file": str(pause)}}],
    }))  # fmt: skip
    pause.write_text("0.5")
    holder = start(job, tmp_path / "holder.log", ray_local)  # ~20 s of work: it is still running
    try:
        deadline = time.monotonic() + 120
        while not fs.exists(f"lease/out/{LEASE}") or not fs.exists("lease/out/_lakelabel/run.json"):
            assert holder.poll() is None, (tmp_path / "holder.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.2)
            fs.invalidate_cache()
        second = subprocess.run(
            [sys.executable, "-m", "tests.fault_ops", "run", str(job)],
            cwd=ROOT, env=attached(ray_local, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr
        assert f"{out} is in use by another run: lakelabel run on" in second.stderr
        assert f"(pid {holder.pid})" in second.stderr
        status, _ = output_status(out, storage)
        assert f"live run: lakelabel run on {os.uname().nodename} (pid {holder.pid})" in status
    finally:
        crash(holder)
    lease = json.loads(fs.cat_file(f"lease/out/{LEASE}"))  # the killed holder's, left behind
    assert lease["pid"] == holder.pid
    # As if the holder had run on another machine: its death cannot be seen from here, only its lease's expiry.
    lease["host"] = "another-machine"
    fs.pipe_file(f"lease/out/{LEASE}", json.dumps(lease).encode())
    pause.unlink()  # the next run's rows take no time
    third = subprocess.run(
        [sys.executable, "-m", "tests.fault_ops", "run", str(job), "--wait", "60"],
        cwd=ROOT, env=attached(ray_local, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert third.returncode == 0, third.stdout + third.stderr
    fs.invalidate_cache()
    run = json.loads(fs.cat_file("lease/out/_lakelabel/run.json"))
    assert run["started_at"] >= lease["expires_at"], "the next run started only once the lease had expired"
    assert not fs.exists(f"lease/out/{LEASE}")
    seen = []
    for shard in range(SHARDS):
        with fs.open(f"lease/out/part-{shard}.parquet", "rb") as handle:
            seen += pq.read_table(handle).column("id").to_pylist()
    assert sorted(seen) == sorted(ids)
    print(f"lease: second run refused naming pid {holder.pid}; after SIGKILL the next run started "
          f"{run['started_at'] - lease['expires_at']:.1f}s after the lease expired")  # fmt: skip
