"""``lakelabel submit`` without a cluster: exit codes, what it ships, and the errors it reports before submitting."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import pytest

from lakelabel.jobs.cli import main
from lakelabel.jobs.submit import add_arguments, exit_code, package_copy, runtime_env, submit


@pytest.mark.parametrize(
    ("status", "driver_exit_code", "expected"),
    [
        ("SUCCEEDED", 0, 0),
        ("SUCCEEDED", None, 0),
        ("FAILED", 2, 2),  # the job's own code: `lakelabel run` exits 2 for an invalid job
        ("FAILED", 1, 1),
        ("FAILED", None, 1),  # failed before its entrypoint ran (runtime environment, ...)
        ("STOPPED", None, 1),
        ("STOPPED", 0, 1),
    ],
)
def test_the_exit_code_is_the_jobs_result(status: str, driver_exit_code: int | None, expected: int) -> None:
    assert exit_code(status, driver_exit_code) == expected


def test_the_runtime_env_ships_one_lakelabel_package_and_the_job_directory(tmp_path: Path) -> None:
    package = package_copy(tmp_path)
    env = runtime_env(tmp_path / "job", package)
    assert env["working_dir"] == str(tmp_path / "job")
    assert env["py_modules"] == [str(tmp_path / "lakelabel")]
    for module in (
        "__init__.py",
        "jobs/cli.py",
        "jobs/lake/prefix.py",
        "operators/registry.py",
        "operators/text/zero_shot.py",
    ):
        assert (package / module).is_file(), module
    assert not list(package.rglob("__pycache__"))


def test_the_address_comes_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["job.yaml"])
    args = parser.parse_args(["job.yaml", "--address", "http://head:8265", "--wait"])
    assert (args.job, args.address, args.wait, args.submission_id) == ("job.yaml", "http://head:8265", True, None)

    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://other:8265")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["job.yaml"]).address == "http://other:8265"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_invalid_job_is_refused_before_any_cluster_is_contacted(tmp_path: Path, capsys) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"name": "bad", "input": {"uri": "in"}, "output": {"uri": "out"}, "steps": []}))
    assert main(["submit", str(job), "--address", f"http://127.0.0.1:{_closed_port()}", "--wait"]) == 2
    assert "steps: required" in capsys.readouterr().err


def test_an_unreachable_cluster_is_reported(tmp_path: Path, models: dict[str, str], capsys) -> None:
    job = tmp_path / "job.yaml"
    step = {"task": "text-classification", "model": models["classifier"], "input": "text", "output": "s"}
    job.write_text(json.dumps({"name": "ok", "input": {"uri": "in"}, "output": {"uri": "out"}, "steps": [step]}))
    address = f"http://127.0.0.1:{_closed_port()}"
    assert submit(str(job), address, wait=False) == 2
    assert f"--address: cannot reach the Ray Jobs API at {address}" in capsys.readouterr().err


def test_a_missing_address_is_reported(tmp_path: Path, capsys) -> None:
    assert submit(str(tmp_path / "job.yaml"), None, wait=False) == 2
    assert "--address" in capsys.readouterr().err
