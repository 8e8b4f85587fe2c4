"""The output prefix's state across runs: output modes, what a re-run clears, quarantine records.

``lakelabel.jobs.resume`` applies these at the start of a run and writes the ``_SUCCESS`` manifest at its end.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakelabel.jobs.output.layout import Layout, remove_temporaries
from lakelabel.jobs.output.provenance import normalised_spec, spec_changes
from lakelabel.jobs.records import ShardRecord

if TYPE_CHECKING:
    from lakelabel.jobs.lake.units import Part, Unit
    from lakelabel.jobs.spec import JobSpec


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


def check_existing(spec: JobSpec, layout: Layout, digest: str) -> list[str]:
    """Apply the output mode (refuse, or empty the prefix); return the files the prefix holds now."""
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


def clear_pending(
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


def quarantine(layout: Layout, path: str, reason: str) -> None:
    """Record that a shard was left out, and why (and drop any partial output of it)."""
    key = layout.key(path)
    layout.remove(layout.staging_dir(key), recursive=True)
    layout.write_json(layout.quarantine_file(key), {"key": key, "input": path, "reason": reason, "at": time.time()})
