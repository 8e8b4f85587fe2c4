"""Operators of your own: ``operator: module:Class`` and tasks installed packages declare as entry points.

The classes live outside the repository, in modules each test writes to its own temporary directory and puts on the
path: ``sys.path`` for the checks made here, ``PYTHONPATH`` for jobs, which run as ``python -m lakelabel run`` in a
subprocess with a local Ray of their own (its workers import the module from ``PYTHONPATH``, as a user's would).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakelabel.jobs.isolation import DIED
from lakelabel.jobs.output.provenance import normalised_spec, spec_changes, spec_hash
from lakelabel.jobs.output.state import OutputExistsError
from lakelabel.jobs.plan import make_plan
from lakelabel.jobs.resume import prepare
from lakelabel.jobs.spec import SpecError, load_spec, parse_spec
from lakelabel.operators import ERROR_COLUMN, resolve
from lakelabel.operators.text.text_classification import TextClassification
from tests.test_exactly_once import output_files, records, run_until

ROOT = Path(__file__).resolve().parents[1]
MODULE = "lakelabel_test_upper"
"""The module of the test's own operator (unique, so nothing else on the path answers to it)."""

UPPER = '''\
"""A job's own operator: upper-cases a text column, no model."""

from __future__ import annotations

import os
import time

import pyarrow as pa

from lakelabel import Operator, OptionError


class Upper(Operator):
    """A row holding 'boom' raises (a row error); one holding 'CRASH' ends its worker process."""

    defaults = {"suffix": "", "pause": 0.0}
    uses_gpu = False
    batch_size = 8

    def validate_options(self) -> None:
        pause = self.options["pause"]
        if isinstance(pause, bool) or not isinstance(pause, (int, float)) or pause < 0:
            raise OptionError(f"step '{self.config.output}': option pause must be a number >= 0, got {pause!r}")

    def output_type(self) -> pa.DataType:
        return pa.string()

    def load(self) -> None:
        self.pid = os.getpid()

    def annotate(self, texts: list) -> pa.Array:
        values = []
        for text in texts:
            if "CRASH" in text:
                os._exit(1)
            if "boom" in text:
                raise ValueError(f"boom in {text!r}")
            values.append(text.upper() + self.options["suffix"])
        time.sleep(self.options["pause"] * len(texts))
        return pa.array(values, pa.string())


class NotAnOperator:
    """Has the methods, but is no lakelabel.Operator."""

    def annotate(self, texts: list) -> list:
        return texts
'''


def write_module(directory: Path, name: str = MODULE, source: str = UPPER) -> Path:
    """``directory/name.py`` holding ``source``; returns the file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return path


def write_distribution(
    root: Path, name: str, version: str, files: dict[str, str], entry_points: dict[str, str]
) -> Path:
    """An installed distribution as pip leaves one in ``root``: its files, and ``NAME-VERSION.dist-info/`` with
    ``METADATA``, ``entry_points.txt`` (group ``lakelabel.operators``) and ``RECORD`` (the file list)."""
    info = root / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    points = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[lakelabel.operators]\n{points}", encoding="utf-8")
    listed = [*files, f"{info.name}/METADATA", f"{info.name}/entry_points.txt", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{path},,\n" for path in listed), encoding="utf-8")
    return root


def forget(*modules: str) -> None:
    """Drop ``modules`` (and their submodules) from ``sys.modules``, so the next import reads this test's files."""
    for name in [m for m in sys.modules if m in modules or m.startswith(tuple(f"{m}." for m in modules))]:
        del sys.modules[name]


@pytest.fixture
def own_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's operator module, outside the repository, importable here; returns its file."""
    path = write_module(tmp_path / "ops")
    forget(MODULE)
    monkeypatch.syspath_prepend(str(path.parent))
    yield path
    forget(MODULE)


def job(tmp_path: Path, step: dict, **extra: object) -> dict:
    return {
        "name": "own",
        "input": {"uri": str(tmp_path / "in")},
        "output": {"uri": str(tmp_path / "out")},
        "steps": [{"input": "text", "output": "upper", **step}],
        **extra,
    }


def write_job(tmp_path: Path, step: dict) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(job(tmp_path, step)), encoding="utf-8")
    return path


def texts(shard: int, rows: int, marks: dict[int, str | None]) -> list[str | None]:
    return [marks.get(i, f"shard {shard} row {i}: fine weather") for i in range(rows)]


def write_input(tmp_path: Path, shards: dict[int, list[str | None]]) -> None:
    (tmp_path / "in").mkdir(parents=True, exist_ok=True)
    for shard, values in shards.items():
        ids = [shard * 1000 + i for i in range(len(values))]
        table = pa.table({"id": pa.array(ids, pa.int64()), "text": pa.array(values, pa.string())})
        pq.write_table(table, tmp_path / "in" / f"part-{shard:02d}.parquet")


