"""The shape sweep: the same rows as 8 files, as 2,000 files and as one big file, on local disk and loopback S3.

    python -m benchmarks.shapes                          # 200,000 short rows, the tiny model, local disk and S3
    python -m benchmarks.shapes --rows 50000 --stores local
    python -m benchmarks.shapes --memory                 # one file of R rows, then one of 10 x R rows

Each run is ``lakelabel run`` as its own process, timed from outside, start-up included. Requests (by kind and
per shard) are the run's own count from the manifest (``jobs/lake/storage.py`` counts what is sent; S3 runs only).
Memory is the PSS of the job's process tree at its peak and the largest any one of its processes reached (the
figure that says whether a worker grows with its input). The S3 endpoint is a moto server on loopback, started
here, as the tests do. ``input.split_bytes`` is set to the size of one of the 8 files, so the big file is split
into about as many units as the 8-file shape has files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from benchmarks import job
from benchmarks.corpus import texts
from benchmarks.models import tiny_classifier
from lakelabel.jobs.demo import loopback_s3

SHAPES = {"8 files": 8, "2,000 files": 2000, "1 big file": 1}
_S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
_MIB = 1 << 20


def write_shape(directory: Path, corpus: list[str], files: int) -> list[Path]:
    """``corpus`` as ``files`` Parquet files (one file: 64 row groups, so it can be split)."""
    directory.mkdir(parents=True, exist_ok=True)
    per_file = -(-len(corpus) // files)
    paths = []
    for index, start in enumerate(range(0, len(corpus), per_file)):
        chunk = corpus[start : start + per_file]
        table = pa.table({"id": pa.array(range(start, start + len(chunk)), pa.int64()), "text": pa.array(chunk)})
        path = directory / f"part-{index:05d}.parquet"
        pq.write_table(table, path, row_group_size=max(1, -(-len(chunk) // 64)) if files == 1 else None)
        paths.append(path)
    return paths


def _job_file(
    work: Path, model: Path, input_uri: str, output_uri: str, *, split_bytes: int, endpoint: str | None
) -> Path:
    spec: dict[str, Any] = {
        "name": "shapes",
        "input": {"uri": input_uri, "split_bytes": split_bytes},
        "output": {"uri": output_uri, "mode": "overwrite"},
        "steps": [{"task": "text-classification", "model": str(model), "input": "text", "output": "label"}],
    }
    if endpoint:
        spec["storage"] = {"endpoint_url": endpoint}
    path = work / "job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def run_shape(
    name: str, source: Path, work: Path, model: Path, *, split_bytes: int, endpoint: str | None
) -> dict[str, Any]:
    """One ``lakelabel run`` over ``source`` (uploaded to the loopback S3 first when ``endpoint``)."""
    files = sorted(source.glob("*.parquet"))
    if endpoint:
        os.environ.update(_S3_ENV)  # moto's test credentials, for this process's uploads and the job's
        fs = fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)
        bucket = f"shapes-{len(files)}-{work.name}".lower()
        fs.mkdir(bucket)
        fs.put([str(p) for p in files], f"{bucket}/in/")
        input_uri, output_uri = f"s3://{bucket}/in/", f"s3://{bucket}/out/"
    else:
        fs, input_uri, output_uri = fsspec.filesystem("file"), str(source), str(work / "out")
    spec = _job_file(work, model, input_uri, output_uri, split_bytes=split_bytes, endpoint=endpoint)
    run = job.run_process(
        [sys.executable, "-m", "lakelabel", "run", str(spec)], env={"HF_HUB_OFFLINE": "1"}, interval_s=0.5
    )
    manifest = json.loads(fs.cat_file(f"{output_uri.removeprefix('s3://').rstrip('/')}/_SUCCESS"))
    requests = manifest["run"]["requests"]
    return {
        "shape": name,
        "store": "s3" if endpoint else "local",
        "files": len(files),
        "rows": manifest["totals"]["rows_out"],
        "units": manifest["run"]["units_processed"],
        "seconds": round(run.seconds, 1),
        "requests": requests,
        "requests_per_shard": round(sum(requests.values()) / len(files), 2),
        "peak_mib": round(run.peak_bytes / _MIB),
        "largest_mib": round(run.largest_bytes / _MIB),
        "largest_process": run.largest_name,
    }


def sweep(rows: int, stores: list[str], work: Path) -> list[dict[str, Any]]:
    """Every shape on every store."""
    model = tiny_classifier(work / "tiny")
    corpus = texts(rows, median_words=8, spread=0.5)
    sources = {name: write_shape(work / "data" / str(files), corpus, files) for name, files in SHAPES.items()}
    split_bytes = sources["8 files"][0].stat().st_size
    results = []
    with loopback_s3() as endpoint:
        for store in stores:
            for name, paths in sources.items():
                place = work / f"{store}-{SHAPES[name]}"
                place.mkdir(parents=True, exist_ok=True)
                result = run_shape(name, paths[0].parent, place, model, split_bytes=split_bytes,
                                   endpoint=endpoint if store == "s3" else None)  # fmt: skip
                print(_line(result), flush=True)
                results.append(result)
    return results


def memory(rows: int, work: Path) -> list[dict[str, Any]]:
    """One file of ``rows`` rows, then one of ten times as many, split at the same size: the peaks side by side."""
    model = tiny_classifier(work / "tiny")
    small = write_shape(work / "mem-1x", texts(rows, median_words=8, spread=0.5), 1)[0]
    split_bytes = small.stat().st_size // 8
    write_shape(work / "mem-10x", texts(rows * 10, median_words=8, spread=0.5), 1)
    results = []
    for size in ("1x", "10x"):
        place = work / f"mem-run-{size}"
        place.mkdir(parents=True, exist_ok=True)
        result = run_shape(
            f"1 file, {size}", work / f"mem-{size}", place, model, split_bytes=split_bytes, endpoint=None
        )
        print(_line(result), flush=True)
        results.append(result)
    return results


def _line(result: dict[str, Any]) -> str:
    requests = f", {result['requests_per_shard']:.2f} requests/shard" if result["requests"] else ""
    return (
        f"{result['shape']:<12} {result['store']:<5} {result['files']:>5} file(s) {result['units']:>4} unit(s) "
        f"{result['rows']:>8} rows {result['seconds']:>7.1f} s{requests}; peak {result['peak_mib']} MiB, "
        f"largest process {result['largest_mib']} MiB ({result['largest_process']})"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the sweep (or the memory pair) and print one line per run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--stores", nargs="+", choices=("local", "s3"), default=["local", "s3"])
    parser.add_argument("--memory", action="store_true", help="one file of --rows rows, then one 10x larger")
    parser.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="lakelabel-shapes-") as scratch:
        work = args.work or Path(scratch)
        results = memory(args.rows, work) if args.memory else sweep(args.rows, args.stores, work)
    if args.memory:
        ratio = results[1]["largest_mib"] / max(results[0]["largest_mib"], 1)
        print(f"largest process, 10x the file: {ratio:.2f}x")
    else:
        by = {(r["store"], r["shape"]): r["seconds"] for r in results}
        for store in args.stores:
            print(f"{store}: 2,000 files take {by[store, '2,000 files'] / by[store, '8 files']:.2f}x the 8 files' time")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
