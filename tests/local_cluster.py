"""A real multi-node Ray cluster on loopback for tests, driven through ``cluster/local.py`` as a user would drive it.

The cluster's nodes are ``ray start`` processes; jobs reach it through ``lakelabel submit`` (``python -m
lakelabel.jobs.cli submit``) with the variables ``cluster/local.py`` prints (dashboard URL, token), in a subprocess, so
no Ray state is shared with the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "cluster" / "local.py"
SUBMIT = [sys.executable, "-m", "lakelabel", "submit"]


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class LocalCluster:
    """A cluster started by ``cluster/local.py up`` in ``root``; ``env`` is what its nodes were started with."""

    root: Path
    env: dict[str, str]

    @classmethod
    def up(cls, root: Path, *, env: dict[str, str], args: list[str]) -> LocalCluster:
        result = _run([sys.executable, str(SCRIPT), "up", "--dir", str(root), "--json", *args], env, timeout=600)
        cluster = cls(root, env)
        if result.returncode != 0:
            cluster.down()
            raise RuntimeError(f"cluster/local.py up failed:\n{result.stdout}\n{result.stderr}")
        return cluster

    def down(self) -> None:
        result = _run([sys.executable, str(SCRIPT), "down", "--dir", str(self.root)], self.env, timeout=120)
        assert result.returncode == 0, result.stderr

    def kill(self, node: str) -> None:
        result = _run([sys.executable, str(SCRIPT), "kill", node, "--dir", str(self.root)], self.env, timeout=60)
        assert result.returncode == 0, result.stderr

    def status(self) -> dict[str, Any]:
        result = _run([sys.executable, str(SCRIPT), "status", "--json", "--dir", str(self.root)], self.env, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def state(self) -> dict[str, Any]:
        return json.loads((self.root / "cluster.json").read_text(encoding="utf-8"))

    def node_ids(self) -> dict[str, str]:
        """Node name (head, worker-1, ...) -> Ray node id."""
        return {node["name"]: node["node_id"] for node in self.state()["nodes"]}

    def pid(self, node: str) -> int:
        """The pid of a node's ``ray start`` process."""
        return next(n["pid"] for n in self.state()["nodes"] if n["name"] == node)

    @property
    def dashboard(self) -> str:
        return self.state()["dashboard_url"]

    def client_env(self) -> dict[str, str]:
        """The test's environment plus the cluster's client variables (token authentication)."""
        state = self.state()
        env = dict(self.env)
        env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": state["auth_token_path"]})
        env.pop("RAY_ADDRESS", None)
        return env

    def submit_command(self, job: Path, *extra: str) -> list[str]:
        return [*SUBMIT, str(job), "--address", self.dashboard, *extra]

    def submit(self, job: Path, *extra: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
        return _run(self.submit_command(job, *extra), self.client_env(), timeout=timeout)

    def _state_api(self, resource: str) -> list[dict[str, Any]]:
        state = self.state()
        token = Path(state["auth_token_path"]).read_text(encoding="utf-8").strip()
        request = urllib.request.Request(
            f"{state['dashboard_url']}/api/v0/{resource}?limit=10000&detail=true",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return list(json.loads(response.read())["data"]["result"]["result"])

    def actors(self) -> list[dict[str, Any]]:
        """Actors as the cluster's state API lists them (``class_name``, ``node_id``, ``state``...)."""
        return self._state_api("actors")

    def tasks(self) -> list[dict[str, Any]]:
        """Tasks and actor method calls as the cluster's state API lists them (``name``, ``node_id``, ``state``...)."""
        return self._state_api("tasks")


def cluster_env(**extra: str) -> dict[str, str]:
    """The environment the nodes start with: this process's, offline Hugging Face, plus ``extra``."""
    env = dict(os.environ)
    for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **extra})
    return env
