"""The new tasks in one job on a local Ray: image -> reply (image-text-to-text, its CPU stage apart) -> speech
(text-to-speech, an alias) from the reply's text, beside sentiment-analysis (an alias) on a caption column."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from transformers import pipeline, set_seed

from lakelabel.jobs.runner import run_job
from lakelabel.jobs.spec import parse_spec
from lakelabel.operators import ERROR_COLUMN
from tests import tiny_speech, tiny_vision, tiny_vlm
from tests.conftest import write_parquet
from tests.test_image_text_to_text import IMAGES, MAX_NEW_TOKENS, pipeline_replies
from tests.test_text_to_speech import assert_same_audio, decode

NAMES = ["rgb_png_64x48", "gray_png_50x50", "rgb_jpeg_100x60"]


def test_reply_speech_and_sentiment_in_one_job(tmp_path: Path, models: dict[str, str], ray_local: None) -> None:
    llava = str(tiny_vlm.build_llava(tmp_path / "llava"))
    vits = str(tiny_speech.build_vits(tmp_path / "vits"))
    truncated = tiny_vision.bad_images()["truncated_png"]
    write_parquet(
        tmp_path / "in" / "part-0.parquet",
        id=[0, 1, 2, 3],
        image=[IMAGES[NAMES[0]], truncated, IMAGES[NAMES[1]], IMAGES[NAMES[2]]],
        caption=["A lovely day.", "Broken upload.", "", "Terrible weather."],
    )
    spec = parse_spec(
        {
            "name": "course-job",
            "input": {"uri": str(tmp_path / "in")},
            "output": {"uri": str(tmp_path / "out")},
            "steps": [
                {
                    "task": "image-text-to-text",
                    "model": llava,
                    "input": "image",
                    "output": "reply",
                    "options": {"prompt": "Describe this image.", "max_new_tokens": MAX_NEW_TOKENS},
                },
                {"task": "text-to-speech", "model": vits, "input": "reply.generated_text", "output": "speech"},
                {"task": "sentiment-analysis", "model": models["classifier"], "input": "caption", "output": "mood"},
            ],
        }
    )
    summary = run_job(spec)
    assert (summary.rows_in, summary.rows_out) == (4, 4)
    out = pq.read_table(tmp_path / "out" / "part-0.parquet").sort_by("id").to_pylist()
    good = [out[0], out[2], out[3]]
    replies = pipeline_replies(llava, NAMES, ["Describe this image."] * 3)
    assert [row["reply"]["generated_text"] for row in good] == replies
    tts = pipeline("text-to-speech", model=vits)
    for row, reply in zip(good, replies, strict=True):
        set_seed(0)
        assert_same_audio(decode(row["speech"])[0], tts(reply)["audio"])
    bad = out[1]
    assert (bad["reply"], bad["speech"]) == (None, None)
    messages = {error["step"]: error["message"] for error in bad[ERROR_COLUMN]}
    assert messages["reply"].startswith("MediaError: cannot decode image")
    assert messages["speech"] == "input column 'reply.generated_text' is null"
    sentiment = pipeline("sentiment-analysis", model=models["classifier"])
    assert [row["mood"]["label"] for row in out] == [w["label"] for w in sentiment([r["caption"] for r in out])]
    assert out[2][ERROR_COLUMN] == []
