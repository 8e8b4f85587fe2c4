"""The Python API: a job from a file or a mapping, its plan, a run, an output's status and report.

The same things the ``lakelabel`` command does, as functions (``docs/python-api.md``)::

    job = lakelabel.load_job({"name": "tickets", "input": {...}, "output": {...}, "steps": [...]})
    print(lakelabel.plan(job))           # what `lakelabel plan` prints; loads no model
    summary = lakelabel.run(job)         # raises lakelabel.JobFailedError when the run stops
    print(lakelabel.status(job.output_uri))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakelabel.jobs.spec import JobSpec, StorageSpec, load_spec, parse_spec
from lakelabel.operators.factory import operator

if TYPE_CHECKING:
    from lakelabel.jobs.console.summary import RunSummary
    from lakelabel.jobs.plan import Plan
    from lakelabel.jobs.report.build import ReportFiles

__all__ = ["OutputStatus", "load_job", "operator", "plan", "report", "run", "status"]

Job = JobSpec | Mapping[str, Any] | str | Path
"""A validated job, a job's mapping (as its YAML would load), or a job file's path."""


def load_job(job: Job) -> JobSpec:
    """The validated job, from a job file's path or a mapping laid out as a job file.

    Relative model directories resolve against the file's directory (the current directory for a mapping). Raises
    ``SpecError`` naming the field.
    """
    if isinstance(job, JobSpec):
        return job
    if isinstance(job, Mapping):
        return parse_spec(dict(job))
    return load_spec(job)


def plan(job: Job) -> Plan:
    """What the job would do: shards found and checked, steps with their output types, pools; loads no model.

    ``str()`` of the plan is what ``lakelabel plan`` prints (pools sized for this machine).
    """
    from lakelabel.jobs.plan import make_plan  # noqa: PLC0415 - the plan's libraries only when planning

    return make_plan(load_job(job))


def run(job: Job, *, verbose: bool = False, wait: float = 0.0) -> RunSummary:
    """Run the job to completion (a re-run resumes) and return its summary.

    The summary holds rows in and out, row errors, shards processed, skipped and quarantined, and per-step figures
    (``summary.steps``); ``summary.ok`` is false when shards were quarantined. Raises ``JobFailedError`` when the run
    stops (``on_error: raise``, a failure the engine could not retry), ``SpecError``, ``ShardError``,
    ``OutputExistsError`` or ``LeaseHeldError`` when it is refused before it starts. ``wait``: seconds to wait for
    another run that holds the output. Starts a local Ray unless one is running in this process or ``RAY_ADDRESS``
    names a cluster.
    """
    from lakelabel.jobs.runner import run_job  # noqa: PLC0415 - the engine only when running

    target = job if isinstance(job, str | Path) else load_job(job)
    return run_job(target, verbose=verbose, wait=wait)


@dataclass(frozen=True)
class OutputStatus:
    """What an output holds: ``text`` as ``lakelabel status`` prints it; ``complete``: its last run finished whole."""

    text: str
    complete: bool

    def __str__(self) -> str:
        return self.text


def status(uri: str | Path, *, endpoint_url: str | None = None) -> OutputStatus:
    """Shards done, pending and quarantined of the output at ``uri`` (a prefix, a Delta table, or the job file)."""
    from lakelabel.jobs.console.status import output_status  # noqa: PLC0415

    text, complete = output_status(str(uri), StorageSpec(endpoint_url=endpoint_url))
    return OutputStatus(text=text, complete=complete)


def report(uri: str | Path, *, out: str | Path, endpoint_url: str | None = None) -> ReportFiles:
    """Write ``report.html`` and ``report.json`` for the output at ``uri`` into ``out``; returns their paths."""
    from lakelabel.jobs.report import build_report  # noqa: PLC0415 - matplotlib only when reporting

    return build_report(str(uri), StorageSpec(endpoint_url=endpoint_url), out)
