"""The output prefix's state across runs: output modes, resume, quarantine, the ``_SUCCESS`` manifest and status.

``output.mode``:

- ``resume`` (default): parts (whole shards, or row-group ranges of big ones) whose completion record matches the
  spec hash (and the input file's size) are skipped; every other part is redone, its partial output removed first.
  New shards are simply pending, so re-running a scheduled job processes only what landed since. A different
  spec is refused.
- ``overwrite``: the prefix is emptied first.
- ``error_if_exists``: a prefix holding anything is refused.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakelabel.jobs.output.commit import ShardRecord
from lakelabel.jobs.output.layout import STATE, Layout, remove_temporaries
from lakelabel.jobs.output.provenance import normalised_spec, provenance, spec_changes, spec_hash

if TYPE_CHECKING:
    from lakelabel.jobs.console.summary import RunSummary
    from lakelabel.jobs.lake.units import Part, Unit
    from lakelabel.jobs.plan import Plan


class OutputExistsError(RuntimeError):
    """The output prefix holds output this job must not mix with (another spec, foreign files, or the mode)."""


@dataclass
class RunState:
    """A run about to start: which parts are done already, which it must process, and in which commit units."""

    run_id: str
    spec_hash: str
    started_at: float
    provenance: dict[str, Any]
    done: dict[str, ShardRecord] = field(default_factory=dict)
    pending: list[Part] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)


def _check_existing(plan: Plan, layout: Layout, digest: str) -> list[str]:
    """Apply the output mode; return the files the prefix holds now."""
    spec = plan.spec
    files = layout.files()
    if not files:
        return files
    if spec.output_mode == "error_if_exists":
        raise OutputExistsError(
            f"output.uri: {spec.output_uri} already holds {len(files)} file(s) and output.mode is error_if_exists; "
            "set output.mode: resume to continue it or overwrite to replace it"
        )
    if spec.output_mode == "overwrite":
        layout.fs.rm(files)  # everything but this run's lease
        return []
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
    return files


def _clear_pending(
    layout: Layout, pending: list[Part], done: set[str], files: list[str], objects: dict[str, list[dict[str, Any]]]
) -> None:
    """Remove what pending parts left behind: output files of their inputs (whole or by row groups), records.

    A bundle's record object that also holds done parts is rewritten without the pending ones.
    """
    inputs = {part.path for part in pending}
    keys = {layout.key(path) for path in inputs}
    pattern = re.compile(r"(.*?)(\.rg\d{5}-\d{5})?\.parquet")
    stale = []
    for path in files:
        name = path.removeprefix(f"{layout.root}/")
        match = pattern.fullmatch(name)
        if match and match.group(1) in keys and name.removesuffix(".parquet") not in done:
            stale.append(path)
    for path, records in objects.items():
        keep = [r for r in records if r["key"] in done or (r["input"] not in inputs and r["key"] not in keys)]
        if len(keep) == len(records):
            continue
        if keep:
            unit = path.removeprefix(f"{layout.records_root}/").removesuffix(".json")
            layout.write_json(path, {"unit": unit, "records": keep})
        else:
            stale.append(path)
    if stale:
        layout.fs.rm(stale)  # one batched delete on an object store
    for path in stale:
        remove_temporaries(layout.fs, path)
    for part in pending:
        remove_temporaries(layout.fs, layout.output_file(part.key))


def prepare(plan: Plan) -> RunState:
    """Apply the output mode, then find done and pending shards and clear what pending shards left behind.

    Writes ``_lakelabel/run.json`` and the quarantine records of this run; removes ``_SUCCESS`` until the run ends.
    """
    layout = plan.layout
    digest = spec_hash(plan.spec)
    files = _check_existing(plan, layout, digest)
    state = RunState(
        run_id=f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}",
        spec_hash=digest,
        started_at=time.time(),
        provenance=provenance(plan.spec),
    )
    objects = layout.read_record_files() if files else {}
    records = {raw["key"]: ShardRecord(**raw) for raw in layout.read_records(objects)}
    parts = plan.parts()
    for part in parts:
        record = records.get(part.key)
        if record and record.spec_hash == digest and record.input_bytes == part.shard.bytes:
            state.done[part.key] = record
        else:
            state.pending.append(part)
    state.units = plan.units(state.pending)
    plan.sink.begin(state)  # a table output refuses before a file it references would be removed below
    if state.pending and files:
        _clear_pending(layout, state.pending, set(state.done), files, objects)
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


def quarantine(layout: Layout, path: str, reason: str) -> None:
    """Record that a shard was left out, and why (and drop any partial output of it)."""
    key = layout.key(path)
    layout.remove(layout.staging_dir(key), recursive=True)
    layout.write_json(layout.quarantine_file(key), {"key": key, "input": path, "reason": reason, "at": time.time()})


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