def run_cli(job_path: Path, python_path: Path, log: Path) -> subprocess.CompletedProcess[str]:
    """``python -m lakelabel run JOB`` with ``python_path`` first on ``PYTHONPATH``; its own local Ray."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_ADDRESS="")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(python_path), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "lakelabel", "run", str(job_path)],
        cwd=job_path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    return done


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def output(tmp_path: Path) -> dict[int, dict]:
    """Every output row by id."""
    fs = fsspec.filesystem("file")
    rows = [row for path in output_files(fs, str(tmp_path / "out")) for row in pq.read_table(path).to_pylist()]
    by_id = {row["id"]: row for row in rows}
    assert len(by_id) == len(rows), "a row is in the output twice"
    return by_id


# -- the spec ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "start", "names"),
    [
        ({"task": "text-classification", "operator": f"{MODULE}:Upper"}, "steps[0]: ", ["task", "operator", "both"]),
        ({}, "steps[0]: ", ["task", "operator", "neither"]),
        ({"operator": "lakelabel_no_such_module:Upper"}, "steps[0].operator: ", ["lakelabel_no_such_module"]),
        ({"operator": f"{MODULE}:Missing"}, "steps[0].operator: ", [MODULE, "Missing"]),
        ({"operator": f"{MODULE}:NotAnOperator"}, "steps[0].operator: ", [MODULE, "not a subclass of lakelabel."]),
        ({"operator": f"{MODULE}:os"}, "steps[0].operator: ", [MODULE, "not a subclass of lakelabel.Operator"]),
        ({"operator": "lakelabel.operators.core.base:Operator"}, "steps[0].operator: ", ["abstract", "annotate"]),
        ({"operator": MODULE}, "steps[0].operator: ", ["not module:Class"]),
        ({"task": f"{MODULE}:Upper"}, "steps[0].task: ", ["names a class", f"operator: {MODULE}:Upper"]),
        ({"task": "upper-case-nowhere"}, "steps[0].task: ", ["unknown task", "text-classification", "operator:"]),
        ({"operator": f"{MODULE}:Upper", "options": {"pause": -1}}, "steps[0].options: ", ["pause", "-1"]),
        ({"operator": f"{MODULE}:Upper", "options": {"colour": 1}}, "steps[0].options: ", ["colour", "pause, suffix"]),
    ],
)
def test_spec_errors_name_the_step_the_field_and_the_module(
    step: dict, start: str, names: list[str], tmp_path: Path, own_module: Path
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(job(tmp_path, step))
    message = str(raised.value)
    assert message.startswith(start), message
    for name in names:
        assert name in message, message


def test_an_import_error_inside_the_module_is_a_spec_error_naming_it(tmp_path: Path, own_module: Path) -> None:
    write_module(own_module.parent, "lakelabel_test_broken", "import lakelabel_no_such_dependency\n")
    with pytest.raises(
        SpecError, match=r"^steps\[0\]\.operator: cannot import module 'lakelabel_test_broken'"
    ) as raised:
        parse_spec(job(tmp_path, {"operator": "lakelabel_test_broken:Upper"}))
    assert "No module named 'lakelabel_no_such_dependency'" in str(raised.value)
    forget("lakelabel_test_broken")


def test_the_class_is_imported_when_the_spec_is_checked_and_its_options_validated(
    tmp_path: Path, own_module: Path
) -> None:
    spec = parse_spec(job(tmp_path, {"operator": f"{MODULE}:Upper", "options": {"suffix": "!"}}))
    (step,) = spec.steps
    assert MODULE in sys.modules
    assert (step.task, step.model) == (f"{MODULE}:Upper", "")
    operator = step.operator()
    assert type(operator) is resolve(f"{MODULE}:Upper")
    assert operator.options == {"suffix": "!", "pause": 0.0}
    assert not hasattr(operator, "pid"), "no model (nor anything else) is loaded when the spec is checked"
    annotated = operator(pa.table({"text": ["a", None, "boom", "b"]}))
    assert annotated.column("upper").to_pylist() == ["A!", None, None, "B!"]
    errors = annotated.column(ERROR_COLUMN).to_pylist()
    assert errors[1] == [{"step": "upper", "message": "input column 'text' is null"}]
    assert errors[2] == [{"step": "upper", "message": "ValueError: boom in 'boom'"}]
    assert errors[0] == errors[3] == []


def test_the_spec_hash_carries_the_class_and_its_source_file(tmp_path: Path, own_module: Path) -> None:
    spec = parse_spec(job(tmp_path, {"operator": f"{MODULE}:Upper"}))
    before, digest, old = normalised_spec(spec), spec_hash(spec), sha256(own_module)
    assert before["steps"][0]["operator"] == {"class": f"{MODULE}:Upper", "source_sha256": old}
    builtin = parse_spec(job(tmp_path, {"task": "text-classification", "model": "org/model"}))
    assert "operator" not in normalised_spec(builtin)["steps"][0], "a built-in's hash is as it always was"

    own_module.write_text(UPPER.replace("text.upper()", "text.upper().strip()"), encoding="utf-8")
    after = normalised_spec(spec)
    assert spec_hash(spec) != digest
    assert after["steps"][0]["operator"]["source_sha256"] == sha256(own_module)
    assert spec_changes(before, after) == [f"steps[0].operator.source_sha256: '{old}' -> '{sha256(own_module)}'"]


def test_plan_lists_the_step_with_its_class(tmp_path: Path, own_module: Path) -> None:
    write_input(tmp_path, {0: texts(0, 5, {})})
    plan = make_plan(parse_spec(job(tmp_path, {"operator": f"{MODULE}:Upper"})))
    text = plan.render()
    digest = sha256(own_module)[:12]
    assert f"step 0 operator {MODULE}:Upper, source sha256 {digest}: text -> upper [string]" in text, text
    assert "stage model (none named)" in text, text


# -- entry points ------------------------------------------------------------------------------------------------

SHOUT = UPPER.replace("class Upper(Operator)", "class Shout(Operator)").replace(
    'text.upper() + self.options["suffix"]', 'text.upper() + "!"'
)


def shout_distribution(root: Path) -> Path:
    return write_distribution(
        root,
        "lakelabel_test_shoutops",
        "0.1",
        {"lakelabel_test_shoutops/__init__.py": "", "lakelabel_test_shoutops/ops.py": SHOUT},
        {"shout": "lakelabel_test_shoutops.ops:Shout"},
    )


@pytest.fixture
def shout_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = shout_distribution(tmp_path / "site")
    forget("lakelabel_test_shoutops")
    monkeypatch.syspath_prepend(str(site))
    yield site
    forget("lakelabel_test_shoutops")


@pytest.mark.ray  # its runs start a Ray of their own: the module is on their PYTHONPATH only
def test_an_installed_entry_point_is_a_task_with_its_distributions_version(
    tmp_path: Path, shout_installed: Path
) -> None:
    write_input(tmp_path, {0: texts(0, 4, {1: None})})
    spec = parse_spec(job(tmp_path, {"task": "shout"}))
    assert spec.steps[0].task == "shout"
    code = {"class": "lakelabel_test_shoutops.ops:Shout", "distribution": "lakelabel_test_shoutops", "version": "0.1"}
    assert normalised_spec(spec)["steps"][0]["operator"] == code
    text = make_plan(spec).render()
    assert (
        "step 0 shout (operator lakelabel_test_shoutops.ops:Shout, lakelabel_test_shoutops 0.1): text -> upper" in text
    )

    (tmp_path / "job.yaml").write_text(json.dumps(job(tmp_path, {"task": "shout"})), encoding="utf-8")
    done = run_cli(tmp_path / "job.yaml", shout_installed, tmp_path / "run.log")
    assert done.returncode == 0, (tmp_path / "run.log").read_text()[-4000:]
    rows = output(tmp_path)
    assert [rows[i]["upper"] for i in range(4)] == ["SHARD 0 ROW 0: FINE WEATHER!", None] + [
        f"SHARD 0 ROW {i}: FINE WEATHER!" for i in (2, 3)
    ]
    manifest = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    assert manifest["provenance"]["operators"] == [{"step": "upper", **code}]
    assert manifest["spec"]["steps"][0]["operator"] == code
    assert manifest["spec_hash"] == spec_hash(spec)


def test_an_entry_point_cannot_shadow_a_built_in_and_an_ambiguous_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = {"lakelabel_test_shadow/__init__.py": UPPER}
    site = write_distribution(
        tmp_path / "a", "lakelabel_test_shadow", "0.1", fake,
        {"text-classification": "lakelabel_test_shadow:Upper", "ner": "lakelabel_test_shadow:Upper",
         "twice": "lakelabel_test_shadow:Upper"},
    )  # fmt: skip
    other = write_distribution(
        tmp_path / "b", "lakelabel_test_other", "0.2", {"lakelabel_test_other/__init__.py": UPPER},
        {"twice": "lakelabel_test_other:Upper"},
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(other))
    with caplog.at_level(logging.WARNING, logger="lakelabel"):
        assert resolve("text-classification") is TextClassification
        with pytest.raises(SpecError) as raised:
            parse_spec(job(tmp_path, {"task": "twice"}))
    message = str(raised.value)
    assert message.startswith("steps[0].task: task 'twice' is declared by more than one installed distribution")
    assert "lakelabel_test_shadow 0.1: lakelabel_test_shadow:Upper" in message
    assert "lakelabel_test_other 0.2: lakelabel_test_other:Upper" in message
    for name in ("text-classification", "ner"):
        assert (
            f"entry point {name} = lakelabel_test_shadow:Upper of lakelabel_test_shadow 0.1 is ignored: a built-in "
            "task has that name" in caplog.text
        )
    spec = parse_spec(job(tmp_path, {"task": "sentiment-analysis", "model": "org/model"}))
    assert spec.steps[0].task == "text-classification"
    assert "operator" not in normalised_spec(spec)["steps"][0]


# -- jobs --------------------------------------------------------------------------------------------------------

SHARDS = {
    0: texts(0, 20, {3: None, 5: "shard 0 row 5: boom", 11: None}),
    1: texts(1, 20, {7: "shard 1 row 7: CRASH", 15: None}),
}


@pytest.mark.ray  # its runs start a Ray of their own: the module is on their PYTHONPATH only
def test_a_job_isolates_nulls_a_row_error_and_a_crash_and_records_the_class(tmp_path: Path, own_module: Path) -> None:
    write_input(tmp_path, SHARDS)
    job_path = write_job(tmp_path, {"operator": f"{MODULE}:Upper", "batch_size": 4})
    done = run_cli(job_path, own_module.parent, tmp_path / "run.log")
    log = (tmp_path / "run.log").read_text()
    assert done.returncode == 0, log[-4000:]
    rows = output(tmp_path)
    assert len(rows) == 40
    for shard, values in SHARDS.items():
        for i, text in enumerate(values):
            row = rows[shard * 1000 + i]
            assert row["text"] == text
            if text is None:
                expected = (None, [{"step": "upper", "message": "input column 'text' is null"}])
            elif "boom" in text:
                expected = (None, [{"step": "upper", "message": f"ValueError: boom in {text!r}"}])
            elif "CRASH" in text:
                expected = (None, [{"step": "upper", "message": DIED}])
            else:
                expected = (text.upper(), [])
            assert (row["upper"], row[ERROR_COLUMN]) == expected, (shard, i)
    manifest = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    code = {"class": f"{MODULE}:Upper", "source_sha256": sha256(own_module)}
    assert manifest["provenance"]["operators"] == [{"step": "upper", **code}]
    assert manifest["provenance"]["models"] == []
    assert manifest["spec"]["steps"][0]["operator"] == code
    assert manifest["spec_hash"] == spec_hash(load_spec(job_path))
    assert manifest["totals"]["row_errors"] == 5
    assert f"step upper                {MODULE}:Upper" in done.stdout, done.stdout


@pytest.mark.ray  # its runs start a Ray of their own: the module is on their PYTHONPATH only
def test_a_killed_job_resumes_and_an_edited_module_is_a_different_spec(
    tmp_path: Path, own_module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shards = {shard: texts(shard, 20, {shard % 7: None}) for shard in range(8)}
    write_input(tmp_path, shards)
    job_path = write_job(tmp_path, {"operator": f"{MODULE}:Upper", "options": {"pause": 0.05}, "batch_size": 4})
    fs, out = fsspec.filesystem("file"), str(tmp_path / "out")
    paths = (str(own_module.parent), os.environ.get("PYTHONPATH"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))  # for run_until's `lakelabel run`
    run_until(job_path, lambda: 2 <= len(records(fs, out)) < len(shards), tmp_path / "killed.log", None)
    before = records(fs, out)
    assert 0 < len(before) < len(shards)

    done = run_cli(job_path, own_module.parent, tmp_path / "resumed.log")
    assert done.returncode == 0, (tmp_path / "resumed.log").read_text()[-4000:]
    assert f"{len(shards) - len(before)} processed, {len(before)} already done" in done.stdout, done.stdout
    after = records(fs, out)
    assert {key: after[key]["run_id"] for key in before} == {key: r["run_id"] for key, r in before.items()}
    rows = output(tmp_path)
    assert len(rows) == 20 * len(shards)
    for shard, values in shards.items():
        for i, text in enumerate(values):
            assert rows[shard * 1000 + i]["upper"] == (None if text is None else text.upper())

    old = sha256(own_module)
    own_module.write_text(UPPER.replace("text.upper()", "text.upper().strip()"), encoding="utf-8")
    with pytest.raises(OutputExistsError) as refused:
        prepare(make_plan(load_spec(job_path)))
    message = str(refused.value)
    assert "holds the output of a different job spec" in message
    assert f"steps[0].operator.source_sha256: '{old}' -> '{sha256(own_module)}'" in message
