"""Commit units: thousands of tiny files bundled into few units, a big file split by row-group ranges.

The planning and the commit protocol are checked without Ray; then whole jobs on a local Ray: every row once, a
run killed mid-way resumed, a split file resumed per unit with rows in the input's order.
"""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakelabel.jobs.console.status import output_status
from lakelabel.jobs.lake.reading import read_unit
from lakelabel.jobs.lake.shards import read_footer
from lakelabel.jobs.lake.units import Part, bundle, split_parts
from lakelabel.jobs.output.commit import Units, stage
from lakelabel.jobs.output.layout import Layout
from lakelabel.jobs.plan import make_plan
from lakelabel.jobs.records import ROW_COLUMN, SHARD_COLUMN, ShardRecord
from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import SpecError, load_spec, parse_spec
from lakelabel.operators import ERROR_COLUMN, ERROR_TYPE
from tests.test_exactly_once import run_until

LOCAL = fsspec.filesystem("file")


def tiny_files(root: Path, files: int, rows: int) -> list[tuple[int, str | None]]:
    """``files`` Parquet files of ``rows`` rows each under ``root/day=N/``; returns every (id, text) written."""
    written = []
    for index in range(files):
        ids = [index * 100 + row for row in range(rows)]
        texts = [None if i % 37 == 3 else f"file {index} row {i}: rain over the harbour" for i in ids]
        path = root / f"day={index % 3}" / f"part-{index:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "text": pa.array(texts, pa.string())}), path)
        written += zip(ids, texts, strict=True)
    return written


def big_file(path: Path, groups: int, rows: int) -> pa.Table:
    """One file of ``groups`` row groups of ``rows`` rows."""
    ids = list(range(groups * rows))
    table = pa.table({"id": pa.array(ids, pa.int64()), "text": [f"line {i} of the long report" for i in ids]})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=rows)
    return table


def output_rows(root: Path) -> list[tuple[int, str | None]]:
    files = [p for p in LOCAL.find(str(root)) if p.endswith(".parquet") and "/_lakelabel/" not in p]
    table = pa.concat_tables([pq.read_table(path) for path in files])
    return list(zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True))


def job(tmp_path: Path, models: dict[str, str], **source: object) -> dict:
    return {
        "name": "units",
        "input": {"uri": str(tmp_path / "in"), **source},
        "output": {"uri": str(tmp_path / "out")},
        "steps": [{"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label",
                   "batch_size": 16}],
    }  # fmt: skip


# --- planning, without Ray ------------------------------------------------------------------------------------


def test_thousands_of_tiny_files_become_few_units_each_file_once(tmp_path: Path) -> None:
    tiny_files(tmp_path / "in", 2000, 3)
    shards = [read_footer(LOCAL, str(path)) for path in sorted((tmp_path / "in").rglob("*.parquet"))]
    parts = split_parts(shards, lambda path: path, split_bytes=1 << 30)
    units = bundle(parts, bundle_bytes=64 * min(s.bytes for s in shards), bundle_rows=30)
    assert len(units) == 200, "30 rows per unit, 3 rows per file: 10 files a unit"
    assert [part.path for unit in units for part in unit.parts] == [shard.path for shard in shards]
    assert all(unit.rows <= 30 for unit in units)
    by_bytes = bundle(parts, bundle_bytes=5 * max(s.bytes for s in shards), bundle_rows=10_000)
    assert all(unit.bytes <= 5 * max(s.bytes for s in shards) for unit in by_bytes)
    assert 400 <= len(by_bytes) < 500
    assert bundle(parts, bundle_bytes=min(s.bytes for s in shards), bundle_rows=30)[0].parts == (parts[0],), (
        "a file at the bundle size is a unit of its own"
    )


