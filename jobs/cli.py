"""``lakelabel``: run, plan, submit or demo a job; an output's status and report."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from lakelabel import __version__
from lakelabel.jobs.console.redact import redact
from lakelabel.jobs.console.runlog import console_filter
from lakelabel.jobs.lake.shards import ShardError
from lakelabel.jobs.output.lease import LeaseHeldError
from lakelabel.jobs.output.state import OutputExistsError
from lakelabel.jobs.spec import SpecError, StorageSpec, load_spec
from lakelabel.jobs.submit import add_arguments as add_submit_arguments
from lakelabel.operators.core.base import ModelLoadError

_VERBOSE = "also show Ray's and the models' own output (progress blocks, loading bars) on the console"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakelabel", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lakelabel {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a job: read shards, annotate, write Parquet")
    run.add_argument("job", help="the job file (YAML)")
    run.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE)
    run.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if another run holds the output, wait up to this long for it (default: refuse at once)",
    )
    plan = commands.add_parser("plan", help="validate a job and show its shards and steps; loads no model")
    plan.add_argument("job", help="the job file (YAML)")
    status = commands.add_parser("status", help="shards done, pending and quarantined of an output")
    status.add_argument(
        "output", help="the job's output.uri (a prefix or a Delta table), or the job file (any output, Iceberg too)"
    )
    status.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL and the AWS config)")
    report = commands.add_parser("report", help="an output's figures as a self-contained HTML page and JSON")
    report.add_argument("output", help="the job's output.uri (s3://bucket/prefix or a local directory)")
    report.add_argument("--out", help="directory for report.html and report.json (default: ./lakelabel-report-JOB)")
    report.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL and the AWS config)")
    submit = commands.add_parser("submit", help="run a job on a Ray cluster through the Ray Jobs API")
    add_submit_arguments(submit)
    demo = commands.add_parser("demo", help="run the embedded demo on a loopback S3 endpoint")
    demo.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE)
    return parser


def _run(job: str, *, verbose: bool, wait: float) -> int:
    from lakelabel.jobs.runner import JobFailedError, run_job  # noqa: PLC0415 - Ray only when running

    try:
        summary = run_job(job, verbose=verbose, wait=wait)  # the file is checked while Ray starts
    except JobFailedError as exc:
        print(f"lakelabel: job {exc.job} failed: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    print(summary.render())  # noqa: T201
    if not summary.ok:
        print(f"lakelabel: {len(summary.quarantined)} shard(s) quarantined; see above", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def _report(output: str, out: str | None, storage: StorageSpec) -> int:
    from lakelabel.jobs.report import ReportError, build_report, report_figures  # noqa: PLC0415 - matplotlib only here

    try:
        if out is None:
            out = f"lakelabel-report-{report_figures(output, storage)['job']}"
        files = build_report(output, storage, out)
    except ReportError as exc:
        print(f"lakelabel: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    print(f"report: {files.html.resolve()}\nfigures: {files.json.resolve()}")  # noqa: T201
    return 0


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one return per command
    """Entry point of the ``lakelabel`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    fresh = not logging.getLogger().handlers
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("lakelabel").setLevel(logging.INFO)
    if fresh:
        # run and demo keep lakelabel's INFO records (Ray start-up, shard commits) for the log file unless -v; the
        # other commands print theirs, as they always did.
        logging.getLogger().handlers[0].addFilter(console_filter(verbose=getattr(args, "verbose", True)))
    try:
        if args.command == "plan":
            return _plan(args.job)
        if args.command == "status":
            from lakelabel.jobs.console.status import output_status  # noqa: PLC0415

            text, complete = output_status(args.output, StorageSpec(endpoint_url=args.endpoint_url))
            print(text)  # noqa: T201
            return 0 if complete else 1
        if args.command == "report":
            return _report(args.output, args.out, StorageSpec(endpoint_url=args.endpoint_url))
        if args.command == "run":
            return _run(args.job, verbose=args.verbose, wait=args.wait)
        if args.command == "submit":
            from lakelabel.jobs.submit import submit  # noqa: PLC0415

            return submit(args.job, args.address, wait=args.wait, submission_id=args.submission_id)
        from lakelabel.jobs.demo import run_demo  # noqa: PLC0415

        return run_demo(verbose=args.verbose)
    except (SpecError, ShardError, ModelLoadError, OutputExistsError, LeaseHeldError, OSError) as exc:
        print(f"lakelabel: error: {redact(str(exc))}", file=sys.stderr)  # noqa: T201
        return 2


def _plan(job: str) -> int:
    """Print the plan, its pools sized for RAY_ADDRESS's cluster when set, else for this machine."""
    from lakelabel.jobs.plan import make_plan  # noqa: PLC0415 - plan imports Ray only to ask RAY_ADDRESS's cluster

    plan = make_plan(load_spec(job))
    machine = None
    if os.environ.get("RAY_ADDRESS"):
        from lakelabel.jobs.ray_adapter import cluster_machine  # noqa: PLC0415

        machine = cluster_machine()
    print(plan.render(machine))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
