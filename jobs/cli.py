"""``lakelabel``: run, plan or demo a job."""

from __future__ import annotations

import argparse
import logging
import sys

from jobs.shards import ShardError
from jobs.spec import SpecError, load_spec
from operators.loading import ModelLoadError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakelabel", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a job: read shards, annotate, write Parquet")
    run.add_argument("job", help="the job file (YAML)")
    plan = commands.add_parser("plan", help="validate a job and show its shards and steps; loads no model")
    plan.add_argument("job", help="the job file (YAML)")
    commands.add_parser("demo", help="run the embedded demo on a loopback S3 endpoint")
    return parser


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
        if args.command == "run":
            from jobs.runner import OutputExistsError, run_job  # noqa: PLC0415 - Ray only when running

            spec = load_spec(args.job)
            try:
                summary = run_job(spec)
            except OutputExistsError as exc:
                raise SpecError(str(exc)) from None
            print(summary.render())  # noqa: T201
            return 0
        from jobs.demo import run_demo  # noqa: PLC0415

        return run_demo()
    except (SpecError, ShardError, ModelLoadError) as exc:
        print(f"lakelabel: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    sys.exit(main())
