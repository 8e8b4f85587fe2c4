"""SIGKILL a ``lakelabel run`` (driver and its Ray job) before, during and right after a table commit, then re-run.

The output table then holds every input row exactly once, each (run id, batch) is committed at most once, and each
shard file is registered once. The kill points are read from the run's own log: before any "registering" line
(shard files committed, the table not yet), at the "registering" line (the table commit under way), and at the
"table commit done" line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lakelabel.jobs.console.status import output_status
from lakelabel.jobs.output.layout import STATE
from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import load_spec
from tests.lake_tables import Place, moto_process, rows, with_credentials
from tests.test_exactly_once import records, run_until

FILES, ROWS = 8, 24


@pytest.fixture(scope="module")
def s3_process() -> str:
    with_credentials()
    with moto_process() as endpoint:
        yield endpoint


def kill_point(point: str, log: Path, fs, root: str) -> Callable[[], bool]:
    def text() -> str:
        return log.read_text() if log.exists() else ""

    if point == "before":
        return lambda: bool(records(fs, root)) and "registering" not in text()
    if point == "during":
        return lambda: "registering" in text()
    return lambda: "table commit done" in text()


@pytest.mark.parametrize("point", ["before", "during", "after"])
@pytest.mark.parametrize(("source", "sink", "where"), [("iceberg", "delta", "s3"), ("delta", "iceberg", "local")])
def test_killed_around_the_table_commit_rerun_commits_every_row_once(
    point: str, source: str, sink: str, where: str, tmp_path: Path, models: dict[str, str], ray_local: str,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    endpoint = request.getfixturevalue("s3_process") if where == "s3" else None
    place = Place(tmp_path, endpoint, bucket=f"crash-{point}-{source}")
    for part in range(FILES):
        place.append(source, "tickets", rows(part, ROWS))
    job = tmp_path / "job.json"
    job.write_text(json.dumps({
        "name": "crash",
        "input": place.block(source, "tickets"),
        "output": place.block(sink, "annotated") | {"commit_every": 3},
        "steps": [{"task": "text-classification", "model": models["classifier"], "input": "text",
                   "output": "label", "batch_size": 2}],
        **({"storage": {"endpoint_url": endpoint}} if endpoint else {}),
    }))  # fmt: skip
    spec = load_spec(job)
    from lakelabel.jobs.lake import open_sink

    layout = open_sink(spec, "").layout
    log = tmp_path / "killed.log"
    run_until(job, kill_point(point, log, layout.fs, layout.root), log, ray_local)

    killed_run = json.loads(layout.fs.cat_file(layout.run_file))["run_id"]
    before = records(layout.fs, layout.root)
    committed = [c for c in _commits(place, sink) if c.get("lakelabel.run-id") == killed_run]
    if point == "before":
        assert not committed, "the kill was meant to come before the first table commit"
    if point == "after":
        assert committed, "the kill was meant to come after a table commit"
    assert len(before) < FILES, "the kill came after every shard was committed"
    text, complete = output_status(str(job), spec.storage)
    assert not complete
    print(f"killed {point} ({source} -> {sink}, {where}): {len(before)} of {FILES} shard files committed, "
          f"{len(committed)} table commit(s) of the killed run")  # fmt: skip

    summary = run_job(spec)
    assert (summary.shards_skipped, summary.shards_processed) == (len(before), FILES - len(before))

    out = place.read(sink, "annotated")
    expected = place.read(source, "tickets")
    assert sorted(out.column("id").to_pylist()) == sorted(expected.column("id").to_pylist())
    commits = [c for c in _commits(place, sink) if "lakelabel.run-id" in c]
    keys = [(c["lakelabel.run-id"], c["lakelabel.batch"]) for c in commits]
    assert len(keys) == len(set(keys)), "a (run id, batch) was committed twice"
    assert sum(int(c["lakelabel.shards"]) for c in commits) == FILES, "each shard file registered exactly once"
    assert {c["lakelabel.run-id"] for c in commits} <= {killed_run, summary_run(layout)}
    text, complete = output_status(str(job), spec.storage)
    assert complete, text
    assert f"{FILES} of {FILES} committed shard file(s) registered, 0 awaiting" in text
    assert not layout.fs.exists(f"{layout.root}/{STATE}/staging")
    made = [(c["lakelabel.run-id"][-8:], c["lakelabel.batch"], c["lakelabel.shards"]) for c in commits]
    print(f"  re-run: {summary.shards_processed} processed, {summary.shards_skipped} already done; "
          f"table commits (run, batch, shards): {made}")  # fmt: skip


def _commits(place: Place, sink: str) -> list[dict[str, str]]:
    try:
        return place.commits(sink, "annotated")
    except Exception:  # noqa: BLE001 - the table may not exist yet
        return []


def summary_run(layout) -> str:
    layout.fs.invalidate_cache()
    return json.loads(layout.fs.cat_file(layout.success_file))["run"]["id"]
