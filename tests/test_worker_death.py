"""Rows that kill their worker process are isolated: exactly those rows get a null and a ``worker died`` error.

The operator is test-only (tests/fault_ops.py): it calls ``os._exit`` on rows whose text says ``KILL``, as a native
decoder crash or the OOM killer would end the process, where no ``except`` can see it.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakelabel.jobs.isolation import DIED, batch_key, run_isolating
from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import parse_spec
from lakelabel.operators import ERROR_COLUMN, registry
from tests import fault_ops

pytestmark = pytest.mark.faults

ROWS = 40
KILLERS = {0: {7, 23}, 1: {33}}


def texts(shard: int) -> list[str]:
    return [f"row {i} of shard {shard}" + (" KILL" if i in KILLERS.get(shard, ()) else "") for i in range(ROWS)]


class MemoryJournal:
    def __init__(self) -> None:
        self.running: set[str] = set()

    def begin(self, key: str) -> bool:
        if key in self.running:
            return True
        self.running.add(key)
        return False

    def end(self, key: str) -> None:
        self.running.discard(key)

    def forget(self, prefix: str) -> None:
        self.running = {key for key in self.running if not key.startswith(prefix)}


class Died(BaseException):
    """Stands for the process ending: nothing after it in this attempt runs."""


def test_splitting_finds_the_killer_rows_with_a_bounded_number_of_deaths() -> None:
    batch = pa.table({"__lakelabel_shard__": pa.array([0] * 32, pa.int32()),
                      "__lakelabel_row__": pa.array(range(32), pa.int64()), "x": list(range(32))})  # fmt: skip
    killers = {5, 6, 30}
    journal, deaths = MemoryJournal(), 0

    def call(rows: pa.Table) -> pa.Table:
        if killers & set(rows.column("x").to_pylist()):
            raise Died
        return rows.append_column("out", pa.array([v * 2 for v in rows.column("x").to_pylist()]))

    def on_death(rows: pa.Table) -> pa.Table:
        return rows.append_column("out", pa.nulls(rows.num_rows, pa.int64()))

    while True:  # each pass is one attempt of the batch on a fresh process, as Ray retries it after a death
        try:
            result = run_isolating(batch, call, journal, stage="model out", on_death=on_death)
            break
        except Died:
            deaths += 1
    assert result.column("x").to_pylist() == list(range(32))
    assert result.column("out").to_pylist() == [None if v in killers else v * 2 for v in range(32)]
    assert deaths <= len(killers) * (5 + 1)  # log2(32) + 1 per killer row
    assert not journal.running, "a finished batch leaves nothing in the journal"
    assert batch_key(batch) == "0:0+32"


def test_a_job_with_rows_that_kill_their_worker_completes_with_exactly_those_rows_errored(
    tmp_path: Path, models: dict[str, str], ray_local: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry.TASKS, fault_ops.TASK, "tests.fault_ops:Killer")
    for shard in KILLERS:
        (tmp_path / "in").mkdir(exist_ok=True)
        ids = [shard * 1000 + i for i in range(ROWS)]
        pq.write_table(pa.table({"id": ids, "text": texts(shard)}), tmp_path / "in" / f"part-{shard}.parquet")
    spec = parse_spec({
        "name": "killers", "input": {"uri": str(tmp_path / "in")}, "output": {"uri": str(tmp_path / "out")},
        "steps": [{"task": fault_ops.TASK, "model": models["classifier"], "input": "text", "output": "length"}],
    })  # fmt: skip
    summary = run_job(spec)
    assert summary.ok, summary.render()
    killed = sum(len(rows) for rows in KILLERS.values())
    assert (summary.rows_out, summary.row_errors) == (ROWS * len(KILLERS), killed)
    for shard, rows in KILLERS.items():
        table = pq.read_table(tmp_path / "out" / f"part-{shard}.parquet")
        assert table.column("text").to_pylist() == texts(shard)
        lengths, errors = table.column("length").to_pylist(), table.column(ERROR_COLUMN).to_pylist()
        for row, text in enumerate(texts(shard)):
            if row in rows:
                assert lengths[row] is None
                assert errors[row] == [{"step": "length", "message": DIED}]
            else:
                assert (lengths[row], errors[row]) == (len(text), [])
    print(f"worker death: {killed} killer rows of {ROWS * len(KILLERS)}: errored exactly, the rest annotated")


def test_a_batch_without_row_tags_is_known_by_its_rows() -> None:
    block = pa.table({"text": [f"row {i}" for i in range(64)]})
    first, same, other = block.slice(0, 32), pa.table({"text": [f"row {i}" for i in range(32)]}), block.slice(32, 32)
    assert batch_key(first) == batch_key(same)  # a retry of the same rows, however they are laid out
    assert batch_key(first) != batch_key(other)  # another slice of the same block
    assert batch_key(first).endswith("+32")


def test_annotate_isolates_the_rows_that_kill_their_worker(
    models: dict[str, str], ray_local: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    import lakelabel

    monkeypatch.setitem(registry.TASKS, fault_ops.TASK, "tests.fault_ops:Killer")
    ds = ray.data.from_items([{"id": i, "text": text} for i, text in enumerate(texts(0))])
    ds = lakelabel.annotate(ds, task=fault_ops.TASK, model=models["classifier"], input="text", output="length")
    rows = sorted(ds.take_all(), key=lambda row: row["id"])
    assert [row["id"] for row in rows] == list(range(ROWS))
    for row, text in zip(rows, texts(0), strict=True):
        if row["id"] in KILLERS[0]:
            assert (row["length"], list(row[ERROR_COLUMN])) == (None, [{"step": "length", "message": DIED}])
        else:
            assert (row["length"], list(row[ERROR_COLUMN])) == (len(text), [])
