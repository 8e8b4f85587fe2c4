from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import ray

from lakelabel.jobs.cli import main
from lakelabel.jobs.spec import SpecError, load_spec, parse_spec


def job(**overrides: object) -> dict:
    spec = {
        "name": "j",
        "input": {"uri": "/data/in", "columns": ["id", "text"]},
        "output": {"uri": "/data/out"},
        "steps": [
            {"task": "text-classification", "model": "org/model", "input": "text", "output": "sentiment"},
        ],
    }
    spec.update(overrides)
    return spec


def step(**fields: object) -> dict:
    return {"task": "feature-extraction", "model": "org/model", "input": "text", "output": "vec", **fields}


def test_a_valid_spec_parses_with_defaults() -> None:
    spec = parse_spec(job(steps=[step(batch_size=8, concurrency=[1, 3], num_gpus=0.5)]))
    (only,) = spec.steps
    assert (only.batch_size, only.concurrency, only.num_gpus) == (8, (1, 3), 0.5)
    assert only.device == "auto"
    assert only.trust_remote_code is False
    assert only.use_safetensors is True
    assert spec.output_mode == "resume"
    assert spec.on_error == "record"
    assert spec.source_columns() == ["id", "text"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "job.name"),
        ({"input": {"columns": ["text"]}}, "input.uri"),
        ({"output": "s3://x"}, "output"),
        ({"output": {"uri": "/o", "mode": "sometimes"}}, "output.mode"),
        ({"steps": []}, "steps"),
        ({"steps": [step(model=None)]}, "steps[0].model"),
        ({"steps": [step(), step(output="vec")]}, "steps[1].output"),
        ({"steps": [step(batch_size=0)]}, "steps[0].batch_size"),
        ({"steps": [step(concurrency=[3, 1])]}, "steps[0].concurrency"),
        ({"steps": [step(input="body")]}, "steps[0].input"),
        ({"steps": [step(options={"bogus": 1})]}, "steps[0].options"),
        ({"steps": [step(colour="red")]}, "steps[0]"),
        ({"steps": [step(trust_remote_code="yes")]}, "steps[0].trust_remote_code"),
        ({"steps": [step(output="lakelabel_errors")]}, "steps[0].output"),
        ({"storage": {"endpoint": "http://x"}}, "storage"),
        ({"on_error": "ignore"}, "on_error"),
    ],
)
def test_invalid_specs_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(job(**change))
    assert str(raised.value).startswith(field), str(raised.value)


def test_an_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"steps\[0\]\.task: unknown task 'sentiment'") as raised:
        parse_spec(job(steps=[step(task="sentiment")]))
    for task in (
        "feature-extraction",
        "text-classification",
        "token-classification",
        "zero-shot-classification",
    ):
        assert task in str(raised.value)


def test_chained_steps_may_read_an_earlier_output() -> None:
    spec = parse_spec(
        job(
            steps=[
                step(output="vec"),
                {"task": "text-classification", "model": "m", "input": "text", "output": "label"},
            ]
        )
    )
    assert [s.output for s in spec.steps] == ["vec", "label"]


def test_relative_model_directories_resolve_beside_the_job_file(tmp_path: Path) -> None:
    (tmp_path / "models" / "mine").mkdir(parents=True)
    path = tmp_path / "job.yaml"
    path.write_text(
        "name: j\ninput: {uri: in}\noutput: {uri: out}\n"
        "steps:\n  - {task: feature-extraction, model: models/mine, input: text, output: vec}\n"
        "  - {task: feature-extraction, model: sentence-transformers/all-MiniLM-L6-v2, input: text, output: v2}\n"
    )
    spec = load_spec(path)
    assert spec.steps[0].model == str(tmp_path / "models" / "mine")
    assert spec.steps[1].model == "sentence-transformers/all-MiniLM-L6-v2"


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_cli_exits_non_zero_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: j\ninput: {uri: in}\noutput: {uri: out}\nsteps:\n  - {task: nope, model: m, input: t}\n")
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "steps[0].output" in err


@pytest.mark.ray
def test_cli_lists_known_tasks_for_an_unknown_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "name: j\ninput: {uri: in}\noutput: {uri: out}\nsteps:\n  - {task: nope, model: m, input: t, output: o}\n"
    )
    ray_before = ray.is_initialized()
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'nope'" in err
    assert "zero-shot-classification" in err
    # The steps are checked while Ray starts; a refused job leaves no Ray of its own behind.
    assert ray.is_initialized() == ray_before


def test_a_job_file_that_is_not_yaml_is_refused_before_ray_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakelabel.jobs import ray_adapter

    def no_ray(*_: object, **__: object) -> None:
        raise AssertionError("Ray was started for a job file that is not YAML")

    monkeypatch.setattr(ray_adapter, "connect", no_ray)
    path = tmp_path / "job.yaml"
    path.write_text("name: j\nsteps: [unclosed\n")
    assert main(["run", str(path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_a_step_may_read_a_field_of_an_earlier_struct_output() -> None:
    audio = {"task": "automatic-speech-recognition", "model": "m", "input": "clip", "output": "transcript"}
    spec = parse_spec(
        job(
            input={"uri": "/in", "columns": ["id", "clip"]},
            steps=[audio, step(input="transcript.text", output="vec")],
        )
    )
    assert spec.source_columns() == ["id", "clip"]
    with pytest.raises(SpecError, match=r"^steps\[1\]\.input: column 'speech\.text' is neither"):
        parse_spec(
            job(
                input={"uri": "/in", "columns": ["id", "clip"]},
                steps=[audio, step(input="speech.text", output="vec")],
            )
        )


def test_a_struct_field_of_the_source_needs_only_its_column() -> None:
    spec = parse_spec(job(input={"uri": "/in"}, steps=[step(input="meta.body")]))
    assert spec.source_columns() == ["meta"]


def test_the_cli_starts_without_torch_transformers_or_ray() -> None:
    """``lakelabel --help`` and ``status`` answer at once: the heavy packages load only for what needs them."""
    probe = "import sys, lakelabel.jobs.cli; print(sorted({'torch', 'transformers', 'ray'} & set(sys.modules)))"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
