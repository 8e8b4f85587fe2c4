"""The commit protocol without Ray: staged pieces, row coverage, a shard assembled once, atomic writes."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakelabel.jobs.lake.reading import read_shard
from lakelabel.jobs.output.commit import CommitError, Coverage, Units, commit_unit, stage
from lakelabel.jobs.output.layout import Layout, remove_temporaries, write_atomic
from lakelabel.jobs.output.provenance import spec_changes
from lakelabel.jobs.records import ROW_COLUMN, SHARD_COLUMN, ShardRecord
from lakelabel.operators import ERROR_COLUMN, ERROR_TYPE

LOCAL = fsspec.filesystem("file")


def annotated(shard: int, rows: list[int]) -> pa.Table:
    return pa.table(
        {
            "text": [f"s{shard} r{row}" for row in rows],
            "label": [row * 10 for row in rows],
            ERROR_COLUMN: pa.array([[] for _ in rows], ERROR_TYPE),
            SHARD_COLUMN: pa.array([shard] * len(rows), pa.int32()),
            ROW_COLUMN: pa.array(rows, pa.int64()),
        }
    )


def layout(tmp_path: Path) -> Layout:
    return Layout(fs=LOCAL, root=str(tmp_path / "out"), input_root=str(tmp_path / "in"))


def record(tmp_path: Path, key: str, rows: int) -> ShardRecord:
    return ShardRecord(key=key, input=str(tmp_path / "in" / f"{key}.parquet"), input_bytes=1, spec_hash="h",
                       run_id="r", rows_in=rows)  # fmt: skip


def units(tmp_path: Path, shards: dict[str, int], columns: list[str] | None = None) -> Units:
    """Each shard its own unit, numbered in order."""
    records = [record(tmp_path, key, rows) for key, rows in shards.items()]
    names = columns or ["text", "label", ERROR_COLUMN]
    return Units(list(shards), [[index] for index in range(len(shards))], records, [names], [0] * len(shards))


def test_read_shard_tags_rows_with_shard_and_row_number(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": [str(i) for i in range(10)], "x": list(range(10))}), path, row_group_size=4)
    blocks = list(read_shard(LOCAL, str(path), 3, ["text"], block_rows=3))
    assert [block.num_rows for block in blocks] == [3, 3, 3, 1]
    table = pa.concat_tables(blocks)
    assert table.column_names == ["text", SHARD_COLUMN, ROW_COLUMN]
    assert table.column(ROW_COLUMN).to_pylist() == list(range(10))
    assert set(table.column(SHARD_COLUMN).to_pylist()) == {3}


def test_coverage_completes_a_shard_once_every_row_is_staged(tmp_path: Path) -> None:
    out = layout(tmp_path)
    coverage = Coverage({0: 6, 1: 2})
    plan = units(tmp_path, {"a": 6, "b": 2})
    mixed = pa.concat_tables([annotated(0, [4, 0, 5]), annotated(1, [1])])
    assert coverage.add(stage(mixed, out, plan)) == []
    assert coverage.staged_rows(0) == 3
    assert coverage.add(stage(annotated(0, [1, 2, 3]), out, plan)) == [0]
    assert coverage.add(stage(annotated(0, [2]), out, plan)) == [], "a shard completes once"
    assert coverage.add(stage(annotated(1, [0]), out, plan)) == [1]
    assert sorted(Path(p).name for p in LOCAL.find(out.staging_dir("a"))) == [
        "00000000.000000000000-00000000.000000000005.arrow",  # rows 0, 4, 5: named by the first and last row
        "00000000.000000000001-00000000.000000000003.arrow",
        "00000000.000000000002-00000000.000000000002.arrow",
    ]


def test_commit_keeps_each_row_once_in_row_order_and_writes_the_record_last(tmp_path: Path) -> None:
    out = layout(tmp_path)
    plan = units(tmp_path, {"day=1/a": 4})
    stage(annotated(0, [3, 1]), out, plan)
    stage(annotated(0, [0, 2, 3]), out, plan)  # row 3 staged twice, as a retried task would
    [done] = commit_unit(out, plan, 0)
    table = pq.read_table(out.output_file("day=1/a"))
    assert table.column_names == ["text", "label", ERROR_COLUMN]
    assert table.column("text").to_pylist() == ["s0 r0", "s0 r1", "s0 r2", "s0 r3"]
    assert (done.rows_out, done.row_errors, done.files) == (4, 0, ["day=1/a.parquet"])
    assert out.read_json(out.record_file("day=1/a"))["rows_out"] == 4
    assert not LOCAL.exists(out.staging_dir("day=1/a"))


def test_commit_refuses_a_shard_with_missing_rows(tmp_path: Path) -> None:
    out = layout(tmp_path)
    plan = units(tmp_path, {"a": 4}, ["text"])
    stage(annotated(0, [0, 1, 3]), out, plan)
    with pytest.raises(CommitError, match=r"a\.parquet: 3 distinct row\(s\) staged, it has 4"):
        commit_unit(out, plan, 0)
    assert not Path(out.output_file("a")).exists()
    assert out.read_json(out.record_file("a")) is None


def test_write_atomic_replaces_whole_files_and_leftovers_are_removable(tmp_path: Path) -> None:
    target = str(tmp_path / "d" / "f.json")
    write_atomic(LOCAL, target, b"one")
    write_atomic(LOCAL, target, b"two")
    assert Path(target).read_bytes() == b"two"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f.json"]
    (tmp_path / "d" / ".f.json.tmp-dead").write_bytes(b"half")  # what a killed write leaves
    remove_temporaries(LOCAL, target)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f.json"]


def test_layout_mirrors_the_input_tree(tmp_path: Path) -> None:
    out = layout(tmp_path)
    key = out.key(str(tmp_path / "in" / "day=2" / "part-7.parquet"))
    assert key == "day=2/part-7"
    assert out.output_file(key) == str(tmp_path / "out" / "day=2" / "part-7.parquet")
    assert out.record_file(key) == str(tmp_path / "out" / "_lakelabel" / "shards" / "day=2" / "part-7.json")


def test_spec_changes_name_each_field() -> None:
    old = {"input": {"uri": "a", "columns": None}, "steps": [{"model": "m", "options": {}}]}
    new = {"input": {"uri": "a", "columns": ["t"]}, "steps": [{"model": "n", "options": {"top_k": 2}}]}
    assert spec_changes(old, new) == [
        "input.columns: None -> ['t']",
        "steps[0].model: 'm' -> 'n'",
        "steps[0].options.top_k: None -> 2",
    ]
    assert spec_changes(old, old) == []
    assert spec_changes(old, {**old, "steps": [*old["steps"], {"model": "x"}]})[0].startswith("steps: ")
