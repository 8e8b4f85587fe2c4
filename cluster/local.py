#!/usr/bin/env python3
"""A Ray cluster of one head and N worker nodes on this machine, on 127.0.0.1 only: for development and tests.

Every node is a ``ray start --block`` process in a session of its own with its own ``--temp-dir``; the cluster's
directory records them, so ``down`` and ``kill`` stop exactly this cluster and never another Ray on the machine
(``ray stop`` would stop every Ray process here).

    python cluster/local.py up --workers 2 --dir /tmp/lakelabel-ray
    python cluster/local.py status --dir /tmp/lakelabel-ray
    python cluster/local.py kill worker-1 --dir /tmp/lakelabel-ray    # failure drill: SIGKILL one node
    python cluster/local.py down --dir /tmp/lakelabel-ray

``up`` prints what clients need: the dashboard URL (``lakelabel submit --address``), ``RAY_ADDRESS`` for drivers on
this machine, and ``RAY_AUTH_MODE``/``RAY_AUTH_TOKEN_PATH``: the cluster uses Ray's token authentication with a token
of its own, kept in its directory.

Loopback needs care. With Ray's multi-node switch on (the Linux default), ``ray start`` turns any loopback address,
``--node-ip-address=127.0.0.1`` or ``--address=127.0.0.1:PORT``, into the host's routable one
(ray-project/ray#59110); with it off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) Ray answers 127.0.0.1 but ``ray start``
refuses to add worker nodes. Every node therefore runs with the switch off, and worker nodes start through a
two-line launcher (``_JOIN``) that lifts only that refusal. ``up`` checks that every node registered as 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
STATE = "cluster.json"
DEFAULT_DIR = "/tmp/lakelabel-ray"  # noqa: S108 - short on purpose: Ray's socket paths must stay under 108 bytes
START_TIMEOUT_S = 300.0  # for the nodes to register (a node that exits fails at once); busy machines need minutes

# `ray start` for a worker node, with the multi-node refusal lifted and Ray's address lookup kept on loopback.
_JOIN = (
    "from ray._private import ray_constants, services; "
    "ray_constants.ENABLE_RAY_CLUSTER = True; "
    f"services.get_node_ip_address = lambda address=None: {LOOPBACK!r}; "
    "from ray.scripts.scripts import main; main()"
)


class ClusterError(RuntimeError):
    """The local cluster could not be started, found or stopped; the message says which node and log."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _ray_command() -> str:
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        raise ClusterError("the `ray` command is not installed beside this Python nor on PATH")
    return found


def _state_path(root: Path) -> Path:
    return root / STATE


def load_state(root: Path) -> dict[str, Any]:
    """The cluster recorded in ``root`` by ``up``."""
    path = _state_path(root)
    if not path.exists():
        raise ClusterError(f"{root}: no local cluster recorded here ({STATE} is missing)")
    return json.loads(path.read_text(encoding="utf-8"))


def client_env(state: dict[str, Any]) -> dict[str, str]:
    """Variables a client on this machine sets to reach the cluster (drivers, ``lakelabel submit``)."""
    return {
        "RAY_ADDRESS": state["gcs_address"],
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # else a driver here turns 127.0.0.1 into the host's address
        "RAY_API_SERVER_ADDRESS": state["dashboard_url"],
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": state["auth_token_path"],
    }


