"""Side-by-side throughput: the model's limit, the pipeline() loop, Ray Data's recipe and lakelabel, in one run.

    python -m benchmarks.throughput                 # (make bench) 12,000 rows, classification and embeddings
    python -m benchmarks.throughput --sizes 2000 10000 50000   # (make bench) lakelabel and Daft by job size
    python -m benchmarks.throughput --memory        # peak memory of a lakelabel job at 10,000 and 100,000 rows
    python -m benchmarks.throughput --techniques    # the batching and placement choices, one at a time

Every contender sees the same deterministic corpus (``benchmarks.corpus``) and the real MiniLM encoder; rates are
printed with their ratio to the limit (a). The pipeline() loop runs over every twentieth text (the same length mix);
Ray's recipe and lakelabel run Parquet to Parquet as their own processes, start-up included, and lakelabel's
steady state is taken between its first and last shard commits. ``--json`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from transformers.utils import logging as transformers_logging

from benchmarks import baselines, job
from benchmarks.baselines import Result
from benchmarks.corpus import texts, write_shards
from benchmarks.models import minilm, minilm_classifier, tiny_classifier

SHARDS = 15
DAFT_BATCHES = (1, 8, 32)
DAFT_SWEEP_ROWS = 2000


def _model(task: str, work: Path, *, tiny: bool) -> Path:
    if tiny:
        return tiny_classifier(work / "tiny")
    return minilm_classifier(work / "minilm-classifier") if task == "classification" else minilm()


def _machine() -> str:
    import torch  # noqa: PLC0415

    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__} with {torch.get_num_threads()} threads"


def compare(
    task: str, rows: int, work: Path, *, tiny: bool, sweep_every: int, step: dict[str, Any], skip: tuple[str, ...] = ()
) -> list[Result]:
    """(a) to (f) for one task over ``rows`` texts, and the bfloat16 rows unless ``skip`` names them."""
    model = _model(task, work, tiny=tiny)
    corpus = texts(rows)
    counts = baselines.token_counts(model, corpus)
    tokens = sum(counts)
    source = work / f"{task}-{rows}" / "in"
    write_shards(source, rows, shard_rows=-(-rows // SHARDS))
    results = [baselines.limit(model, task, corpus, tokens, sweep_every=sweep_every)]
    _progress(task, results[-1])
    if "pipeline" not in skip:
        loop_texts = baselines.sample(corpus, 20)
        loop_tokens = sum(baselines.sample(counts, 20))
        results.append(baselines.pipeline_loop(model, task, loop_texts, loop_tokens))
        _progress(task, results[-1])
    if "recipe" not in skip:
        recipe = job.recipe(task, model, source, work / f"{task}-{rows}" / "recipe")
        results.append(
            Result("c. Ray Data recipe", rows, tokens, recipe.seconds, "cores - 1 actors, start-up included")
        )
        _progress(task, results[-1])
    spec = job.job_file(source.parent, task, model, source, step=step)
    run, manifest = job.lakelabel(spec)
    steady, steady_rows = job.steady_rows_per_s(manifest)
    steady_tokens = round(tokens * steady_rows / rows)
    actors = manifest["steps"][0]["actors"]
    how = ", ".join(f"{key}: {value}" for key, value in step.items()) or "no concurrency, no batch_size"
    how += f" ({actors} actor(s))"
    extra = {"peak_bytes": run.peak_bytes, "step": step, "actors": actors}
    results.append(Result("d. lakelabel, steady state", steady_rows, steady_tokens, steady_rows / steady, how, extra))
    results.append(Result("d. lakelabel, start-up included", rows, tokens, run.seconds, "`lakelabel run`"))
    _progress(task, results[-1])
    if "fixed" not in skip:
        fixed = _fixed_cost(task, model, work / f"{task}-fixed", step=step, actors=actors, limit=results[0])
        results.append(fixed)
        _progress(task, results[-1])
    if "daft" in skip:
        pass
    elif job.DAFT_PYTHON.exists():
        results.append(_daft(task, model, source, work / f"{task}-{rows}", rows=rows, tokens=tokens))
        _progress(task, results[-1])
    else:
        print(f"  {task}: f. Daft: not measured ({job.DAFT_PYTHON} is missing; `make bench` creates it)")
    if "bfloat16" not in skip:
        results += _bfloat16(
            task, model, corpus, tokens, source=source, float32_job=spec, step=step, sweep_every=sweep_every
        )
    return results


def _bfloat16(
    task: str,
    model: Path,
    corpus: list[str],
    tokens: int,
    *,
    source: Path,
    float32_job: Path,
    step: dict[str, Any],
    sweep_every: int,
) -> list[Result]:
    """(g) the limit and lakelabel in bfloat16, and how close lakelabel's bfloat16 output is to its float32 one."""
    limit = baselines.limit(model, task, corpus, tokens, sweep_every=sweep_every, dtype="bfloat16")
    limit.name = "g. limit in bfloat16: forward only"
    _progress(task, limit)
    (source.parent / "bfloat16").mkdir(parents=True, exist_ok=True)
    spec = job.job_file(source.parent / "bfloat16", task, model, source, step={**step, "dtype": "bfloat16"})
    run, manifest = job.lakelabel(spec)
    steady, steady_rows = job.steady_rows_per_s(manifest)
    agreement = job.agreement(task, job.output_dir(float32_job), job.output_dir(spec))
    detail = ", ".join(f"{key} {value:g}" for key, value in agreement.items())
    extra = {"agreement": agreement, "step": {**step, "dtype": "bfloat16"}}
    steady_tokens = round(tokens * steady_rows / len(corpus))
    found = [
        limit,
        Result(
            "g. lakelabel in bfloat16, steady state", steady_rows, steady_tokens, steady_rows / steady, detail, extra
        ),
        Result("g. lakelabel in bfloat16, start-up included", len(corpus), tokens, run.seconds, "`lakelabel run`"),
    ]
    _progress(task, found[1])
    return found


