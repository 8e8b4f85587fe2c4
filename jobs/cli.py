"""``lakelabel``: run, plan, submit or demo a job; report an output's status."""

from __future__ import annotations

import argparse
import logging
import sys

from jobs.shards import ShardError
from jobs.spec import SpecError, StorageSpec, load_spec
from jobs.state import OutputExistsError
from jobs.submit import add_arguments as add_submit_arguments
from operators.base import ModelLoadError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakelabel", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a job: read shards, annotate, write Parquet")
    run.add_argument("job", help="the job file (YAML)")
    plan = commands.add_parser("plan", help="validate a job and show its shards and steps; loads no model")
    plan.add_argument("job", help="the job file (YAML)")
    status = commands.add_parser("status", help="shards done, pending and quarantined of an output")
    status.add_argument(
        "output", help="the job's output.uri (a prefix or a Delta table), or the job file (any output, Iceberg too)"
    )
    status.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL and the AWS config)")
    submit = commands.add_parser("submit", help="run a job on a Ray cluster through the Ray Jobs API")
    add_submit_arguments(submit)
    commands.add_parser("demo", help="run the embedded demo on a loopback S3 endpoint")
    return parser


def _run(job: str) -> int:
    from jobs.runner import JobFailedError, run_job  # noqa: PLC0415 - Ray only when running

    spec = load_spec(job)
    try:
        summary = run_job(spec)
    except JobFailedError as exc:
        print(f"lakelabel: job {spec.name} failed: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    print(summary.render())  # noqa: T201
    if not summary.ok:
        print(f"lakelabel: {len(summary.quarantined)} shard(s) quarantined; see above", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lakelabel`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("lakelabel").setLevel(logging.INFO)
    try:
        if args.command == "plan":
            from jobs.plan import make_plan  # noqa: PLC0415 - plan never imports Ray

            print(make_plan(load_spec(args.job)).render())  # noqa: T201
            return 0
        if args.command == "status":
            from jobs.status import output_status  # noqa: PLC0415

            text, complete = output_status(args.output, StorageSpec(endpoint_url=args.endpoint_url))
            print(text)  # noqa: T201
            return 0 if complete else 1
        if args.command == "run":
            return _run(args.job)
        if args.command == "submit":
            from jobs.submit import submit  # noqa: PLC0415

            return submit(args.job, args.address, wait=args.wait, submission_id=args.submission_id)
        from jobs.demo import run_demo  # noqa: PLC0415

        return run_demo()
    except (SpecError, ShardError, ModelLoadError, OutputExistsError) as exc:
        print(f"lakelabel: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    sys.exit(main())
