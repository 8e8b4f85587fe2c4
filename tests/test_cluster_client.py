"""``lakelabel submit`` without a cluster: exit codes, what it ships, and the errors it reports before submitting."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import pytest

from lakelabel.jobs.cli import main
from lakelabel.jobs.submit import add_arguments, exit_code, operator_modules, package_copy, runtime_env, submit


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


def test_submit_ships_the_module_of_each_operator_class_no_distribution_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray.job_submission

    from lakelabel.jobs.spec import parse_spec
    from tests.test_own_operators import MODULE, UPPER, forget, shout_distribution, write_module

    flat = write_module(tmp_path / "flat").resolve()  # lakelabel_test_upper.py, a module file
    package = (tmp_path / "tree" / "lakelabel_test_pkg").resolve()  # a package: its class in a submodule
    (package / "text").mkdir(parents=True)
    for init in (package / "__init__.py", package / "text" / "__init__.py"):
        init.write_text("", encoding="utf-8")
    (package / "text" / "ops.py").write_text(UPPER, encoding="utf-8")
    site = shout_distribution(tmp_path / "site")  # installed: an entry point, and a class its files hold
    forget(MODULE, "lakelabel_test_pkg", "lakelabel_test_shoutops")
    for path in (flat.parent, package.parent, site):
        monkeypatch.syspath_prepend(str(path))
    steps = [
        {"operator": f"{MODULE}:Upper"},
        {"operator": "lakelabel_test_pkg.text.ops:Upper"},
        {"operator": f"{MODULE}:Upper"},  # the same module, shipped once
        {"task": "shout"},
        {"operator": "lakelabel_test_shoutops.ops:Shout"},
        {"task": "text-classification", "model": "org/model"},
        {"operator": "lakelabel.operators.text.text_classification:TextClassification", "model": "org/model"},
    ]
    job = {
        "name": "own",
        "input": {"uri": str(tmp_path / "in")},
        "output": {"uri": str(tmp_path / "out")},
        "steps": [{**step, "input": "text", "output": f"out{index}"} for index, step in enumerate(steps)],
    }
    assert operator_modules(parse_spec(job)) == [flat, package]

    sent: dict = {}

    class Client:  # the Ray Jobs API client, answering here: what would reach the cluster
        def __init__(self, address: str) -> None:
            sent["address"] = address

        def submit_job(self, *, runtime_env: dict, **kwargs: object) -> str:
            shipped = [Path(runtime_env["working_dir"]), *map(Path, runtime_env["py_modules"][1:])]
            sent["files"] = sorted(
                str(file.relative_to(module.parent))
                for module in shipped
                for file in [module, *module.rglob("*")]
                if "__pycache__" not in file.parts  # left out by the runtime environment's excludes
            )
            sent["runtime_env"] = runtime_env
            return "raysubmit_1"

    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", Client)
    (tmp_path / "job.yaml").write_text(json.dumps(job), encoding="utf-8")
    assert submit(str(tmp_path / "job.yaml"), "http://head:8265", wait=False) == 0
    # A package directory is a py_modules entry; a module file travels in the working directory, beside the job file
    assert [Path(module).name for module in sent["runtime_env"]["py_modules"]] == ["lakelabel", "lakelabel_test_pkg"]
    assert sent["files"] == [
        "job",
        "job/job.yaml",
        f"job/{MODULE}.py",
        "lakelabel_test_pkg",
        "lakelabel_test_pkg/__init__.py",
        "lakelabel_test_pkg/text",
        "lakelabel_test_pkg/text/__init__.py",
        "lakelabel_test_pkg/text/ops.py",
    ]
    forget(MODULE, "lakelabel_test_pkg", "lakelabel_test_shoutops")
