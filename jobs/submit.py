"""``lakelabel submit``: run a job file on a Ray cluster through the Ray Jobs API.

The cluster runs ``python -m lakelabel run <job file>`` on its head node. The job's runtime environment carries this
installation's ``lakelabel`` package (``py_modules``, assembled as it installs: ``lakelabel/`` with ``jobs/`` and
``operators/`` inside) and the job file (``working_dir``), so the
code that runs is the code that validated the job here; the cluster's image supplies the dependencies (Ray, torch,
transformers...). A step's ``operator: module:Class`` that no installed distribution holds travels too: its
top-level package directory as one more ``py_modules`` entry, or its module file beside the job file
(``operator_modules``, ``runtime_env``); one that an installed distribution holds, like an entry point's task, must
be installed on the cluster. Paths in the job file
(local input or output directories, model directories) must exist on the cluster's nodes.

Example::

    lakelabel submit job.yaml --address http://head.example.internal:8265 --wait

With ``--wait`` the job's log is streamed here and the exit code is the job's: 0 when it SUCCEEDED, its own exit
code when it FAILED (2 for an invalid job, as with ``lakelabel run``; 1 when it has none), 1 when it was STOPPED.
Without ``--wait`` it returns 0 once the cluster accepted the job. A cluster with token authentication takes its
token as ``ray job submit`` does: ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lakelabel
import lakelabel.jobs
import lakelabel.operators
from lakelabel.jobs.spec import SpecError, load_spec
from lakelabel.operators.registry import CLASS, distribution_of, lookup, resolve, source_file

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ray.job_submission import JobSubmissionClient

    from lakelabel.jobs.spec import JobSpec

log = logging.getLogger("lakelabel")

ADDRESS_VARIABLE = "RAY_API_SERVER_ADDRESS"
_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
_STATUS_TIMEOUT_S = 60.0
_AGENT_WAIT_S = 120.0  # a cluster that just started may not have its head's job agent up yet
_NO_AGENT = "No available agent"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``submit``'s arguments to ``parser`` (the ``lakelabel submit`` subcommand)."""
    default = os.environ.get(ADDRESS_VARIABLE)
    parser.add_argument("job", help="the job file (YAML)")
    parser.add_argument(
        "--address",
        default=default,
        required=default is None,
        help=f"the cluster's dashboard, e.g. http://head:8265 (default: ${ADDRESS_VARIABLE})",
    )
    parser.add_argument("--wait", action="store_true", help="follow the job's log; exit with the job's result")
    parser.add_argument(
        "--submission-id", default=None, help="the job's id on the cluster; the cluster refuses an id twice"
    )


