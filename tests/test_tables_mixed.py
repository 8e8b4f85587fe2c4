"""A Parquet prefix into an existing Iceberg table (its missing columns added in the data's own commit), and an
Iceberg table into a Parquet prefix."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakelabel.jobs.console.status import output_status
from lakelabel.jobs.output.state import OutputExistsError
from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import parse_spec
from tests.lake_tables import Place, rows

CLASSIFY = {"task": "text-classification", "input": "text", "output": "label"}


def test_a_prefix_into_an_existing_iceberg_table_adds_its_columns_in_the_data_commit(
    tmp_path: Path, models: dict[str, str], ray_local: None
) -> None:
    place = Place(tmp_path, None, bucket="unused")
    place.append("iceberg", "annotated", rows(9))  # someone else's rows, without the annotation columns
    for part in range(2):
        (tmp_path / "in").mkdir(exist_ok=True)
        pq.write_table(rows(part), tmp_path / "in" / f"part-{part}.parquet")
    spec = parse_spec({
        "name": "mixed",
        "input": {"uri": str(tmp_path / "in")},
        "output": place.block("iceberg", "annotated"),
        "steps": [CLASSIFY | {"model": models["classifier"]}],
    })  # fmt: skip
    summary = run_job(spec)
    assert summary.shards_processed == 2
    table = place.catalog().load_table("lake.annotated")
    assert (
        f"table: iceberg table lake.annotated (catalog sql) at snapshot {table.current_snapshot().snapshot_id}: "
        f"1 commit(s) by this run, 2 file(s) and {2 * rows(0).num_rows} row(s) registered"
    ) in summary.render()

    snapshots = table.snapshots()
    assert len(snapshots) == 2, "the schema change is part of the data commit, not a commit of its own"
    assert snapshots[-1].summary["lakelabel.shards"] == "2"
    assert [field.name for field in table.schema().fields] == ["id", "text", "label", "lakelabel_errors"]
    out = table.scan().to_arrow()
    assert sorted(out.column("id").to_pylist()) == sorted(
        rows(9).column("id").to_pylist() + rows(0).column("id").to_pylist() + rows(1).column("id").to_pylist()
    )
    theirs = out.filter(pa.compute.greater_equal(out.column("id"), 9000))
    assert theirs.column("label").null_count == theirs.num_rows  # their rows get nulls in the new columns
    ours = out.filter(pa.compute.less(out.column("id"), 9000))
    assert ours.column("label").null_count == ours.column("text").null_count

    pq.write_table(rows(5, 30), tmp_path / "in" / "part-1.parquet")  # rewritten: its old output is in the table
    with pytest.raises(OutputExistsError) as refused:
        run_job(spec)
    assert "part-1.parquet" in str(refused.value)
    assert "refusing to rewrite files a table references" in str(refused.value)
    assert place.read("iceberg", "annotated").num_rows == out.num_rows, "the table still reads whole"


def test_an_iceberg_table_into_a_parquet_prefix(tmp_path: Path, models: dict[str, str], ray_local: None) -> None:
    place = Place(tmp_path, None, bucket="unused")
    for part in range(2):
        place.append("iceberg", "tickets", rows(part))
    spec = parse_spec({
        "name": "mixed",
        "input": place.block("iceberg", "tickets"),
        "output": {"uri": str(tmp_path / "out")},
        "steps": [CLASSIFY | {"model": models["classifier"]}],
    })  # fmt: skip
    assert run_job(spec).shards_processed == 2
    out = pq.read_table(tmp_path / "out", partitioning=None)
    assert sorted(out.column("id").to_pylist()) == sorted(place.read("iceberg", "tickets").column("id").to_pylist())
    snapshot = place.commits("iceberg", "tickets")[-1]["position"]
    text, complete = output_status(str(tmp_path / "out"), spec.storage)
    assert complete, text
    assert f"input: format iceberg, snapshot {snapshot}, table lake.tickets" in text
    place.append("iceberg", "tickets", rows(2))
    later = run_job(spec)
    assert (later.shards_processed, later.shards_skipped) == (1, 2)


@pytest.mark.parametrize("sink", ["iceberg", "delta"])
def test_a_concurrent_writer_to_the_output_table_loses_nothing_and_nothing_is_doubled(
    sink: str, tmp_path: Path, models: dict[str, str], ray_local: None, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError
    from pyiceberg.exceptions import CommitFailedException

    place = Place(tmp_path, None, bucket="unused")
    for part in range(6):
        place.append("iceberg", "tickets", rows(part))
    spec = parse_spec({
        "name": "concurrent",
        "input": place.block("iceberg", "tickets"),
        "output": place.block(sink, "annotated") | {"commit_every": 1},
        "steps": [CLASSIFY | {"model": models["classifier"]}],
    })  # fmt: skip
    place.append(sink, "annotated", rows(50, 1))  # the table exists, so both writers append to it
    stop, written, their_retries = threading.Event(), [], []

    def other_writer() -> None:
        catalog = place.catalog()
        batch = 51
        while not stop.is_set():
            try:
                if sink == "iceberg":
                    catalog.load_table("lake.annotated").append(rows(batch, 1))
                else:
                    write_deltalake(place.uri("annotated"), rows(batch, 1), mode="append")
            except (CommitFailedException, CommitFailedError):
                their_retries.append(batch)
                continue
            written.append(batch)
            batch += 1
            stop.wait(0.02)

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        with caplog.at_level("INFO", logger="lakelabel"):
            summary = run_job(spec)
    finally:
        stop.set()
        writer.join()
    assert summary.shards_processed == 6
    out = place.read(sink, "annotated")
    ids = out.column("id").to_pylist()
    expected = place.read("iceberg", "tickets").column("id").to_pylist() + [b * 1000 for b in [50, *written]]
    assert sorted(ids) == sorted(expected), "every row of both writers exactly once"
    ours = [s for s in place.commits(sink, "annotated") if "lakelabel.run-id" in s]
    assert sum(int(c["lakelabel.shards"]) for c in ours) == 6
    retried = sum("another writer committed first" in r.getMessage() for r in caplog.records)
    print(f"{sink}: other writer: {len(written)} commits ({len(their_retries)} retried); "
          f"lakelabel: {len(ours)} commits, {retried} retried after a conflict")  # fmt: skip
