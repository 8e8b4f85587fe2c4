"""``lakelabel status OUTPUT``: what an output holds, from its own records; reads no input.

``OUTPUT`` is an output prefix, a Delta table's URI, or a job file (the only way to name an Iceberg table: its
catalog is in the job). For a table, the report adds the table's snapshot or version and how many committed shard
files it registers.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lakelabel.jobs.lake.storage import filesystem
from lakelabel.jobs.output.layout import STATE, Layout
from lakelabel.jobs.output.lease import describe, read_lease
from lakelabel.jobs.output.provenance import operator_label

if TYPE_CHECKING:
    from lakelabel.jobs.lake import Sink
    from lakelabel.jobs.spec import StorageSpec


_LISTED = 20


def _when(stamp: float | None) -> str:
    if not stamp:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _locate(target: str, storage: StorageSpec) -> tuple[Layout, str, Sink | None]:
    """The layout holding the records, a label, and the table sink (None for a prefix)."""
    if target.endswith((".yaml", ".yml", ".json")) and Path(target).is_file():
        from lakelabel.jobs.lake import open_sink  # noqa: PLC0415
        from lakelabel.jobs.spec import load_spec  # noqa: PLC0415

        spec = load_spec(target)
        sink = open_sink(spec, "")
        return sink.layout, sink.label, sink if spec.output_table else None
    fs, root = filesystem(target, storage)
    if fs.exists(f"{root}/_delta_log"):
        from lakelabel.jobs.lake.delta import DeltaSink  # noqa: PLC0415
        from lakelabel.jobs.lake.tablespec import TableSpec  # noqa: PLC0415

        sink = DeltaSink(TableSpec(format="delta", uri=target.rstrip("/")), storage, "")
        return sink.layout, sink.label, sink
    return Layout(fs=fs, root=root, input_root=""), target, None


def output_status(target: str, storage: StorageSpec) -> tuple[str, bool]:
    """A report of the output and whether its latest run is complete (``_SUCCESS`` present, nothing quarantined)."""
    layout, uri, sink = _locate(target, storage)
    root = layout.root
    run = layout.read_json(layout.run_file)
    if run is None:
        return f"output {uri}: no lakelabel run has written here", False
    manifest = layout.read_json(layout.success_file)
    records = {r["key"]: r for r in layout.read_records() if r["spec_hash"] == run["spec_hash"]}
    quarantined = layout.read_json_under(f"{root}/{STATE}/quarantine")
    left_out = {item["input"] for item in quarantined}
    planned = [part["key"] for part in run["shards"] if part["input"] not in left_out]
    done = [key for key in planned if key in records]
    pending = [key for key in planned if key not in records]
    finished = manifest is not None and manifest.get("run", {}).get("id") == run["run_id"]
    state = "complete" if finished and not quarantined else "finished with quarantined shards" if finished else (
        "not finished (running, or stopped before the end: `lakelabel run` again resumes it)")  # fmt: skip
    provenance = run["provenance"]
    lines = [
        f"output {uri}",
        f"job {provenance['job']}  spec {run['spec_hash'][:16]}  last run {run['run_id']}: {state}",
        f"  started {_when(run['started_at'])}, finished {_when(manifest['run']['finished_at']) if finished else '-'}",
        f"shards: {len(planned) + len(quarantined)} in the last run's input: {len(done)} done, {len(pending)} pending, "
        f"{len(quarantined)} quarantined",
        f"rows (done shards): {sum(records[k]['rows_in'] for k in done)} in, "
        f"{sum(records[k]['rows_out'] for k in done)} out, {sum(records[k]['row_errors'] for k in done)} with errors",
    ]
    lease = read_lease(layout)
    if lease is not None:
        live = lease.get("expires_at", 0) >= datetime.datetime.now(tz=datetime.UTC).timestamp()
        lines.append(f"{'live run' if live else 'expired lease of a stopped run'}: {describe(lease)}")
    lines += [f"  pending {key}" for key in pending[:_LISTED]]
    lines += [f"  ... and {len(pending) - 20} more pending" for _ in range(len(pending) > 20)]
    lines += [f"  quarantined {q['input']}: {q['reason']}" for q in sorted(quarantined, key=lambda q: q["input"])]
    if run.get("input_position"):
        lines.append("input: " + ", ".join(f"{key} {value}" for key, value in run["input_position"].items()))
        lines += [f"  {line}" for line in run.get("input_since") or []]
    if sink is not None:
        lines += sink.status_lines(run["spec_hash"])
    lines.append("provenance: " + ", ".join(f"{name} {version}" for name, version in provenance["versions"].items()))
    for model in provenance["models"]:
        weights = model.get("weights_sha256")
        resolved = (
            ", ".join(f"{name} sha256 {digest[:16]}" for name, digest in weights.items())
            if weights is not None
            else f"revision {model['revision']} -> {model['resolved_revision'] or 'unresolved'}"
        )
        lines.append(f"  step {model['step']}: {model['model']} ({resolved})")
    lines += [f"  step {code['step']}: operator {operator_label(code)}" for code in provenance.get("operators", [])]
    return "\n".join(lines), finished and not quarantined
