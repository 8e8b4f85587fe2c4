"""The job spec: a YAML file, loaded safely and validated, with errors that name the field.

Example::

    name: support-tickets
    input:
      uri: s3://lake/tickets/2026-11-21/
      columns: [ticket_id, body]
    output:
      uri: s3://lake/tickets-annotated/2026-11-21/
      mode: resume            # default; or overwrite, error_if_exists
    on_error: record          # default; or raise
    steps:
      - task: token-classification
        model: dslim/bert-base-NER
        input: body
        output: entities
      - task: feature-extraction
        model: sentence-transformers/all-MiniLM-L6-v2
        input: body
        output: embedding
      - operator: my_ops.text:Upper   # a class of your own: a subclass of lakelabel.Operator
        input: body
        output: shouted
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lakelabel.jobs.fields import SpecError, mapping, number, only, string
from lakelabel.jobs.lake.tablespec import FORMATS, TableSpec, TableSpecError, parse_table
from lakelabel.jobs.safe_yaml import YamlBombError, safe_yaml
from lakelabel.jobs.steps import StepSpec, read_step
from lakelabel.operators import (
    ERROR_COLUMN,
    Operator,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "JobSpec",
    "SpecError",
    "StepSpec",
    "StorageSpec",
    "load_spec",
    "parse_job",
    "parse_spec",
    "read_job_file",
]


@dataclass(frozen=True, kw_only=True)
class StorageSpec:
    """Object-storage settings; anything unset comes from the standard AWS variables and files."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    anon: bool = False
    max_attempts: int = 5
    """botocore's attempts per call (``adaptive`` mode: backoff with jitter, client-side rate limiting)."""
    retry_seconds: float = 120.0
    """lakelabel's retry budget per call, after botocore's: an outage longer than this ends the run."""
    timeout_seconds: float = 30.0
    """Connect and read timeout of one attempt: a silent endpoint counts as a failed attempt after this."""


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A whole job: where to read, which steps, where to write."""

    name: str
    input_uri: str
    input_columns: tuple[str, ...] | None
    output_uri: str
    output_mode: str = "resume"
    on_error: str = "record"
    steps: tuple[StepSpec, ...]
    storage: StorageSpec = field(default_factory=StorageSpec)
    input_table: TableSpec | None = None
    """``input.format: iceberg | delta``; None for Parquet under ``input_uri``."""
    output_table: TableSpec | None = None
    """``output.format: iceberg | delta``; None for Parquet under ``output_uri``."""
    commit_every: int = 100
    """A table output gets a commit each time this many shards have committed (and one at the end)."""
    lease_seconds: float = 60.0
    """How long the output's lease lives unless renewed (``jobs/output/lease.py``); a killed run's lease expires."""
    bundle_bytes: int = 32 << 20
    """``input.bundle_bytes``: input files smaller than this are read and committed together, in bundles this big."""
    split_bytes: int = 256 << 20
    """``input.split_bytes``: an input file larger than this is split into row-group ranges of about this size."""

    def source_columns(self, operators: Sequence[Operator] | None = None) -> list[str]:
        """Columns the input shards must hold: the selected ones and every step input no earlier step writes.

        ``operators``: the steps' operators where they are built already.
        """
        needed = list(self.input_columns or [])
        produced: set[str] = set()
        built = operators if operators is not None else [step.operator() for step in self.steps]
        for step, operator in zip(self.steps, built, strict=True):
            for column in operator.columns():
                root = column if column in needed else column.split(".", 1)[0]
                if root not in produced and root not in needed:
                    needed.append(root)
            produced.add(step.output)
        return needed


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MODES = ("resume", "overwrite", "error_if_exists")
_ERROR_POLICIES = ("record", "raise")
_STORAGE_NUMBERS = {"max_attempts": True, "retry_seconds": False, "timeout_seconds": False}  # key: integer?
_PLACE_KEYS = {"parquet": {"uri"}, "iceberg": {"catalog", "table", "snapshot"}, "delta": {"uri", "version"}}


def _place(block: dict[str, Any], where: str, extra: set[str]) -> tuple[TableSpec | None, str]:
    """Where an input or output lives: a Parquet prefix (``uri``) or a table; returns the table and a URI label."""
    table_format = block.get("format", "parquet")
    if table_format not in FORMATS:
        raise SpecError(f"{where}.format: one of {', '.join(FORMATS)}, got {table_format!r}")
    only(block, {"format", *extra} | _PLACE_KEYS[table_format], where)
    if table_format == "parquet":
        return None, string(block, "uri", where) or ""
    try:
        table = parse_table(block, where, reading=where == "input")
    except TableSpecError as exc:
        raise SpecError(str(exc)) from None
    return table, table.uri or f"iceberg://{table.catalog_name}/{table.table}"


def _check_columns(spec: JobSpec, operators: Sequence[Operator]) -> None:
    available = set(spec.input_columns) if spec.input_columns is not None else None
    produced: set[str] = set()
    for index, (step, operator) in enumerate(zip(spec.steps, operators, strict=True)):
        if step.output == ERROR_COLUMN:
            raise SpecError(f"steps[{index}].output: '{ERROR_COLUMN}' is reserved for row errors")
        if step.output in produced:
            raise SpecError(f"steps[{index}].output: column '{step.output}' is written by an earlier step")
        if available is not None and step.output in available:
            raise SpecError(f"steps[{index}].output: column '{step.output}' is an input column")
        for column in operator.columns():
            known = available | produced if available is not None else produced
            if available is not None and column not in known and column.split(".", 1)[0] not in known:
                where = "input" if column == step.input else "options"
                raise SpecError(
                    f"steps[{index}].{where}: column '{column}' is neither in input.columns nor an earlier output"
                )
        produced.add(step.output)


def parse_spec(data: Any, *, base: Path | None = None) -> JobSpec:
    """Validate a spec already loaded from YAML; ``base`` resolves relative model directories."""
    return parse_job(data, base=base)[0]


def parse_job(data: Any, *, base: Path | None = None) -> tuple[JobSpec, list[Operator]]:
    """:func:`parse_spec`, with the steps' operators it built to check them (a run plans with these)."""
    base = base or Path.cwd()
    root = mapping(data, "job")
    only(root, {"name", "input", "output", "steps", "storage", "on_error"}, "job")
    name = string(root, "name", "job")
    if not _NAME.match(name or ""):
        raise SpecError(f"name: letters, digits, '_', '.' and '-' only, got {name!r}")
    source = mapping(root.get("input"), "input")
    input_table, input_uri = _place(source, "input", {"columns", "bundle_bytes", "split_bytes"})
    columns = source.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns)
    ):
        raise SpecError("input.columns: a non-empty list of column names")
    sink = mapping(root.get("output"), "output")
    output_table, output_uri = _place(sink, "output", {"mode", "commit_every", "lease_seconds"})
    mode = sink.get("mode", "resume")
    if mode not in _MODES:
        raise SpecError(f"output.mode: one of {', '.join(_MODES)}, got {mode!r}")
    if output_table is not None and mode == "overwrite":
        raise SpecError("output.mode: overwrite would delete files a table output still references; "
                        "use resume (the default), or write to a new table")  # fmt: skip
    commit_every = sink.get("commit_every", 100)
    if output_table is None and "commit_every" in sink:
        raise SpecError("output.commit_every: only for a table output (format iceberg or delta)")
    commit_every = number(commit_every, "output.commit_every", integer=True, minimum=1)
    on_error = root.get("on_error", "record")
    if on_error not in _ERROR_POLICIES:
        raise SpecError(f"on_error: one of {', '.join(_ERROR_POLICIES)}, got {on_error!r}")
    steps = root.get("steps")
    if not isinstance(steps, list) or not steps:
        raise SpecError("steps: required, a non-empty list of steps")
    built = [read_step(raw, index, base) for index, raw in enumerate(steps)]
    storage = mapping(root.get("storage") or {}, "storage")
    only(storage, {"endpoint_url", "region", "profile", "anon", *_STORAGE_NUMBERS}, "storage")
    spec = JobSpec(
        name=name or "",
        input_uri=input_uri,
        input_columns=tuple(columns) if columns else None,
        output_uri=output_uri,
        output_mode=mode,
        on_error=on_error,
        steps=tuple(step for step, _ in built),
        storage=StorageSpec(
            endpoint_url=string(storage, "endpoint_url", "storage", required=False),
            region=string(storage, "region", "storage", required=False),
            profile=string(storage, "profile", "storage", required=False),
            anon=bool(storage.get("anon", False)),
            **{
                key: number(storage[key], f"storage.{key}", integer=integer, minimum=1 if integer else 0.1)
                for key, integer in _STORAGE_NUMBERS.items()
                if key in storage
            },
        ),
        input_table=input_table,
        output_table=output_table,
        commit_every=commit_every,
        lease_seconds=number(sink.get("lease_seconds", 60.0), "output.lease_seconds", minimum=1),
        **{
            key: number(source[key], f"input.{key}", integer=True, minimum=1)
            for key in ("bundle_bytes", "split_bytes")
            if key in source
        },
    )
    operators = [operator for _, operator in built]
    _check_columns(spec, operators)
    return spec, operators


def read_job_file(path: str | Path) -> tuple[Any, Path]:
    """A job file's YAML (safe loader: no arbitrary objects; no alias bombs) and the directory it lies in.

    Cheap: no step is checked yet (``parse_spec`` imports each step's libraries to check its options).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the job file: {exc.strerror}") from None
    try:
        data = safe_yaml(text)
    except YamlBombError as exc:
        raise SpecError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    return data, path.resolve().parent


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a job file."""
    data, base = read_job_file(path)
    return parse_spec(data, base=base)
