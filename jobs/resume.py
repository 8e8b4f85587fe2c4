"""A run's start and end on its output: apply the output mode, find done and pending parts, write ``_SUCCESS``.

The resume rule itself is ``lakelabel.jobs.records.done_parts``; the output modes and what a re-run clears are in
``lakelabel.jobs.output.state``.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from lakelabel.jobs.output.layout import STATE
from lakelabel.jobs.output.provenance import normalised_spec, provenance, spec_hash
from lakelabel.jobs.output.state import RunState, check_existing, clear_pending, quarantine
from lakelabel.jobs.records import ShardRecord, done_parts

if TYPE_CHECKING:
    from lakelabel.jobs.console.summary import RunSummary
    from lakelabel.jobs.plan import Plan

__all__ = ["prepare", "write_manifest"]


def prepare(plan: Plan) -> RunState:
    """Apply the output mode, then find done and pending shards and clear what pending shards left behind.

    Writes ``_lakelabel/run.json`` and the quarantine records of this run; removes ``_SUCCESS`` until the run ends.
    """
    layout = plan.layout
    digest = spec_hash(plan.spec)
    files = check_existing(plan.spec, layout, digest)
    state = RunState(
        run_id=f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}",
        spec_hash=digest,
        started_at=time.time(),
        provenance=provenance(plan.spec),
    )
    objects = layout.read_record_files() if files else {}
    parts = plan.parts()
    done = done_parts({part.key: part.shard.bytes for part in parts}, layout.read_records(objects), digest)
    for part in parts:
        if part.key in done:
            state.done[part.key] = ShardRecord(**done[part.key])
        else:
            state.pending.append(part)
    state.units = plan.units(state.pending)
    plan.sink.begin(state)  # a table output refuses before a file it references would be removed below
    if state.pending and files:
        clear_pending(layout, state.pending, set(state.done), files, objects)
    layout.remove(layout.staging_root, recursive=True)
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
            "shards": [{"key": p.key, "input": p.path, "rows": p.rows} for p in parts],
            "quarantined": [{"input": q.path, "reason": q.reason} for q in plan.quarantined],
            "input_position": plan.source.position(),
            "input_since": plan.since,
        },
    )
    for item in plan.quarantined:
        quarantine(layout, item.path, item.reason)
    return state


def write_manifest(
    plan: Plan, state: RunState, summary: RunSummary, *, table: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``_SUCCESS``: every part's record, the quarantined shards, totals, step stats, requests, provenance.

    ``table``: what the table commits of this run did (a table output), from ``Sink.finish``.
    """
    layout = plan.layout
    records = layout.read_records()
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
            "units_processed": summary.units_processed,
            "requests": summary.requests,
            "requests_per_shard": summary.requests_per_shard,
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
