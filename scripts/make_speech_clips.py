"""Make the spoken clips in ``jobs/demo_data/speech/`` with Debian's ``espeak-ng`` (``apt-get install espeak-ng``).

    python scripts/make_speech_clips.py

Each sentence is spoken at 16 kHz mono and written in the format listed beside it (mostly FLAC; one WAV, one Ogg
Vorbis, one MP3), with ``sentences.jsonl`` giving each file's sentence and topic. The clips are committed, so the
tests and the demo need neither espeak-ng nor this script.
"""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

OUT = Path(__file__).resolve().parents[1] / "jobs" / "demo_data" / "speech"
RATE = 16_000
CLIPS = [
    ("match.flac", "sports", "The home team won the final match after a late goal in extra time."),
    ("shares.wav", "business and finance", "Shares of the bank fell sharply after the company reported weak profits."),
    ("bread.ogg", "food and cooking", "Bake the bread in a hot oven until the crust is golden and crisp."),
    ("phone.mp3", "technology", "The new phone has a faster chip and a brighter screen than last year."),
    ("doctor.flac", "health and medicine", "The doctor said regular exercise lowers the risk of heart disease."),
    ("train.flac", "travel", "We took the night train across the mountains and arrived in the morning."),
    ("vote.flac", "politics", "The parliament voted on the new law after a long debate."),
    ("stars.flac", "science", "Astronomers discovered a planet orbiting a distant star."),
]
FORMATS = {".flac": ("FLAC", "PCM_16"), ".wav": ("WAV", "PCM_16"), ".ogg": ("OGG", "VORBIS"), ".mp3": ("MP3", None)}


def speak(sentence: str) -> np.ndarray:
    """The sentence as 16 kHz mono float32, spoken by espeak-ng's default English voice."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as handle:
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", handle.name, sentence], check=True)  # noqa: S603, S607 - a fixed command
        audio, rate = sf.read(handle.name, dtype="float32")
    return soxr.resample(audio, rate, RATE).astype(np.float32)


def main() -> None:
    """Write every clip and ``sentences.jsonl``."""
    OUT.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, topic, sentence in CLIPS:
        audio = speak(sentence)
        path = OUT / name
        fmt, subtype = FORMATS[path.suffix]
        buffer = io.BytesIO()
        sf.write(buffer, audio, RATE, format=fmt, subtype=subtype)
        path.write_bytes(buffer.getvalue())
        lines.append(json.dumps({"file": name, "topic": topic, "sentence": sentence}))
    (OUT / "sentences.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
