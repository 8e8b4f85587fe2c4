"""The fault suite: real jobs on the loopback S3 endpoint, through a proxy that injects faults (tests/fault_proxy.py).

Every case must end (no hang) within ``BOUND`` seconds, and after at most one re-run the output must hold every
input row exactly once. Faults a retry budget absorbs end in a complete first run; an outage longer than the budget
ends the run with a message naming the endpoint and the operation, and the re-run completes it. The figures of
every case are printed at the end of the session (``make faults``; tests/conftest.py).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakelabel.jobs.output.layout import STATE
from lakelabel.jobs.runner import JobFailedError, run_job
from lakelabel.jobs.spec import parse_spec
from tests.fault_proxy import Fault, FaultProxy

pytestmark = pytest.mark.faults

SHARDS, ROWS = 3, 24
BOUND = 180.0
"""Seconds any single run of a case may take: far above a clean run, far below a hang."""
BUDGET = {"max_attempts": 2, "timeout_seconds": 1.0, "retry_seconds": 12.0}
SHORT_BUDGET = {"max_attempts": 1, "timeout_seconds": 1.0, "retry_seconds": 1.0}
"""The failing runs' budget: a call still failing 1 s after it began ends the run (after its 1 s attempt). Their
outages last 4 s, well past that; their re-runs, on a store that answers again, run with ``BUDGET``."""


@pytest.fixture(scope="module")
def proxy(s3_endpoint: str):
    with FaultProxy(s3_endpoint) as running:
        yield running


@pytest.fixture(scope="module")
def moto(s3_endpoint: str) -> fsspec.AbstractFileSystem:
    fs = fsspec.filesystem("s3", endpoint_url=s3_endpoint, skip_instance_cache=True)
    if not fs.exists("faults"):
        fs.mkdir("faults")
    return fs


def shard_ids(shard: int) -> list[int]:
    return [shard * 1000 + i for i in range(ROWS)]


def write_inputs(fs: fsspec.AbstractFileSystem, prefix: str) -> None:
    for shard in range(SHARDS):
        ids = shard_ids(shard)
        texts = [f"row {i}: the weather in Paris turned {'warm' if i % 2 else 'cold'}" for i in ids]
        with fs.open(f"{prefix}/part-{shard:02d}.parquet", "wb") as handle:
            pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "text": texts}), handle)


def job(case: str, proxy: FaultProxy, models: dict[str, str], budget: dict) -> dict:
    return {
        "name": f"faults-{case}",
        "input": {"uri": f"s3://faults/{case}/in/"},
        "output": {"uri": f"s3://faults/{case}/out/"},
        "storage": {"endpoint_url": proxy.url, **budget},
        "steps": [{"task": "text-classification", "model": models["classifier"], "input": "text",
                   "output": "label", "batch_size": 8}],
    }  # fmt: skip


def output_counts(fs: fsspec.AbstractFileSystem, root: str) -> Counter:
    fs.invalidate_cache()
    ids: Counter = Counter()
    for path in fs.find(root):
        if path.endswith(".parquet") and f"/{STATE}/" not in path:
            with fs.open(path, "rb") as handle:
                table = pq.read_table(handle)
            assert table.column("label").null_count == 0, path
            ids.update(table.column("id").to_pylist())
    return ids


def timed_run(spec: dict) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        run_job(parse_spec(spec))
    except (JobFailedError, OSError) as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


ABSORBED = {
    "slowdown-reads": [Fault("slowdown", times=4, method="GET", path="/in/")],
    "500-footers": [Fault("error500", times=3, method="HEAD", path="/in/")],
    "reset-listing": [Fault("reset", times=2, query="list-type")],
    "reset-mid-body": [Fault("reset_body", times=3, method="GET", path="/in/")],
    "500-staging": [Fault("error500", times=3, method="PUT", path="/_lakelabel/staging/")],
    "stall-records": [Fault("stall", times=2, method="PUT", path="/_lakelabel/shards/", seconds=2.5)],
    "slowdown-commits": [Fault("slowdown", times=3, method="PUT", path="/out/part-")],
    "outage-short": [Fault("outage", method="PUT", path="/_lakelabel/staging/", seconds=4.0)],
}


@pytest.mark.parametrize("case", list(ABSORBED))
def test_faults_within_the_budget_are_absorbed(
    case: str, proxy: FaultProxy, moto: fsspec.AbstractFileSystem, models: dict[str, str], ray_local: str,
    record_property,
) -> None:  # fmt: skip
    write_inputs(moto, f"faults/{case}/in")
    proxy.clear()
    injected, retries = proxy.total_injected, proxy.retries
    for fault in ABSORBED[case]:
        proxy.add(fault)
    seconds, error = timed_run(job(case, proxy, models, BUDGET))
    faults = proxy.total_injected - injected
    proxy.clear()
    assert error is None, f"{case}: {error}"
    assert faults > 0, f"{case}: no fault was injected"
    counts = output_counts(moto, f"faults/{case}/out")
    expected = [i for shard in range(SHARDS) for i in shard_ids(shard)]
    lost, duplicated = len(set(expected) - set(counts)), sum(n - 1 for n in counts.values())
    record_property("fault_figures", {"case": case, "injected": faults, "retries": proxy.retries - retries, "runs": 1,
                                      "lost": lost, "duplicated": duplicated, "longest": seconds,
                                      "outcome": "complete"})  # fmt: skip
    assert (lost, duplicated) == (0, 0)
    assert sorted(counts) == sorted(expected)
    assert seconds < BOUND
    assert json.loads(moto.cat_file(f"faults/{case}/out/_SUCCESS"))["complete"]
    assert not moto.exists(f"faults/{case}/out/{STATE}/lease.json")


BEYOND = {
    "outage-planning": (Fault("outage", query="list-type", seconds=4.0), "list_objects_v2"),
    "outage-staging": (Fault("outage", method="PUT", path="/_lakelabel/staging/", seconds=4.0), None),
    "outage-commit": (Fault("outage", method="PUT", path="/out/part-01", seconds=4.0), None),
    "outage-manifest": (Fault("outage", method="PUT", path="/out/_SUCCESS", seconds=4.0), "put_object"),
    # Outlasts the failed run itself (the test ends it once the run has ended): the run cannot remove its lease, and
    # the re-run takes it over at once.
    "outage-past-the-run": (Fault("outage", method="PUT", path="/out/part-01", seconds=BOUND), None),
}
LEASE_LEFT = {"outage-past-the-run"}


@pytest.mark.parametrize("case", list(BEYOND))
def test_an_outage_beyond_the_budget_ends_the_run_and_the_rerun_completes(
    case: str, proxy: FaultProxy, moto: fsspec.AbstractFileSystem, models: dict[str, str], ray_local: str,
    record_property,
) -> None:  # fmt: skip
    write_inputs(moto, f"faults/{case}/in")
    proxy.clear()
    injected, retries = proxy.total_injected, proxy.retries
    fault, operation = BEYOND[case]
    proxy.add(fault)
    first, error = timed_run(job(case, proxy, models, SHORT_BUDGET))
    faults = proxy.total_injected - injected
    assert error is not None, f"{case}: the run survived an outage longer than its budget"
    message = str(error)
    assert re.search(rf"storage endpoint {re.escape(proxy.url)}: \w+ faults\S* still failing after", message)
    assert "storage.retry_seconds: 1)" in message, message
    if operation is not None:
        assert f": {operation} " in message, message
    assert time.monotonic() < proxy.outage_until or case not in LEASE_LEFT, f"{case}: the outage ended before the run"
    while time.monotonic() < proxy.outage_until and case not in LEASE_LEFT:
        time.sleep(0.2)
    proxy.clear()  # ends the outage that outlasts the run
    if case in LEASE_LEFT:  # the others' runs may or may not have ended before their outage did
        assert moto.exists(f"faults/{case}/out/{STATE}/lease.json"), f"{case}: the failed run removed its lease"
    committed = output_counts(moto, f"faults/{case}/out")  # what the failed run committed is valid Parquet
    second, error = timed_run(job(case, proxy, models, BUDGET))  # the same job: its storage budget is no part of it
    assert error is None, f"{case}: the re-run failed: {error}"
    counts = output_counts(moto, f"faults/{case}/out")
    expected = [i for shard in range(SHARDS) for i in shard_ids(shard)]
    lost, duplicated = len(set(expected) - set(counts)), sum(n - 1 for n in counts.values())
    outcome = f"failed, {sum(committed.values())} rows committed; re-run complete"
    record_property("fault_figures", {"case": case, "injected": faults, "retries": proxy.retries - retries, "runs": 2,
                                      "lost": lost, "duplicated": duplicated, "longest": max(first, second),
                                      "outcome": outcome})  # fmt: skip
    assert (lost, duplicated) == (0, 0)
    assert sorted(counts) == sorted(expected)
    assert max(first, second) < BOUND
    assert json.loads(moto.cat_file(f"faults/{case}/out/_SUCCESS"))["complete"]