def test_a_file_above_the_split_size_becomes_row_group_ranges_with_deterministic_names(tmp_path: Path) -> None:
    big_file(tmp_path / "in" / "big.parquet", groups=24, rows=50)
    small = tmp_path / "in" / "small.parquet"
    pq.write_table(pa.table({"id": [1], "text": ["x"]}), small)
    shards = [read_footer(LOCAL, str(tmp_path / "in" / name)) for name in ("big.parquet", "small.parquet")]
    split = shards[0].bytes // 6
    parts = split_parts(shards, lambda path: Path(path).stem, split_bytes=split)
    assert parts == split_parts(shards, lambda path: Path(path).stem, split_bytes=split), "deterministic"
    big = [part for part in parts if part.path.endswith("big.parquet")]
    assert 5 <= len(big) <= 8
    assert [part.key for part in big][:2] == [f"big.rg00000-{big[0].end_group - 1:05d}",
                                              f"big.rg{big[1].first_group:05d}-{big[1].end_group - 1:05d}"]  # fmt: skip
    assert [(p.first_group, p.end_group) for p in big] == list(
        zip([0] + [p.end_group for p in big[:-1]], [p.end_group for p in big], strict=True)
    ), "consecutive, covering every row group"
    assert big[-1].end_group == 24
    assert sum(part.rows for part in big) == 1200
    assert [part.first_row for part in big] == [sum(p.rows for p in big[:i]) for i in range(len(big))]
    assert parts[-1].key == "small"
    assert parts[-1].whole
    units = bundle(parts, bundle_bytes=1 << 20, bundle_rows=10_000)
    assert [unit.parts for unit in units[: len(big)]] == [(part,) for part in big], "a range is a unit alone"


def test_bundle_and_split_sizes_are_validated_naming_the_field(tmp_path: Path) -> None:
    spec = parse_spec({**job(tmp_path, {"classifier": "m"}), "steps": [{"task": "text-classification",
                       "model": "m", "input": "text", "output": "label"}]})  # fmt: skip
    assert (spec.bundle_bytes, spec.split_bytes) == (32 << 20, 256 << 20)
    for field, value in (("bundle_bytes", 0), ("split_bytes", "1GB"), ("split_bytes", 1.5), ("bundle_bytes", True)):
        raw = job(tmp_path, {"classifier": "m"}, **{field: value})
        with pytest.raises(SpecError, match=rf"input\.{field}: must be an integer >= 1"):
            parse_spec(raw)


def _records(keys: list[str], rows: list[int]) -> list[ShardRecord]:
    return [ShardRecord(key=k, input=f"/in/{k}.parquet", input_bytes=1, spec_hash="h", run_id="r", rows_in=n)
            for k, n in zip(keys, rows, strict=True)]  # fmt: skip


def _annotated(parts: dict[int, int]) -> pa.Table:
    numbers = [part for part, rows in parts.items() for _ in range(rows)]
    rows = [row for rows in parts.values() for row in range(rows)]
    return pa.table({
        "text": [f"p{p} r{r}" for p, r in zip(numbers, rows, strict=True)],
        ERROR_COLUMN: pa.array([[] for _ in rows], ERROR_TYPE),
        SHARD_COLUMN: pa.array(numbers, pa.int32()),
        ROW_COLUMN: pa.array(rows, pa.int64()),
    })  # fmt: skip


def test_a_unit_back_in_one_batch_commits_without_staging(tmp_path: Path) -> None:
    out = Layout(fs=LOCAL, root=str(tmp_path / "out"), input_root="/in")
    units = Units(["a.bundle-x", "c"], [[0, 1], [2]], _records(["a", "b", "c"], [2, 3, 2]), [["text", ERROR_COLUMN]],
                  [0, 0, 0])  # fmt: skip
    result = stage(_annotated({1: 3, 0: 2, 2: 1}).take([4, 0, 2, 1, 3, 5]), out, units)
    [payload] = [value for value in result.column("committed").to_pylist() if value]
    assert [r["key"] for r in json.loads(payload)] == ["a", "b"]
    assert pq.read_table(out.output_file("b")).column("text").to_pylist() == ["p1 r0", "p1 r1", "p1 r2"]
    assert pq.read_table(out.output_file("a")).column_names == ["text", ERROR_COLUMN]
    bundle_record = out.read_json(out.record_file("a.bundle-x"))
    assert [r["key"] for r in bundle_record["records"]] == ["a", "b"], "one record object for the bundle"
    assert not LOCAL.exists(out.staging_dir("a.bundle-x")), "no staging round trip"
    assert LOCAL.exists(out.staging_dir("c")), "unit c is not all there: staged"
    assert not LOCAL.exists(out.output_file("c"))
    assert sorted(r["key"] for r in out.read_records()) == ["a", "b"]


