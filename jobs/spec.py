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

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lakelabel.jobs.lake.tablespec import FORMATS, TableSpec, TableSpecError, parse_table
from lakelabel.jobs.safe_yaml import YamlBombError, safe_yaml
from lakelabel.operators import (
    ERROR_COLUMN,
    ModelLoadError,
    Operator,
    OperatorConfig,
    OptionError,
    UnknownTaskError,
    default_model,
    lookup,
    resolve,
)
from lakelabel.operators.core.hub import check_hub_model
from lakelabel.operators.registry import BUILT_IN, Entry

log = logging.getLogger("lakelabel")


class SpecError(ValueError):
    """The job spec is invalid; the message starts with the offending field."""


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
class StepSpec:
    """One model over one column."""

    task: str
    """What ``lakelabel.operators.registry.resolve`` takes: a built-in task's own name, an installed entry point's
    name, or ``module:Class`` (the step's ``operator:``)."""
    model: str
    """A Hub id or a local directory; empty for an operator of your own whose step names no model."""
    input: str
    output: str
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    """Rows per batch; ``None``: sized by ``lakelabel.jobs.blocks.batch_rows``."""
    num_gpus: float | None = None
    num_cpus: float | None = None
    concurrency: tuple[int, int] | None = None
    """Actors ``(min, max)``; ``None``: sized to the cluster by ``lakelabel.jobs.pools.size_pools``."""
    device: str = "auto"
    dtype: str = "auto"
    revision: str | None = None
    trust_remote_code: bool = False
    use_safetensors: bool = True

    def operator(self) -> Operator:
        """Build the (cheap, picklable) operator for this step; loads no model."""
        config = OperatorConfig(
            model=self.model,
            input=self.input,
            output=self.output,
            options=self.options,
            device=self.device,
            dtype=self.dtype,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            use_safetensors=self.use_safetensors,
        )
        return resolve(self.task)(config)


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

    def source_columns(self) -> list[str]:
        """Columns the input shards must hold: the selected ones and every step input no earlier step writes."""
        needed = list(self.input_columns or [])
        produced: set[str] = set()
        for step in self.steps:
            for column in step.operator().columns():
                root = column if column in needed else column.split(".", 1)[0]
                if root not in produced and root not in needed:
                    needed.append(root)
            produced.add(step.output)
        return needed


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MODES = ("resume", "overwrite", "error_if_exists")
_ERROR_POLICIES = ("record", "raise")
_STORAGE_NUMBERS = {"max_attempts": True, "retry_seconds": False, "timeout_seconds": False}  # key: integer?
_STEP_KEYS = {
    "task", "operator", "model", "input", "output", "options", "batch_size", "num_gpus", "num_cpus", "concurrency",
    "device", "dtype", "revision", "trust_remote_code", "use_safetensors",
}  # fmt: skip


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _string(block: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = block.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}.{key}: required, a non-empty string" if required else f"{where}.{key}: a string")
    return value.strip()


def _only(block: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(block) - allowed)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _number(value: Any, where: str, *, integer: bool = False, minimum: float = 0) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise SpecError(f"{where}: must be {kind} >= {minimum}, got {value!r}")
    return value


