"""What produced an output: the normalised spec and its hash, each model's resolved weights, the library versions.

The spec hash covers what changes the annotations (input, columns, tasks, models, options, revisions, dtype, weight
formats), not how the job is run (name, batch sizes, resources, storage settings, output mode), so a re-run with
more GPUs resumes while a re-run with another model is refused. A step whose operator is not built in (``operator:
module:Class``, or an installed entry point) also carries its class's ``module:Class`` and the version of the
distribution that holds it, or, where no installed distribution does, the SHA-256 of its source file: editing that
file changes the hash.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakelabel.operators.registry import BUILT_IN, distribution_of, lookup, qualified_name, resolve, source_file

if TYPE_CHECKING:
    from lakelabel.jobs.spec import JobSpec, StepSpec

_PACKAGES = ("lakelabel", "ray", "torch", "transformers", "pyarrow")
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth")


def normalised_spec(spec: JobSpec) -> dict[str, Any]:
    """The part of the spec that decides what the output holds, as plain JSON values."""
    return {
        "input": {"uri": spec.input_uri, "columns": list(spec.input_columns) if spec.input_columns else None}
        | ({"table": spec.input_table.identity()} if spec.input_table else {}),
        "steps": [
            {
                "task": step.task,
                "model": step.model,
                "revision": step.revision,
                "input": step.input,
                "output": step.output,
                "options": step.options,
                "dtype": step.dtype,
                "use_safetensors": step.use_safetensors,
                "trust_remote_code": step.trust_remote_code,
            }
            | ({"operator": code} if (code := operator_code(step)) else {})
            for step in spec.steps
        ],
    }


def operator_code(step: StepSpec) -> dict[str, str] | None:
    """What identifies the code of a step whose operator is not built in; None for a built-in task.

    The class's ``module:Class`` with the name and version of the installed distribution that holds it, or with its
    source file's SHA-256 when none does (``registry.distribution_of``).
    """
    if lookup(step.task).origin == BUILT_IN:
        return None
    cls = resolve(step.task)
    dist = distribution_of(cls)
    if dist is not None:
        return {"class": qualified_name(cls), "distribution": dist.metadata["Name"], "version": dist.version}
    path = source_file(cls)
    stat = path.stat()
    return {"class": qualified_name(cls), "source_sha256": _sha256(path, stat.st_size, stat.st_mtime)}


def operator_label(code: dict[str, str]) -> str:
    """``operator_code`` in words: ``my_ops:Upper, source sha256 1a2b3c4d5e6f`` or ``pkg.ops:Shout, pkg 0.1``."""
    where = (
        f"{code['distribution']} {code['version']}"
        if "version" in code
        else f"source sha256 {code['source_sha256'][:12]}"
    )
    return f"{code['class']}, {where}"


def spec_hash(spec: JobSpec) -> str:
    """SHA-256 of the normalised spec in canonical JSON."""
    canonical = json.dumps(normalised_spec(spec), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def spec_changes(old: Any, new: Any, where: str = "") -> list[str]:
    """The fields that differ between two normalised specs, e.g. ``steps[0].model: 'a' -> 'b'``."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            change
            for key in sorted(set(old) | set(new))
            for change in spec_changes(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        ]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and where == "steps":
        return [
            change
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for change in spec_changes(a, b, f"{where}[{i}]")
        ]
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape the output."""
    found = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


@cache
def _sha256(path: Path, size: int, mtime: float) -> str:  # noqa: ARG001 - size and mtime key the cache
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _hub_revision(model: str, revision: str | None) -> str | None:
    """The commit a Hub id resolves to: from the local cache, else from the Hub; None when neither answers."""
    try:
        from huggingface_hub import HfApi, try_to_load_from_cache  # noqa: PLC0415 - only for Hub ids

        cached = try_to_load_from_cache(model, "config.json", revision=revision)
        if isinstance(cached, str) and "/snapshots/" in cached:
            return cached.split("/snapshots/", 1)[1].split("/", 1)[0]
        return HfApi().model_info(model, revision=revision).sha
    except Exception:  # noqa: BLE001 - offline or unknown: provenance says unresolved
        return None


def model_provenance(model: str, revision: str | None) -> dict[str, Any]:
    """A local model's weights files with their SHA-256, or a Hub id with the commit its revision resolves to."""
    path = Path(model)
    if path.is_dir():
        weights = {
            str(file.relative_to(path)): _sha256(file, file.stat().st_size, file.stat().st_mtime)
            for file in sorted(path.rglob("*"))
            if file.is_file() and file.suffix in _WEIGHTS
        }
        return {"model": model, "weights_sha256": weights}
    return {"model": model, "revision": revision or "main", "resolved_revision": _hub_revision(model, revision)}


def provenance(spec: JobSpec) -> dict[str, Any]:
    """Job name, spec hash, each step's model with its resolved weights, operators not built in, the versions."""
    return {
        "job": spec.name,
        "spec_hash": spec_hash(spec),
        "models": [
            {"step": step.output} | model_provenance(step.model, step.revision) for step in spec.steps if step.model
        ],
        "operators": [{"step": step.output} | code for step in spec.steps if (code := operator_code(step)) is not None],
        "versions": versions(),
    }