def test_an_unreadable_file_in_a_bundle_is_left_out_and_the_others_read(tmp_path: Path) -> None:
    tiny_files(tmp_path / "in", 4, 3)
    paths = sorted((tmp_path / "in").rglob("*.parquet"))
    paths[1].write_bytes(b"PAR1 not really")
    shards = [read_footer(LOCAL, str(p)) for p in paths if p != paths[1]]
    parts = [Part(key=str(i), shard=shard, rows=shard.rows) for i, shard in enumerate(shards)]
    parts.insert(1, Part(key="bad", shard=type(shards[0])(str(paths[1]), 3, 10, shards[0].schema), rows=3))
    bad: dict[int, str] = {}
    blocks = list(read_unit(LOCAL, list(enumerate(parts)), None, 1000, lambda i, exc: bad.setdefault(i, str(exc))))
    table = pa.concat_tables(blocks)
    assert list(bad) == [1]
    assert sorted(set(table.column(SHARD_COLUMN).to_pylist())) == [0, 2, 3]
    assert table.num_rows == 9


# --- whole jobs on a local Ray ----------------------------------------------------------------------------------


def test_tiny_files_are_bundled_and_every_row_lands_once(
    tmp_path: Path, models: dict[str, str], ray_local: None
) -> None:
    written = tiny_files(tmp_path / "in", 600, 2)
    spec = parse_spec(job(tmp_path, models))
    plan = make_plan(spec)
    assert len(plan.units(plan.parts())) == 75, "16 rows a batch, 2 rows a file: 8 files a unit"
    assert "75 commit unit(s) to process: 75 bundle(s) of small files" in plan.render()
    summary = run_job(spec)
    assert (summary.shards_processed, summary.units_processed, summary.rows_out) == (600, 75, 1200)
    assert sorted(output_rows(tmp_path / "out"), key=str) == sorted(written, key=str)
    out = plan.layout
    assert all(Path(out.output_file(out.key(shard.path))).exists() for shard in plan.shards), "one file per input"
    objects = out.read_record_files()
    assert len(objects) == 75
    assert sum(len(records) for records in objects.values()) == 600
    manifest = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    assert manifest["totals"]["shards"] == 600
    assert manifest["run"]["units_processed"] == 75
    assert len({shard["unit"] for shard in manifest["shards"]}) == 75
    text, complete = output_status(str(tmp_path / "out"), spec.storage)
    assert complete
    assert "600 done, 0 pending, 0 quarantined" in text
    again = run_job(spec)
    assert (again.shards_processed, again.shards_skipped) == (0, 600)


def test_a_killed_run_of_bundles_resumes_with_every_row_once(
    tmp_path: Path, models: dict[str, str], ray_local: str
) -> None:
    written = tiny_files(tmp_path / "in", 1000, 2)
    raw = job(tmp_path, models)
    raw["steps"][0]["batch_size"] = 8
    path = tmp_path / "job.json"
    path.write_text(json.dumps(raw))
    out = Layout(fs=LOCAL, root=str(tmp_path / "out"), input_root=str(tmp_path / "in"))

    def committed() -> int:
        LOCAL.invalidate_cache()
        return len(out.read_records()) if LOCAL.exists(out.records_root) else 0

    run_until(path, lambda: committed() >= 40, tmp_path / "killed.log", ray_local)
    before = {r["key"]: r["run_id"] for r in out.read_records()}
    assert 40 <= len(before) < 1000, "the kill came after every file was committed"
    text, complete = output_status(str(tmp_path / "out"), load_spec(path).storage)
    assert not complete
    assert f"{len(before)} done, {1000 - len(before)} pending" in text
    summary = run_job(load_spec(path))
    assert (summary.shards_skipped, summary.shards_processed) == (len(before), 1000 - len(before))
    assert sorted(output_rows(tmp_path / "out"), key=str) == sorted(written, key=str), "every row exactly once"
    after = {r["key"]: r["run_id"] for r in out.read_records()}
    assert len(after) == 1000
    assert {k: after[k] for k in before} == before, "committed files were not redone"
    assert not LOCAL.exists(out.staging_root)
    assert output_status(str(tmp_path / "out"), load_spec(path).storage)[1]


