"""The output prefix's state across runs: output modes, resume, quarantine, the ``_SUCCESS`` manifest and status.

``output.mode``:

- ``resume`` (default): shards whose completion record matches the spec hash (and the input file's size) are
  skipped; every other shard is redone, its partial output removed first. New shards are simply pending, so
  re-running a scheduled job processes only what landed since. A different spec is refused.
- ``overwrite``: the prefix is emptied first.
- ``error_if_exists``: a prefix holding anything is refused.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.commit import ShardRecord
from jobs.layout import STATE, Layout, remove_temporaries
from jobs.provenance import normalised_spec, provenance, spec_changes, spec_hash

if TYPE_CHECKING:
    from jobs.plan import Plan
    from jobs.shards import Shard
    from jobs.summary import RunSummary


class OutputExistsError(RuntimeError):
    """The output prefix holds output this job must not mix with (another spec, foreign files, or the mode)."""


@dataclass
class RunState:
    """A run about to start: which shards are done already and which it must process."""

    run_id: str
    spec_hash: str
    started_at: float
    provenance: dict[str, Any]
    done: dict[str, ShardRecord] = field(default_factory=dict)
    pending: list[Shard] = field(default_factory=list)


def _check_existing(plan: Plan, layout: Layout, digest: str) -> None:
    spec = plan.spec
    files = layout.files()
    if not files:
        return
    if spec.output_mode == "error_if_exists":
        raise OutputExistsError(
            f"output.uri: {spec.output_uri} already holds {len(files)} file(s) and output.mode is error_if_exists; "
            "set output.mode: resume to continue it or overwrite to replace it"
        )
    if spec.output_mode == "overwrite":
        layout.fs.rm(files)  # everything but this run's lease
        return
    run = layout.read_json(layout.run_file)
    if run is None:
        raise OutputExistsError(
            f"output.uri: {spec.output_uri} holds {len(files)} file(s) that no lakelabel run wrote; "
            "choose another output.uri, or set output.mode: overwrite to replace them"
        )
    if run["spec_hash"] != digest:
        changes = "; ".join(spec_changes(run.get("spec", {}), normalised_spec(spec))) or "the spec hash differs"
        raise OutputExistsError(
            f"output.uri: {spec.output_uri} holds the output of a different job spec ({changes}); "
            "refusing to mix them: set output.mode: overwrite to replace it, or choose another output.uri"
        )


def prepare(plan: Plan) -> RunState:
    """Apply the output mode, then find done and pending shards and clear what pending shards left behind.

    Writes ``_lakelabel/run.json`` and the quarantine records of this run; removes ``_SUCCESS`` until the run ends.
    """
    layout = plan.layout
    digest = spec_hash(plan.spec)
    _check_existing(plan, layout, digest)
    state = RunState(
        run_id=f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}",
        spec_hash=digest,
        started_at=time.time(),
        provenance=provenance(plan.spec),
    )
    records = {raw["key"]: ShardRecord(**raw) for raw in layout.read_json_under(f"{layout.root}/{STATE}/shards")}
    for shard in plan.shards:
        key = layout.key(shard.path)
        record = records.get(key)
        if record and record.spec_hash == digest and record.input_bytes == shard.bytes:
            state.done[key] = record
        else:
            state.pending.append(shard)
    plan.sink.begin(state)  # a table output refuses before a file it references would be removed below
    for shard in state.pending:
        key = layout.key(shard.path)
        for path in (layout.record_file(key), layout.output_file(key)):
            layout.remove(path)
            remove_temporaries(layout.fs, path)
        layout.remove(layout.staging_dir(key), recursive=True)
    layout.remove(layout.success_file)
    layout.remove(f"{layout.root}/{STATE}/quarantine", recursive=True)
    layout.write_json(
        layout.run_file,
        {
            "run_id": state.run_id,
            "spec_hash": digest,
            "spec": normalised_spec(plan.spec),
            "started_at": state.started_at,
            "provenance": state.provenance,
            "shards": [{"key": layout.key(s.path), "input": s.path, "rows": s.rows} for s in plan.shards],
            "quarantined": [{"input": q.path, "reason": q.reason} for q in plan.quarantined],
            "input_position": plan.source.position(),
            "input_since": plan.since,
        },
    )
    for item in plan.quarantined:
        quarantine(layout, item.path, item.reason)
    return state


def quarantine(layout: Layout, path: str, reason: str) -> None:
    """Record that a shard was left out, and why (and drop any partial output of it)."""
    key = layout.key(path)
    layout.remove(layout.staging_dir(key), recursive=True)
    layout.write_json(layout.quarantine_file(key), {"key": key, "input": path, "reason": reason, "at": time.time()})


def write_manifest(
    plan: Plan, state: RunState, summary: RunSummary, *, table: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``_SUCCESS``: every shard's record, the quarantined shards, totals, step stats and provenance.

    ``table``: what the table commits of this run did (a table output), from ``Sink.finish``.
    """
    layout = plan.layout
    records = sorted(layout.read_json_under(f"{layout.root}/{STATE}/shards"), key=lambda r: r["key"])
    quarantined = sorted(layout.read_json_under(f"{layout.root}/{STATE}/quarantine"), key=lambda q: q["input"])
    manifest = {
        "job": plan.spec.name,
        "spec_hash": state.spec_hash,
        "spec": normalised_spec(plan.spec),
        "complete": not quarantined,
        "provenance": state.provenance,
        "run": {
            "id": state.run_id,
            "started_at": state.started_at,
            "finished_at": time.time(),
            "shards_processed": summary.shards_processed,
            "shards_skipped": summary.shards_skipped,
        },
        "totals": {
            "shards": len(records),
            "quarantined": len(quarantined),
            "rows_in": sum(r["rows_in"] for r in records),
            "rows_out": sum(r["rows_out"] for r in records),
            "row_errors": sum(r["row_errors"] for r in records),
        },
        "steps": [step.to_json() for step in summary.steps],
        "shards": records,
        "quarantined": quarantined,
        "input_position": plan.source.position(),
        "input_since": plan.since,
        "table": table,
    }
    layout.write_json(layout.success_file, manifest)
    return manifest