def daft_best(task: str, model: Path, source: Path, work: Path, *, rows: int, tokens: int) -> Result:
    """(f) Daft's stateful-class UDF, start-up included: the best of each batch size and concurrency."""
    timings: dict[str, float] = {}
    configs: dict[str, dict[str, Any]] = {}
    for batch_size in DAFT_BATCHES:
        for instances in (None, 1):
            how = f"batch {batch_size}, " + ("Daft's default concurrency" if instances is None else "one instance")
            configs[how] = {"batch_size": batch_size, "instances": instances}
            timings[how] = job.daft(task, model, source, work / f"{batch_size}-{instances}", **configs[how]).seconds
    best = min(timings, key=timings.__getitem__)
    extra = {"sweep": {how: round(rows / seconds, 2) for how, seconds in timings.items()}, "config": configs[best]}
    return Result("f. Daft, start-up included", rows, tokens, timings[best], best, extra)


def _daft(task: str, model: Path, source: Path, work: Path, *, rows: int, tokens: int) -> Result:
    """(f) Daft's best configuration: swept over ``DAFT_SWEEP_ROWS`` rows when the job is larger, then run on it."""
    if rows <= DAFT_SWEEP_ROWS:
        return daft_best(task, model, source, work / "daft", rows=rows, tokens=tokens)
    sample = work / "daft-sweep" / "in"
    write_shards(sample, DAFT_SWEEP_ROWS, shard_rows=-(-DAFT_SWEEP_ROWS // SHARDS))
    sweep = daft_best(task, model, sample, sample.parent, rows=DAFT_SWEEP_ROWS, tokens=0)
    seconds = job.daft(task, model, source, work / "daft", **sweep.extra["config"]).seconds
    detail = f"{sweep.detail} (the best of its sweep over {DAFT_SWEEP_ROWS} rows)"
    return Result("f. Daft, start-up included", rows, tokens, seconds, detail, sweep.extra)


def sizes(task: str, row_counts: list[int], work: Path, *, tiny: bool, step: dict[str, Any]) -> list[dict[str, Any]]:
    """End to end at each job size: lakelabel against Daft's best configuration, beside the limit's rate.

    Daft's configurations are swept at the smallest size and its best one is used at every size; the limit is timed
    over the smallest size's texts (its rate does not depend on how many texts there are).
    """
    model = _model(task, work, tiny=tiny)
    smallest = min(row_counts)
    corpus = texts(smallest)
    limit = baselines.limit(model, task, corpus, sum(baselines.token_counts(model, corpus)))
    found, best = [], None
    for rows in sorted(row_counts):
        source = work / f"{task}-size-{rows}" / "in"
        write_shards(source, rows, shard_rows=-(-rows // SHARDS))
        run, _ = job.lakelabel(job.job_file(source.parent, task, model, source, step=step))
        entry = {
            "rows": rows,
            "limit_rows_per_s": round(limit.rows_per_s, 2),
            "lakelabel_seconds": round(run.seconds, 1),
        }
        if job.DAFT_PYTHON.exists():
            if best is None:
                sweep = daft_best(task, model, source, source.parent / "daft", rows=rows, tokens=0)
                best, seconds = sweep.extra["config"], sweep.seconds
            else:
                seconds = job.daft(task, model, source, source.parent / "daft", **best).seconds
            entry.update(daft_seconds=round(seconds, 1), daft_config=best)
        found.append(entry)
        daft = f", Daft {entry['daft_seconds']} s" if "daft_seconds" in entry else ""
        ideal = rows / limit.rows_per_s
        print(f"  {task} {rows} rows: lakelabel {entry['lakelabel_seconds']} s{daft}, limit {ideal:.1f} s")
    return found


def _fixed_cost(task: str, model: Path, work: Path, *, step: dict[str, Any], actors: int, limit: Result) -> Result:
    """What a job costs besides its rows, and the best any Ray job could do with start-up included.

    The bare cost is a Ray Data job that only starts Ray and loads the model on each actor (``benchmarks.floor``);
    ``lakelabel run`` over one row per actor, with the measured job's pool, is shown beside it.
    """
    bare = job.floor(task, model, actors=actors).seconds
    source = work / "in"
    write_shards(source, actors, shard_rows=1)
    fixed, _ = job.lakelabel(job.job_file(work, task, model, source, step={**step, "concurrency": actors}))
    seconds = limit.rows / limit.rows_per_s + bare
    detail = (
        f"the limit's time for {limit.rows} rows plus {bare:.1f} s for Ray's start, {actors} actor(s) loading the "
        f"model and Ray's stop (`lakelabel run` over {actors} row(s): {fixed.seconds:.1f} s)"
    )
    extra = {"bare_seconds": bare, "lakelabel_fixed_seconds": fixed.seconds}
    return Result("e. ceiling with start-up for any Ray job", limit.rows, limit.tokens, seconds, detail, extra)


def _progress(task: str, result: Result) -> None:
    print(f"  {task}: {result.name}: {result.rows_per_s:.1f} rows/s ({result.detail})", flush=True)


def render(task: str, results: list[Result]) -> str:
    """The comparison as a Markdown table."""
    limit = results[0].rows_per_s
    lines = [
        f"{task}:",
        "| contender | rows/s | tokens/s | x limit | rows | how |",
        "|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r.name} | {r.rows_per_s:.1f} | {r.tokens_per_s:.0f} | {r.rows_per_s / limit:.2f} | {r.rows} | {r.detail} |"
        for r in results
    ]
    return "\n".join(lines)


def memory(rows_list: list[int], work: Path, *, shard_rows: int, step: dict[str, Any]) -> list[dict[str, Any]]:
    """Peak memory (PSS of the job's process tree) of the same lakelabel job at each input size."""
    model = tiny_classifier(work / "tiny")
    found = []
    for rows in rows_list:
        source = work / f"memory-{rows}" / "in"
        write_shards(source, rows, shard_rows=shard_rows)
        run, manifest = job.lakelabel(job.job_file(source.parent, "classification", model, source, step=step))
        assert manifest["totals"]["rows_out"] == rows, manifest["totals"]
        at_peak = {name: round(size / 2**20, 1) for name, size in sorted(run.at_peak.items(), key=lambda i: -i[1])}
        found.append(
            {
                "rows": rows,
                "seconds": round(run.seconds, 1),
                "peak_mib": round(run.peak_bytes / 2**20, 1),
                "at_peak": at_peak,
            }
        )
        print(f"{rows} rows: peak {found[-1]['peak_mib']} MiB (PSS, driver and workers), {found[-1]['seconds']} s")
        print("  at the peak, MiB by process: " + ", ".join(f"{name} {size}" for name, size in at_peak.items()))
    return found


def techniques(rows: int, work: Path, *, tiny: bool) -> dict[str, float]:
    """Rows/s of each variant in ``benchmarks.techniques``, printed as a table."""
    from benchmarks import techniques as variants  # noqa: PLC0415

    model = _model("classification", work, tiny=tiny)
    source = work / f"techniques-{rows}" / "in"
    write_shards(source, rows, shard_rows=-(-rows // SHARDS))
    found = {name: round(rate, 1) for name, rate in variants.measure(model, texts(rows), source, source.parent)}
    print("| variant | rows/s |\n|---|---:|")
    print("\n".join(f"| {name} | {rate} |" for name, rate in found.items()))
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--tasks", nargs="+", choices=baselines.TASKS, default=list(baselines.TASKS))
    parser.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model instead of MiniLM (smoke runs)")
    parser.add_argument("--sweep-every", type=int, default=20, help="the limit's sweep uses every N-th text")
    parser.add_argument(
        "--step",
        type=json.loads,
        default={},
        help="lakelabel step fields as JSON (default: none, as a user writes it: pools and batches sized)",
    )
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=["pipeline", "recipe", "fixed", "daft", "bfloat16"],
        help="contenders left out of the comparison",
    )
    parser.add_argument("--techniques", action="store_true", help="measure the choices behind the defaults instead")
    parser.add_argument("--memory", action="store_true", help="peak memory at --memory-rows instead")
    parser.add_argument("--memory-rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--sizes", type=int, nargs="+", help="end to end at these job sizes (lakelabel and Daft)")
    parser.add_argument("--shard-rows", type=int, default=2000, help="rows per shard in memory runs")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the comparison (or the memory runs) and print the tables."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # the jobs' processes inherit it
    transformers_logging.set_verbosity_error()
    work = args.work or Path(tempfile.mkdtemp(prefix="lakelabel-bench-"))
    machine = _machine()
    print(f"machine: {machine}\nwork: {work}")
    report: dict[str, Any] = {"machine": machine, "rows": args.rows}
    if args.techniques:
        report["techniques"] = techniques(args.rows, work, tiny=args.tiny)
    elif args.sizes:
        report["sizes"] = {task: sizes(task, args.sizes, work, tiny=args.tiny, step=args.step) for task in args.tasks}
    elif args.memory:
        report["memory"] = memory(args.memory_rows, work, shard_rows=args.shard_rows, step=args.step)
        peaks = [entry["peak_mib"] for entry in report["memory"]]
        print(f"largest / smallest peak: {max(peaks) / min(peaks):.3f}")
    else:
        for task in args.tasks:
            results = compare(
                task,
                args.rows,
                work,
                tiny=args.tiny,
                sweep_every=args.sweep_every,
                step=args.step,
                skip=tuple(args.skip),
            )
            print(render(task, results), flush=True)
            report[task] = [{**vars(r), "rows_per_s": r.rows_per_s, "tokens_per_s": r.tokens_per_s} for r in results]
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
