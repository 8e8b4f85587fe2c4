"""Secrets and paths: a sentinel credential planted in every source appears nowhere; keys never leave the prefix;
YAML alias bombs are refused."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakelabel.jobs.console.redact import redact, redact_url
from lakelabel.jobs.output.layout import Layout, unsafe_key
from lakelabel.jobs.plan import make_plan
from lakelabel.jobs.spec import SpecError, load_spec, parse_spec

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
SENTINEL = "LLsentinel7f3a9c2e"


def sentinel_env(endpoint: str) -> dict[str, str]:
    with_user = endpoint.replace("http://", f"http://{SENTINEL}user:{SENTINEL}pw@")
    return dict(
        os.environ,
        AWS_SECRET_ACCESS_KEY=f"{SENTINEL}secret",
        AWS_SESSION_TOKEN=f"{SENTINEL}token",
        AWS_ENDPOINT_URL=with_user,
        HF_HUB_OFFLINE="1",
        RAY_ADDRESS="",
    )


def files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


@pytest.mark.ray
def test_a_sentinel_secret_in_every_credential_source_appears_in_no_file_or_log_line(
    tmp_path: Path, models: dict[str, str], s3_endpoint: str
) -> None:
    fs = fsspec.filesystem("s3", endpoint_url=s3_endpoint, skip_instance_cache=True)
    if not fs.exists("secrets"):
        fs.mkdir("secrets")
    with fs.open("secrets/in/part-0.parquet", "wb") as handle:
        pq.write_table(pa.table({"id": list(range(8)), "text": [f"text {i}" for i in range(8)]}), handle)
    env = sentinel_env(s3_endpoint)
    job = {
        "name": "secrets", "input": {"uri": "s3://secrets/in/"}, "output": {"uri": "s3://secrets/out/"},
        "storage": {"endpoint_url": env["AWS_ENDPOINT_URL"], "retry_seconds": 2},
        "steps": [{"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label"}],
    }  # fmt: skip
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    ray_temp = Path(tempfile.mkdtemp(prefix="llray", dir="/tmp"))  # short: Ray's socket paths must fit
    env["RAY_TMPDIR"] = str(ray_temp)
    done = subprocess.run(
        [sys.executable, "-m", "lakelabel", "run", str(path)], cwd=tmp_path, env=env, capture_output=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert b"user info in http://***@127.0.0.1" in done.stderr + done.stdout
    job["storage"]["endpoint_url"] = env["AWS_ENDPOINT_URL"].rsplit(":", 1)[0] + ":9"  # nothing listens: it fails
    job["output"]["uri"] = "s3://secrets/failed/"
    path.write_text(json.dumps(job))
    failed = subprocess.run(
        [sys.executable, "-m", "lakelabel", "run", str(path)], cwd=tmp_path, env=env, capture_output=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert failed.returncode != 0
    assert re.search(rb"storage endpoint http://127.0.0.1:9: \w+ secrets/in still failing", failed.stderr)
    needle = SENTINEL.encode()
    for name, text in {"run": done.stdout + done.stderr, "failed run": failed.stdout + failed.stderr}.items():
        assert needle not in text, f"{name} console: {text.decode()[-2000:]}"
    written = {p: fs.cat_file(p) for p in fs.find("secrets/out")}
    assert any(p.endswith("_SUCCESS") for p in written)
    assert any("/_lakelabel/logs/" in p for p in written)
    assert [p for p, data in written.items() if needle in data] == []
    assert files_holding(tmp_path, needle) == [str(path)], "only the job file the user wrote holds it"
    assert list(ray_temp.glob("ray/session_*/logs"))
    assert files_holding(ray_temp, needle) == []  # Ray's session logs of both runs
    shutil.rmtree(ray_temp, ignore_errors=True)


def test_a_submitted_jobs_dashboard_fields_carry_no_credentials(
    tmp_path: Path, models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray.job_submission

    from lakelabel.jobs.submit import _send

    sent: dict = {}

    class Client:
        def __init__(self, address: str) -> None:
            sent["address"] = address

        def submit_job(self, **fields: object) -> str:
            sent.update(fields)
            return "raysubmit_1"

    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", Client)
    for key, value in sentinel_env("http://127.0.0.1:9").items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "job.json"
    path.write_text(json.dumps({
        "name": "secrets", "input": {"uri": "s3://secrets/in/"}, "output": {"uri": "s3://secrets/out/"},
        "storage": {"endpoint_url": f"http://{SENTINEL}:{SENTINEL}@127.0.0.1:9"},
        "steps": [{"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label"}],
    }))  # fmt: skip
    _send(str(path), "http://127.0.0.1:8265", None)
    assert sent["entrypoint"]
    assert SENTINEL not in json.dumps(sent, default=str)


def test_redaction_masks_user_info_and_environment_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", f"{SENTINEL}secret")
    text = f"could not reach http://me:{SENTINEL}@host:9000/b with key {SENTINEL}secret"
    assert redact(text) == "could not reach http://***@host:9000/b with key ***"
    assert redact_url("s3://bucket/key http://host/x") == "s3://bucket/key http://host/x"


@pytest.mark.parametrize(
    ("shard", "problem"),
    [
        ("/data/in/../outside/part.parquet", "'..' segment"),
        ("/data/in/day=1/../../x.parquet", "'..' segment"),
        ("/etc/passwd.parquet", "'..' segment"),
        ("/data/in/a\\..\\b.parquet", "backslash"),
        ("/data/in/a%2F..%2Fb.parquet", "percent-encoded"),
        ("/data/in/a/%2e%2e/b.parquet", "percent-encoded"),
    ],
)
def test_keys_that_could_leave_the_output_prefix_are_refused(shard: str, problem: str) -> None:
    layout = Layout(fs=fsspec.filesystem("file"), root="/data/out", input_root="/data/in")
    assert problem in (unsafe_key(layout.relative_key(shard)) or "")
    key = layout.key(shard)
    assert key.startswith("_lakelabel/unsafe/")
    assert os.path.normpath(layout.output_file(key)).startswith("/data/out/_lakelabel/unsafe/")
    assert "absolute" in (unsafe_key("/abs/part") or "")
    assert "empty" in (unsafe_key("a//b") or "")
    assert unsafe_key("day=2026-12-01/part-0") is None


def test_a_shard_whose_key_would_escape_is_quarantined_and_the_rest_planned(
    tmp_path: Path, models: dict[str, str]
) -> None:
    (tmp_path / "in").mkdir()
    for name in ("good.parquet", "a%2F..%2F..%2Fevil.parquet"):
        pq.write_table(pa.table({"text": ["x"]}), tmp_path / "in" / name)
    plan = make_plan(parse_spec({
        "name": "paths", "input": {"uri": str(tmp_path / "in")}, "output": {"uri": str(tmp_path / "out")},
        "steps": [{"task": "text-classification", "model": models["classifier"], "input": "text", "output": "label"}],
    }))  # fmt: skip
    assert [Path(shard.path).name for shard in plan.shards] == ["good.parquet"]
    assert len(plan.quarantined) == 1
    assert "output key would leave the output prefix" in plan.quarantined[0].reason


def test_yaml_aliases_that_expand_to_a_huge_document_are_refused(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level, name in enumerate("bcdefgh"):
        previous = "abcdefgh"[level]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match="aliases expand the document to more than 100000 values"):
        load_spec(path)
    path.write_text("a: &x [1]\nb: *x\n")
    with pytest.raises(SpecError, match="job: unknown field"):  # small aliases are fine: the spec is then checked
        load_spec(path)