def _node_env(state: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN"):
        env.pop(key, None)
    env.update(
        {
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray answers 127.0.0.1 for this machine's address
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": state["auth_token_path"],
            "RAY_USAGE_STATS_ENABLED": "0",
            # A busy development machine starts a node's agents slowly; Ray's defaults (15-30 s) then abort the node.
            "RAY_agent_register_timeout_ms": "120000",
            "RAY_raylet_start_wait_time_s": "120",
            # Job entrypoints run `python`: the one that runs the nodes.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    return env


def _start_node(state: dict[str, Any], node: dict[str, Any]) -> None:
    head = node["name"] == "head"
    launcher = [_ray_command()] if head else [sys.executable, "-c", _JOIN]
    args = [
        *launcher,
        "start",
        "--block",
        "--disable-usage-stats",
        f"--node-name={node['name']}",
        f"--temp-dir={node['temp_dir']}",
        f"--num-cpus={node['num_cpus']}",
        "--num-gpus=0",
        f"--object-store-memory={node['object_store_bytes']}",
        f"--resources={json.dumps(node['resources'])}",
        # Ports from the OS: several nodes (and other Rays) share this machine; Ray's fixed defaults would collide.
        "--min-worker-port=0",
        "--max-worker-port=0",
        "--dashboard-agent-listen-port=0",
    ]
    if head:
        args += [
            "--head",
            f"--port={state['gcs_address'].rsplit(':', 1)[1]}",
            "--include-dashboard=true",
            f"--dashboard-host={LOOPBACK}",
            f"--dashboard-port={state['dashboard_url'].rsplit(':', 1)[1]}",
            f"--ray-client-server-port={state['client_port']}",
        ]
    else:
        args.append(f"--address={state['gcs_address']}")
    log = Path(node["log"]).open("wb")  # noqa: SIM115 - handed to the node process, which outlives this one
    process = subprocess.Popen(  # noqa: S603 - fixed argument list
        args,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_node_env(state),
        start_new_session=True,  # a Ctrl-C in the terminal that ran `up` must not reach the nodes
    )
    log.close()
    node["pid"] = process.pid


def _request(state: dict[str, Any], path: str, timeout: float = 5.0) -> Any:
    token = Path(state["auth_token_path"]).read_text(encoding="utf-8").strip()
    request = urllib.request.Request(  # noqa: S310 - the URL is the cluster's own http://127.0.0.1 dashboard
        state["dashboard_url"] + path, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


def live_nodes(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Nodes as the cluster's state API reports them: ``node_id``, ``node_name``, ``state``, ``node_ip``..."""
    body = _request(state, "/api/v0/nodes?limit=1000&detail=true")
    return list(body["data"]["result"]["result"])


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process from /proc, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name in parentheses may hold spaces
    return fields[0], int(fields[1])


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it when it is a child of this process (``up`` called in-process)
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in {"Z", "X"}


def _tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for(state: dict[str, Any], names: list[str]) -> None:
    """Wait until every node in ``names`` is ALIVE in the cluster's state API; fail fast when one exits."""
    deadline = time.monotonic() + START_TIMEOUT_S
    by_name = {node["name"]: node for node in state["nodes"]}
    while True:
        for name in names:
            node = by_name[name]
            if not _alive(node["pid"]):
                raise ClusterError(f"node {name} exited while starting; log {node['log']}:\n{_tail(node['log'])}")
        try:
            alive = {n["node_name"]: n for n in live_nodes(state) if n["state"] == "ALIVE"}
        except (OSError, urllib.error.URLError, KeyError, ValueError):
            alive = {}
        if all(name in alive for name in names):
            for name in names:
                address = alive[name]["node_ip"]
                if address != LOOPBACK:
                    raise ClusterError(f"node {name} registered as {address}, not {LOOPBACK}")
                by_name[name]["node_id"] = alive[name]["node_id"]
            return
        if time.monotonic() > deadline:
            logs = "\n".join(f"{by_name[n]['log']}:\n{_tail(by_name[n]['log'])}" for n in names)
            raise ClusterError(f"nodes {', '.join(names)} not all alive after {START_TIMEOUT_S:.0f} s\n{logs}")
        time.sleep(0.5)


def _write_state(root: Path, state: dict[str, Any]) -> None:
    path = _state_path(root)
    path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def up(
    root: Path,
    *,
    workers: int = 2,
    head_cpus: int = 0,
    worker_cpus: int = 2,
    worker_resources: list[dict[str, float]] | None = None,
    object_store_mb: int = 200,
    dashboard_port: int | None = None,
) -> dict[str, Any]:
    """Start a head and ``workers`` worker nodes; returns the recorded state (also written to ``root``)."""
    resources = worker_resources or []
    if resources and len(resources) != workers:
        raise ClusterError(f"--worker-resources given {len(resources)} time(s) for {workers} worker(s)")
    if _state_path(root).exists() and any(_alive(n.get("pid")) for n in load_state(root)["nodes"]):
        raise ClusterError(f"{root}: a local cluster is already up here; run `down` first")
    root.mkdir(parents=True, exist_ok=True)
    token_path = root / "auth_token"
    token_path.write_text(secrets.token_hex(32), encoding="utf-8")
    token_path.chmod(0o600)
    state: dict[str, Any] = {
        "dir": str(root),
        "gcs_address": f"{LOOPBACK}:{_free_port()}",
        "dashboard_url": f"http://{LOOPBACK}:{dashboard_port or _free_port()}",
        "client_port": _free_port(),
        "auth_token_path": str(token_path),
        "nodes": [],
    }
    specs = [("head", head_cpus, {})] + [
        (f"worker-{i + 1}", worker_cpus, resources[i] if resources else {}) for i in range(workers)
    ]
    for name, cpus, extra in specs:
        node_dir = root / name
        shutil.rmtree(node_dir, ignore_errors=True)
        node_dir.mkdir()
        state["nodes"].append(
            {
                "name": name,
                "num_cpus": cpus,
                "resources": extra,
                "object_store_bytes": object_store_mb * 1024 * 1024,
                "temp_dir": str(node_dir),
                "log": str(root / f"{name}.log"),
                "pid": None,
                "node_id": None,
            }
        )
    try:
        _start_node(state, state["nodes"][0])
        _write_state(root, state)
        _wait_for(state, ["head"])
        for node in state["nodes"][1:]:  # one at a time: nodes starting together starve each other of CPU
            _start_node(state, node)
            _write_state(root, state)
            _wait_for(state, [node["name"]])
    except BaseException:
        _write_state(root, state)
        down(root)
        raise
    _write_state(root, state)
    return state


def _tree(pid: int | None) -> list[int]:
    """A node's processes: its ``ray start`` first, then every descendant (raylet, agents, workers)."""
    if not _alive(pid):
        return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            children.setdefault(stat[1], []).append(int(entry.name))
    found = [pid]
    for parent in found:  # grows while it is walked: breadth first
        found.extend(children.get(parent, []))
    return found


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` seconds for ``pids`` to exit; returns those still alive."""
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def kill(root: Path, name: str) -> list[int]:
    """SIGKILL every process of node ``name`` at once, as a machine failure would; returns the pids killed."""
    state = load_state(root)
    nodes = {node["name"]: node for node in state["nodes"]}
    if name not in nodes:
        raise ClusterError(f"no node {name!r}; nodes: {', '.join(nodes)}")
    pids = _tree(nodes[name]["pid"])
    _signal(pids, signal.SIGKILL)
    _wait_gone(pids, timeout=10)
    return pids


def down(root: Path, *, grace_s: float = 15.0) -> None:
    """Stop the cluster: each node's ``ray start`` gets SIGTERM (workers first), leftovers get SIGKILL."""
    state = load_state(root)
    for node in reversed(state["nodes"]):  # workers first, the head last
        pids = _tree(node.get("pid"))
        if not pids:
            continue
        _signal(pids[:1], signal.SIGTERM)  # `ray start --block` stops its own processes in order
        left = _wait_gone(pids[:1], timeout=grace_s)
        left = _wait_gone(pids, timeout=0 if left else 2)
        _signal(left, signal.SIGKILL)
        _wait_gone(left, timeout=5)


def status(root: Path) -> dict[str, Any]:
    """The recorded cluster with, per node, whether its processes run and its state in the cluster."""
    state = load_state(root)
    try:
        reported = {n["node_name"]: n for n in live_nodes(state)} if _alive(state["nodes"][0]["pid"]) else {}
    except (OSError, urllib.error.URLError):
        reported = {}
    for node in state["nodes"]:
        node["running"] = _alive(node.get("pid"))
        node["state"] = reported.get(node["name"], {}).get("state", "UNKNOWN")
    return state


def _print_env(state: dict[str, Any]) -> None:
    for key, value in client_env(state).items():
        sys.stdout.write(f"export {key}={value}\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("command", choices=["up", "down", "status", "kill"])
    parser.add_argument("node", nargs="?", help="kill: the node to kill (worker-1, ...)")
    parser.add_argument("--dir", default=DEFAULT_DIR, type=Path, help="where the cluster keeps its state and logs")
    parser.add_argument("--workers", type=int, default=2, help="up: worker nodes beside the head")
    parser.add_argument("--head-cpus", type=int, default=0, help="up: CPU slots of the head (0: it only coordinates)")
    parser.add_argument("--worker-cpus", type=int, default=2, help="up: CPU slots of each worker node")
    parser.add_argument(
        "--worker-resources",
        type=json.loads,
        action="append",
        help="up: custom resources of one worker, in order, e.g. '{\"node_a\": 1}' (once per worker)",
    )
    parser.add_argument("--object-store-mb", type=int, default=200, help="up: object store of each node")
    parser.add_argument("--dashboard-port", type=int, default=None, help="up: dashboard port (default: a free one)")
    parser.add_argument("--json", action="store_true", help="up, status: print the state as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``up``, ``down``, ``status`` or ``kill NODE``; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "kill" and not args.node:
        parser.error("kill: name the node, e.g. worker-1")
    root = args.dir.resolve()
    try:
        if args.command == "up":
            state = up(
                root,
                workers=args.workers,
                head_cpus=args.head_cpus,
                worker_cpus=args.worker_cpus,
                worker_resources=args.worker_resources,
                object_store_mb=args.object_store_mb,
                dashboard_port=args.dashboard_port,
            )
            if args.json:
                sys.stdout.write(json.dumps(state) + "\n")
            else:
                sys.stdout.write(f"{len(state['nodes'])} node(s) up; dashboard {state['dashboard_url']}\n")
                _print_env(state)
        elif args.command == "down":
            down(root)
        elif args.command == "kill":
            kill(root, args.node)
        else:
            state = status(root)
            if args.json:
                sys.stdout.write(json.dumps(state) + "\n")
            else:
                for node in state["nodes"]:
                    running = "running" if node["running"] else "stopped"
                    sys.stdout.write(f"{node['name']:<10} {running:<8} {node['state']:<8} {node['node_id'] or ''}\n")
                _print_env(state)
    except ClusterError as exc:
        sys.stderr.write(f"cluster/local.py: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