def package_copy(dest: Path) -> Path:
    """Copy the ``lakelabel`` package, laid out as it installs, to ``dest/lakelabel``; returns that directory.

    A source checkout keeps ``jobs/`` and ``operators/`` beside ``lakelabel/``; an installed wheel has them inside.
    Ray's ``py_modules`` names a module by its directory, so the cluster gets one ``lakelabel`` directory either way.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    target = dest / "lakelabel"
    shutil.copytree(
        Path(lakelabel.__file__).parent,
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "jobs", "operators"),
    )
    for package in (lakelabel.jobs, lakelabel.operators):
        shutil.copytree(Path(package.__file__).parent, target / package.__name__.rpartition(".")[2], ignore=ignore)
    return target


def runtime_env(job_dir: Path, package_dir: Path, modules: Sequence[Path] = ()) -> dict[str, Any]:
    """The job's runtime environment: ``package_dir``, the job's own operator ``modules``, ``job_dir`` as working dir.

    ``package_dir`` is :func:`package_copy`'s; each of ``modules`` is a package directory or a module file
    (:func:`operator_modules`). A package directory is a ``py_modules`` entry, on the path of the job's driver and
    workers; a module file is copied into ``job_dir``, which is on that path too: Ray's Jobs client uploads a
    ``py_modules`` entry that is a single ``.py`` file as if it were a directory, and fails (Ray 2.60).
    """
    packages = []
    for module in modules:
        if module.is_dir():
            packages.append(str(module))
        else:
            shutil.copyfile(module, job_dir / module.name)
    return {
        "working_dir": str(job_dir),
        "py_modules": [str(package_dir), *packages],
        "excludes": ["__pycache__", "*.pyc"],
    }


def operator_modules(spec: JobSpec) -> list[Path]:
    """What ships each ``operator: module:Class`` of ``spec`` that no installed distribution holds.

    The top-level module of each such class: its file (``my_ops.py``) or its package directory (``my_ops/``, for
    ``my_ops.text:Upper``), each once. Classes of ``lakelabel`` itself travel with the package; classes an installed
    distribution holds (and entry points' tasks) are the cluster's to install.
    """
    found: list[Path] = []
    for step in spec.steps:
        if lookup(step.task).origin != CLASS:
            continue
        cls = resolve(step.task)
        top = cls.__module__.partition(".")[0]
        if top == "lakelabel" or distribution_of(cls) is not None:
            continue
        module = import_module(top)
        if top == cls.__module__:  # a module file, or a package's __init__.py
            path = source_file(cls)
            path = path.parent if path.name == "__init__.py" else path
        else:  # the package directory that holds the class's module (one of several, for a namespace package)
            file = source_file(cls)
            roots = [Path(entry).resolve() for entry in module.__path__]
            path = next(root for root in roots if file.is_relative_to(root))
        if path not in found:
            found.append(path)
    return found


def exit_code(status: str, driver_exit_code: int | None) -> int:
    """The exit code for a job that ended in ``status``."""
    if status == "SUCCEEDED":
        return 0
    if status == "FAILED" and driver_exit_code:
        return driver_exit_code
    return 1


async def _follow(client: JobSubmissionClient, submission_id: str) -> None:
    async for chunk in client.tail_job_logs(submission_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()


def _final_status(client: JobSubmissionClient, submission_id: str) -> tuple[str, int | None, str]:
    deadline = time.monotonic() + _STATUS_TIMEOUT_S
    while True:
        info = client.get_job_info(submission_id)
        status = str(getattr(info.status, "value", info.status))
        if status in _TERMINAL or time.monotonic() > deadline:
            return status, info.driver_exit_code, info.message or ""
        time.sleep(0.5)


class SubmitError(RuntimeError):
    """The job could not be submitted; the message names the job field, the address or the cluster's answer."""


def _send(job_path: str, address: str | None, submission_id: str | None) -> tuple[JobSubmissionClient, str]:
    """Validate the job file here, then hand it to the cluster; returns the client and the submission id."""
    from ray.job_submission import JobSubmissionClient  # noqa: PLC0415 - Ray only when submitting

    if not address:
        raise SubmitError(f"--address: the cluster's dashboard URL, e.g. http://head:8265 (or set ${ADDRESS_VARIABLE})")
    path = Path(job_path)
    try:
        spec = load_spec(path)
    except SpecError as exc:
        raise SubmitError(str(exc)) from None
    try:
        client = JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SubmitError(f"--address: cannot reach the Ray Jobs API at {address}: {exc}") from None
    stage = Path(tempfile.mkdtemp(prefix="lakelabel-submit-"))
    job_dir = stage / "job"
    deadline = time.monotonic() + _AGENT_WAIT_S
    try:
        job_dir.mkdir()
        shutil.copyfile(path, job_dir / path.name)
        env = runtime_env(job_dir, package_copy(stage), operator_modules(spec))
        while True:
            try:
                submission_id = client.submit_job(
                    entrypoint=f"python -m lakelabel run {shlex.quote(path.name)}",
                    runtime_env=env,
                    submission_id=submission_id,
                    metadata={"lakelabel_job": spec.name},
                )
                break
            except (RuntimeError, OSError) as exc:  # OSError: the connection dropped
                if _NO_AGENT not in str(exc) or time.monotonic() > deadline:
                    raise SubmitError(f"the cluster at {address} refused job {spec.name!r}: {exc}") from None
                log.info("the cluster's job agent is not up yet; trying again")
                time.sleep(2)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log.info("submitted job %r to %s as %s", spec.name, address, submission_id)
    return client, submission_id


def _wait(client: JobSubmissionClient, submission_id: str) -> int:
    """Stream the job's log until it ends; returns its exit code."""
    try:
        asyncio.run(_follow(client, submission_id))
    except KeyboardInterrupt:
        log.warning("stopped following %s; the job goes on (ray job stop %s ends it)", submission_id, submission_id)
        return 130
    except RuntimeError as exc:
        log.warning("lost the log of %s (%s); waiting for its result", submission_id, exc)
    status, driver_exit_code, message = _final_status(client, submission_id)
    code = exit_code(status, driver_exit_code)
    log.log(logging.INFO if code == 0 else logging.ERROR, "job %s %s %s", submission_id, status, message)
    return code


def submit(job_path: str, address: str | None, *, wait: bool, submission_id: str | None = None) -> int:
    """Submit the job file at ``job_path`` to the Ray cluster whose dashboard is ``address``; returns the exit code.

    The job file is validated here first (loads no model, reads no data), so an invalid job never reaches the cluster.
    """
    try:
        client, submission_id = _send(job_path, address, submission_id)
    except SubmitError as exc:
        print(f"lakelabel: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if not wait:
        print(submission_id)  # noqa: T201
        return 0
    return _wait(client, submission_id)
