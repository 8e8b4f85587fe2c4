"""A mixed job on a loopback S3 bucket: audio -> transcript (real Whisper tiny.en) -> topics and embeddings."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from lakelabel.jobs.demo import read_output, speech_clips, speech_spec, truncated_clip, whisper_path, write_speech_shard
from lakelabel.jobs.runner import run_job
from tests.wer import wer


def _zero_length_wav() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(0, np.float32), 16_000, format="WAV")
    return buffer.getvalue()


BAD = {
    "empty.wav": (b"", "MediaError: empty (0 bytes)"),
    "garbage.mp3": (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "cannot decode audio"),
    "silence.wav": (_zero_length_wav(), "no audio samples"),
    "truncated.flac": (truncated_clip()[1], "cannot decode audio"),
}


def test_audio_to_transcripts_topics_and_embeddings_on_s3(s3_endpoint: str, minilm: str, ray_local: None) -> None:
    spec = speech_spec(s3_endpoint, whisper_path(), minilm)
    write_speech_shard(spec, [(name, data) for name, (data, _) in BAD.items()])
    clips = speech_clips()
    summary = run_job(spec)
    rows = read_output(spec).to_pylist()
    assert (summary.rows_in, summary.rows_out, summary.row_errors) == (len(clips) + 4, len(clips) + 4, 4)
    assert [row["id"] for row in rows] == list(range(len(clips) + 4))
    assert [step.row_errors for step in summary.steps] == [4, 4, 4]

    good, bad = rows[: len(clips)], rows[len(clips) :]
    assert [row["audio"]["path"] for row in good] == [clip["file"] for clip in clips]
    assert all(row["lakelabel_errors"] == [] for row in good)
    rate = wer([clip["sentence"] for clip in clips], [row["transcript"]["text"] for row in good])
    assert rate <= 0.20, rate
    fitting = sum(row["topic"]["labels"][0] == clip["topic"] for row, clip in zip(good, clips, strict=True))
    assert fitting >= len(clips) - 2, fitting
    assert all(len(row["embedding"]) == 384 for row in good)

    for row in bad:
        _, expected = BAD[row["audio"]["path"]]
        assert (row["transcript"], row["topic"], row["embedding"]) == (None, None, None)
        errors = {error["step"]: error["message"] for error in row["lakelabel_errors"]}
        assert expected in errors["transcript"], errors
        assert errors["topic"] == errors["embedding"] == "input column 'transcript.text' is null"