def test_a_split_file_commits_per_unit_in_row_order_and_resumes_per_unit(
    tmp_path: Path, models: dict[str, str], ray_local: None
) -> None:
    table = big_file(tmp_path / "in" / "big.parquet", groups=20, rows=40)
    split = (tmp_path / "in" / "big.parquet").stat().st_size // 5
    spec = parse_spec(job(tmp_path, models, split_bytes=split))
    plan = make_plan(spec)
    parts = plan.parts()
    assert len(parts) >= 4
    assert "row-group range(s) of big files" in plan.render()
    summary = run_job(spec)
    assert (summary.shards_processed, summary.units_processed, summary.rows_out) == (1, len(parts), 800)
    names = sorted(p.name for p in (tmp_path / "out").glob("*.parquet"))
    assert names == [f"{part.key}.parquet" for part in parts]
    assert all(name.startswith("big.rg") for name in names)
    joined = pa.concat_tables([pq.read_table(tmp_path / "out" / name) for name in names])
    assert joined.column("id").to_pylist() == table.column("id").to_pylist(), "the input's row order"
    assert joined.column("text").to_pylist() == table.column("text").to_pylist()
    manifest = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    assert [(s["key"], s["row_groups"], s["first_row"]) for s in manifest["shards"]] == [
        (part.key, [part.first_group, part.end_group], part.first_row) for part in parts
    ]

    # What a run killed after all but one unit's record leaves: no manifest (a run removes it as it starts), and
    # that unit's file without its record.
    out = plan.layout
    lost = parts[2]
    Path(out.record_file(lost.key)).unlink()
    Path(out.success_file).unlink()
    kept = {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in names if name != f"{lost.key}.parquet"}
    text, complete = output_status(str(tmp_path / "out"), spec.storage)
    assert not complete
    assert f"{len(parts) - 1} done, 1 pending" in text
    assert f"pending {lost.key}" in text
    again = run_job(spec)
    assert (again.units_processed, again.rows_in) == (1, lost.rows)
    assert {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in kept} == kept, "done units untouched"
    rejoined = pa.concat_tables([pq.read_table(tmp_path / "out" / name) for name in names])
    assert rejoined.column("id").to_pylist() == table.column("id").to_pylist()
    assert output_status(str(tmp_path / "out"), spec.storage)[1]


# --- object-store requests, counted where they are sent and seen by the server ------------------------------------

_METHOD = {"GetObject": "GET", "ListObjectsV2": "GET", "HeadObject": "HEAD", "HeadBucket": "HEAD",
           "PutObject": "PUT", "DeleteObject": "DELETE", "DeleteObjects": "POST", "CreateMultipartUpload": "POST",
           "UploadPart": "PUT", "CompleteMultipartUpload": "POST", "AbortMultipartUpload": "DELETE",
           "CopyObject": "PUT", "GetBucketLocation": "GET"}  # fmt: skip


def test_requests_by_kind_are_the_requests_the_endpoint_received(
    s3_endpoint: str, models: dict[str, str], ray_local: None, tmp_path: Path
) -> None:
    from tests.fault_proxy import FaultProxy

    moto = fsspec.filesystem("s3", endpoint_url=s3_endpoint, skip_instance_cache=True)
    if not moto.exists("units"):
        moto.mkdir("units")
    tiny_files(tmp_path / "in", 120, 2)
    for path in sorted((tmp_path / "in").rglob("*.parquet")):
        moto.put_file(str(path), f"units/in/{path.relative_to(tmp_path / 'in')}")
    with FaultProxy(s3_endpoint) as proxy:  # no faults: it forwards every request and counts them
        raw = job(tmp_path, models)
        raw |= {"input": {"uri": "s3://units/in/"}, "output": {"uri": "s3://units/out/"},
                "storage": {"endpoint_url": proxy.url}}  # fmt: skip
        summary = run_job(parse_spec(raw))
        seen = dict(proxy.by_method)
    assert summary.units_processed == 15
    assert set(summary.requests) <= set(_METHOD), f"a request kind this test does not map: {summary.requests}"
    by_method: dict[str, int] = {}
    for kind, count in summary.requests.items():
        by_method[_METHOD[kind]] = by_method.get(_METHOD[kind], 0) + count
    assert by_method == seen, f"counted {summary.requests}, the endpoint saw {seen}"
    assert summary.requests["PutObject"] >= 120 + 15, "one PUT per output file and one per unit's records at least"
    print(
        f"120 files in 15 units on loopback S3: {summary.requests_per_shard:.2f} requests per shard, {summary.requests}"
    )
    manifest = json.loads(moto.cat_file("units/out/_SUCCESS"))
    assert sum(manifest["run"]["requests"].values()) < sum(summary.requests.values()), "the manifest's ends earlier"
