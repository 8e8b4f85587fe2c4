"""The cluster configurations under cluster/, checked offline.

The cloud launcher config goes through Ray's own schema (the one ``ray up`` applies). KubeRay publishes its CRD schemas
only in its repository, so the manifests are parsed and their load-bearing fields checked: one image built from
cluster/Dockerfile on this Ray version, a head with no CPU slots, GPUs on the GPU group, and a RayJob entrypoint that
runs a job file mounted from a ConfigMap whose content is a valid lakelabel job.
"""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from lakelabel.jobs.spec import parse_spec

CLUSTER = Path(__file__).resolve().parent.parent / "cluster"
KUBERAY = CLUSTER / "kuberay"
RAY_IMAGE = f"rayproject/ray:{ray.__version__}-py311"


def launcher() -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / "aws.yaml").read_text(encoding="utf-8"))


def manifests(name: str) -> dict[str, dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all((KUBERAY / name).read_text(encoding="utf-8")) if doc]
    by_kind = {doc["kind"]: doc for doc in docs}
    assert len(by_kind) == len(docs), f"{name}: one object per kind"
    return by_kind


def test_the_launcher_config_passes_rays_schema() -> None:
    validate_config(prepare_config(launcher()))


def test_rays_schema_is_a_real_check() -> None:
    config = launcher()
    config["available_node_types"]["gpu"]["min_worker"] = 0
    with pytest.raises(Exception, match="min_worker"):
        validate_config(prepare_config(config))


def test_the_launcher_has_a_cpu_head_and_gpu_and_cpu_workers() -> None:
    config = launcher()
    types = config["available_node_types"]
    assert config["head_node_type"] == "head"
    assert types["head"]["resources"] == {"CPU": 0}
    assert types["gpu"]["node_config"]["InstanceType"].startswith(("g", "p"))
    assert types["gpu"]["docker"]["worker_image"] == f"{RAY_IMAGE}-gpu"
    assert types["gpu"]["min_workers"] == 0 < types["gpu"]["max_workers"]
    assert types["cpu"]["node_config"]["InstanceType"].startswith(("c", "m"))
    assert config["docker"]["image"] == f"{RAY_IMAGE}-cpu"
    assert any("constraints.txt" in command for command in config["setup_commands"])
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head, "the dashboard is reached through `ray dashboard`, not exposed"


def test_the_dockerfile_builds_on_this_ray_version() -> None:
    text = (CLUSTER / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"^FROM {re.escape(RAY_IMAGE)}-gpu$", text, re.MULTILINE)
    assert "-c /home/ray/lakelabel/constraints.txt" in text
    folders = set(
        tomllib.loads((CLUSTER.parent / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
            "package-dir"
        ].values()
    )
    copied = set(re.findall(r"^COPY --chown=ray:users (\w+) /home/ray/lakelabel/\1$", text, re.MULTILINE))
    assert copied == folders, "the image installs every folder the package is built from"


def cluster_specs() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("raycluster.yaml", manifests("raycluster.yaml")["RayCluster"]["spec"]),
        ("rayjob.yaml", manifests("rayjob.yaml")["RayJob"]["spec"]["rayClusterSpec"]),
        ("raycronjob.yaml", manifests("raycronjob.yaml")["RayCronJob"]["spec"]["jobTemplate"]["rayClusterSpec"]),
    ]


def pods(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups = {group["groupName"]: group["template"]["spec"] for group in spec["workerGroupSpecs"]}
    return {"head": spec["headGroupSpec"]["template"]["spec"], **groups}


@pytest.mark.parametrize(("name", "spec"), cluster_specs(), ids=[name for name, _ in cluster_specs()])
def test_every_kuberay_cluster_runs_lakelabel_with_gpus_on_the_gpu_group(name: str, spec: dict[str, Any]) -> None:
    assert spec["rayVersion"] == ray.__version__
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    by_group = pods(spec)
    assert set(by_group) == {"head", "gpu", "cpu"}
    images = {container["image"] for pod in by_group.values() for container in pod["containers"]}
    assert images == {"registry.example.com/lakelabel:0.1.0"}, "one image, built with cluster/Dockerfile"
    for group, pod in by_group.items():
        resources = pod["containers"][0]["resources"]
        gpus = {resources["requests"].get("nvidia.com/gpu"), resources["limits"].get("nvidia.com/gpu")}
        assert gpus == ({"1"} if group == "gpu" else {None}), f"{name}: {group} GPUs {gpus}"
        assert pod["serviceAccountName"] == "lakelabel"
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] == 0 < group["maxReplicas"]


def test_the_job_clusters_are_the_standing_cluster() -> None:
    (_, standing), *jobs = cluster_specs()
    for name, spec in jobs:
        assert spec["workerGroupSpecs"] == standing["workerGroupSpecs"], name
        head = copy.deepcopy(spec["headGroupSpec"]["template"]["spec"])
        head.pop("volumes")
        head["containers"][0].pop("volumeMounts")
        expected = copy.deepcopy(standing["headGroupSpec"]["template"]["spec"])
        expected["containers"][0].pop("ports")
        assert head == expected, name


def job_file(by_kind: dict[str, dict[str, Any]], job: dict[str, Any]) -> dict[str, Any]:
    """The job file a RayJob spec runs: its entrypoint's path, mounted from a ConfigMap of the same manifest."""
    command = shlex.split(job["entrypoint"])
    assert command[:2] in (["lakelabel", "run"], ["python", "-m"]), command
    path = Path(command[-1])
    head = job["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in head["containers"][0]["volumeMounts"]}
    volume = next(v for v in head["volumes"] if v["name"] == mounts[str(path.parent)])
    config_map = by_kind["ConfigMap"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    return yaml.safe_load(config_map["data"][path.name])


def test_the_rayjob_runs_a_valid_job_file_from_its_configmap() -> None:
    by_kind = manifests("rayjob.yaml")
    job = by_kind["RayJob"]["spec"]
    assert job["shutdownAfterJobFinishes"] is True
    spec = parse_spec(job_file(by_kind, job))
    assert spec.steps[0].num_gpus == 1, "a GPU step scales the GPU group up from zero"


def test_the_nightly_raycronjob_resumes_one_output_prefix() -> None:
    by_kind = manifests("raycronjob.yaml")
    cron = by_kind["RayCronJob"]
    assert cron["apiVersion"] == "ray.io/v1"
    assert set(cron["spec"]) == {"schedule", "jobTemplate"}
    fields = cron["spec"]["schedule"].split()
    assert len(fields) == 5, "a five-field cron schedule"
    assert fields[2:] == ["*", "*", "*"], "every day"
    spec = parse_spec(job_file(by_kind, cron["spec"]["jobTemplate"]))
    assert spec.output_mode == "resume"