def _concurrency(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (_number(value, where, integer=True, minimum=1),) * 2
    if isinstance(value, list) and len(value) == 2:
        low, high = (_number(v, where, integer=True, minimum=1) for v in value)
        if low > high:
            raise SpecError(f"{where}: [min, max] with min <= max, got {value!r}")
        return (low, high)
    raise SpecError(f"{where}: an integer or a [min, max] pair, got {value!r}")


def _model(value: str, base: Path) -> str:
    """A local directory (absolute, ``./`` or ``../``, or existing beside the spec) or a Hub id as given."""
    path = Path(value).expanduser()
    if value.startswith(("/", "./", "../", "~")) or (base / path).is_dir():
        return str(path if path.is_absolute() else (base / path).resolve())
    return value


def _default_model(task: str, revision: Any, where: str) -> tuple[str, str]:
    """``pipeline(task)``'s default model and revision (the step's revision, if set), checked to be reachable."""
    try:
        model, default_revision = default_model(task)
    except UnknownTaskError as exc:
        raise SpecError(f"{where}.model: {exc}") from None
    revision = revision if isinstance(revision, str) and revision.strip() else default_revision
    log.warning(
        "%s: no model given; using transformers' default for %s: %s at revision %s", where, task, model, revision
    )
    try:
        check_hub_model(model, revision)
    except ModelLoadError as exc:
        raise SpecError(
            f"{where}.model: not set, so {exc}; set model to a local directory or a cached Hub id"
        ) from None
    return model, revision


_PLACE_KEYS = {"parquet": {"uri"}, "iceberg": {"catalog", "table", "snapshot"}, "delta": {"uri", "version"}}


def _place(block: dict[str, Any], where: str, extra: set[str]) -> tuple[TableSpec | None, str]:
    """Where an input or output lives: a Parquet prefix (``uri``) or a table; returns the table and a URI label."""
    table_format = block.get("format", "parquet")
    if table_format not in FORMATS:
        raise SpecError(f"{where}.format: one of {', '.join(FORMATS)}, got {table_format!r}")
    _only(block, {"format", *extra} | _PLACE_KEYS[table_format], where)
    if table_format == "parquet":
        return None, _string(block, "uri", where) or ""
    try:
        table = parse_table(block, where, reading=where == "input")
    except TableSpecError as exc:
        raise SpecError(str(exc)) from None
    return table, table.uri or f"iceberg://{table.catalog_name}/{table.table}"


def _operator_name(block: dict[str, Any], where: str) -> tuple[str, str]:
    """The step's field naming its operator (``task`` or ``operator``) and the name it gives."""
    given = [key for key in ("task", "operator") if block.get(key) is not None]
    if len(given) != 1:
        which = "both" if given else "neither"
        raise SpecError(
            f"{where}: a step names exactly one of task (a built-in or installed task) and operator (module:Class of "
            f"your own); it names {which}"
        )
    field = given[0]
    name = _string(block, field, where) or ""
    if field == "task" and ":" in name:
        raise SpecError(f"{where}.task: '{name}' names a class; write it as operator: {name}")
    if field == "operator" and ":" not in name:
        raise SpecError(
            f"{where}.operator: '{name}' is not module:Class (for example my_ops.text:Upper); a task name goes in task"
        )
    return field, name


def _step(raw: Any, index: int, base: Path) -> StepSpec:
    where = f"steps[{index}]"
    block = _mapping(raw, where)
    _only(block, _STEP_KEYS, where)
    field, name = _operator_name(block, where)
    values: dict[str, Any] = {key: _string(block, key, where) for key in ("input", "output")}
    try:  # imports a class of your own (no model loads): an import error is the spec's, at plan time
        entry = lookup(name)
        resolve(name)
    except UnknownTaskError as exc:
        raise SpecError(f"{where}.{field}: {exc}") from None
    values["task"] = entry.name
    model = _string(block, "model", where, required=False)
    if model is None and entry.origin == BUILT_IN:
        model, values["revision"] = _default_model(values["task"], block.get("revision"), where)
    values["model"] = _model(model, base) if model else ""  # an operator of your own may need no model
    options = block.get("options") or {}
    values["options"] = _mapping(options, f"{where}.options")
    if "batch_size" in block:
        values["batch_size"] = _number(block["batch_size"], f"{where}.batch_size", integer=True, minimum=1)
    for key in ("num_gpus", "num_cpus"):
        if block.get(key) is not None:
            values[key] = float(_number(block[key], f"{where}.{key}"))
    if "concurrency" in block:
        values["concurrency"] = _concurrency(block["concurrency"], f"{where}.concurrency")
    for key in ("device", "dtype", "revision"):
        if block.get(key) is not None:
            values[key] = _string(block, key, where)
    for key in ("trust_remote_code", "use_safetensors"):
        if key in block:
            if not isinstance(block[key], bool):
                raise SpecError(f"{where}.{key}: must be true or false")
            values[key] = block[key]
    step = StepSpec(**values)
    _build(step, entry, f"{where}.{field}")
    return step


def _build(step: StepSpec, entry: Entry, where: str) -> None:
    """Build the step's operator once (options checked, no model loaded); ``where`` names its task or operator."""
    try:
        step.operator()
    except OptionError as exc:
        raise SpecError(f"{where.rpartition('.')[0]}.options: {exc}") from None
    except Exception as exc:
        if entry.origin == BUILT_IN:
            raise
        raise SpecError(f"{where}: {entry.target} could not be built: {type(exc).__name__}: {exc}") from None


def _check_columns(spec: JobSpec) -> None:
    available = set(spec.input_columns) if spec.input_columns is not None else None
    produced: set[str] = set()
    for index, step in enumerate(spec.steps):
        if step.output == ERROR_COLUMN:
            raise SpecError(f"steps[{index}].output: '{ERROR_COLUMN}' is reserved for row errors")
        if step.output in produced:
            raise SpecError(f"steps[{index}].output: column '{step.output}' is written by an earlier step")
        if available is not None and step.output in available:
            raise SpecError(f"steps[{index}].output: column '{step.output}' is an input column")
        for column in step.operator().columns():
            known = available | produced if available is not None else produced
            if available is not None and column not in known and column.split(".", 1)[0] not in known:
                where = "input" if column == step.input else "options"
                raise SpecError(
                    f"steps[{index}].{where}: column '{column}' is neither in input.columns nor an earlier output"
                )
        produced.add(step.output)


def parse_spec(data: Any, *, base: Path | None = None) -> JobSpec:
    """Validate a spec already loaded from YAML; ``base`` resolves relative model directories."""
    base = base or Path.cwd()
    root = _mapping(data, "job")
    _only(root, {"name", "input", "output", "steps", "storage", "on_error"}, "job")
    name = _string(root, "name", "job")
    if not _NAME.match(name or ""):
        raise SpecError(f"name: letters, digits, '_', '.' and '-' only, got {name!r}")
    source = _mapping(root.get("input"), "input")
    input_table, input_uri = _place(source, "input", {"columns", "bundle_bytes", "split_bytes"})
    columns = source.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns)
    ):
        raise SpecError("input.columns: a non-empty list of column names")
    sink = _mapping(root.get("output"), "output")
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
    commit_every = _number(commit_every, "output.commit_every", integer=True, minimum=1)
    on_error = root.get("on_error", "record")
    if on_error not in _ERROR_POLICIES:
        raise SpecError(f"on_error: one of {', '.join(_ERROR_POLICIES)}, got {on_error!r}")
    steps = root.get("steps")
    if not isinstance(steps, list) or not steps:
        raise SpecError("steps: required, a non-empty list of steps")
    storage = _mapping(root.get("storage") or {}, "storage")
    _only(storage, {"endpoint_url", "region", "profile", "anon", *_STORAGE_NUMBERS}, "storage")
    spec = JobSpec(
        name=name or "",
        input_uri=input_uri,
        input_columns=tuple(columns) if columns else None,
        output_uri=output_uri,
        output_mode=mode,
        on_error=on_error,
        steps=tuple(_step(raw, index, base) for index, raw in enumerate(steps)),
        storage=StorageSpec(
            endpoint_url=_string(storage, "endpoint_url", "storage", required=False),
            region=_string(storage, "region", "storage", required=False),
            profile=_string(storage, "profile", "storage", required=False),
            anon=bool(storage.get("anon", False)),
            **{
                key: _number(storage[key], f"storage.{key}", integer=integer, minimum=1 if integer else 0.1)
                for key, integer in _STORAGE_NUMBERS.items()
                if key in storage
            },
        ),
        input_table=input_table,
        output_table=output_table,
        commit_every=commit_every,
        lease_seconds=_number(sink.get("lease_seconds", 60.0), "output.lease_seconds", minimum=1),
        **{
            key: _number(source[key], f"input.{key}", integer=True, minimum=1)
            for key in ("bundle_bytes", "split_bytes")
            if key in source
        },
    )
    _check_columns(spec)
    return spec


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
