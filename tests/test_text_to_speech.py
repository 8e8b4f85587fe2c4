"""text-to-audio / text-to-speech against transformers.pipeline("text-to-audio") on tiny seeded VITS and SpeechT5.

The operator writes 16-bit FLAC (or WAV) in datasets' Audio layout; decoded with soundfile, its samples must equal
the pipeline's waveform (after ``set_seed`` with the same seed, clipped to [-1, 1]) within two 16-bit steps, the
encoding's quantisation. Texts include one several sentences long, punctuation and a repeated text.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pytest
import soundfile
import torch
from transformers import SpeechT5HifiGan, pipeline, set_seed

from lakelabel.jobs.spec import parse_spec
from lakelabel.operators import ERROR_COLUMN, OperatorConfig, OptionError, operator_class
from lakelabel.operators.speech_synthesis.text_to_speech import AUDIO
from tests import tiny_speech
from tests.tiny_vision import assert_row_errors

QUANTUM = 2 / 32768
MIN_LEN_RATIO = 0.5
TEXTS = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog near the old farm!",
    "Is it raining? Yes, it's pouring - bring a coat.",
    "Hello world.",
    "Alice moved from London to Paris. She works for the United Nations. The river flows to the sea. " * 3,
]


@pytest.fixture(scope="module")
def tts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tts")
    speecht5, vocoder = tiny_speech.build_speecht5(root / "speecht5")
    return {"vits": str(tiny_speech.build_vits(root / "vits")), "speecht5": str(speecht5), "vocoder": str(vocoder)}


def make(model: str, **options: Any):
    return operator_class("text-to-speech")(OperatorConfig(model=model, input="text", output="speech", options=options))


def decode(cell: dict) -> tuple[np.ndarray, int, str]:
    samples, rate = soundfile.read(io.BytesIO(cell["bytes"]), dtype="float32")
    return samples, rate, soundfile.info(io.BytesIO(cell["bytes"])).format


def assert_same_audio(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got, np.clip(want, -1, 1), atol=QUANTUM, rtol=0)
    assert np.abs(got).max() > 100 * QUANTUM, "the tiny model should make more than quantisation noise"


@pytest.mark.parametrize("seed", [0, 7])
def test_vits_equals_the_pipeline_with_the_same_seed(tts: dict[str, str], seed: int) -> None:
    operator = make(tts["vits"], seed=seed)
    out = operator(pa.table({"text": TEXTS}))
    assert out.schema.field("speech").type == AUDIO
    assert out.column(ERROR_COLUMN).to_pylist() == [[]] * len(TEXTS)
    pipe = pipeline("text-to-audio", model=tts["vits"])
    for text, cell in zip(TEXTS, out.column("speech").to_pylist(), strict=True):
        samples, rate, fmt = decode(cell)
        set_seed(seed)
        want = pipe(text)
        assert (rate, fmt, cell["path"]) == (want["sampling_rate"], "FLAC", None)
        assert_same_audio(samples, want["audio"])
    rows = out.column("speech").to_pylist()
    assert rows[0]["bytes"] == rows[3]["bytes"], "one seed per row: the same text gives the same audio"
    assert rows[0]["bytes"] != rows[1]["bytes"]


def test_a_different_seed_gives_different_audio(tts: dict[str, str]) -> None:
    first = make(tts["vits"], seed=0)(pa.table({"text": TEXTS[:1]})).column("speech")[0].as_py()
    second = make(tts["vits"], seed=1)(pa.table({"text": TEXTS[:1]})).column("speech")[0].as_py()
    assert first["bytes"] != second["bytes"]


def speecht5_pipeline(tts: dict[str, str]) -> Any:
    return pipeline("text-to-speech", model=tts["speecht5"], vocoder=SpeechT5HifiGan.from_pretrained(tts["vocoder"]))


def test_speecht5_with_a_fixed_speaker_embedding_equals_the_pipeline(tts: dict[str, str]) -> None:
    embedding = tiny_speech.speaker_embedding(0)
    operator = make(
        tts["speecht5"], vocoder=tts["vocoder"], speaker_embeddings=embedding, format="wav", minlenratio=MIN_LEN_RATIO
    )
    out = operator(pa.table({"text": TEXTS}))
    *spoken, too_long = out.column("speech").to_pylist()
    pipe = speecht5_pipeline(tts)
    forward_params = {"speaker_embeddings": torch.tensor([embedding]), "minlenratio": MIN_LEN_RATIO}
    lengths = set()
    for text, cell in zip(TEXTS, spoken, strict=False):
        samples, rate, fmt = decode(cell)
        set_seed(0)
        want = pipe(text, forward_params=forward_params)
        assert (rate, fmt) == (want["sampling_rate"], "WAV")
        assert_same_audio(samples, want["audio"])
        lengths.add(len(samples))
    assert len(lengths) >= 3, "texts of different lengths should give audio of different lengths"
    # longer than the model's 256 text positions: the pipeline fails on it too; here it is that row's error
    assert too_long is None
    assert_row_errors(out, [None] * 4 + [r"RuntimeError: The size of tensor a \(289\) must match .*"])
    with pytest.raises(RuntimeError, match="289"):
        pipe(TEXTS[-1], forward_params=forward_params)


def test_speecht5_speaker_embeddings_from_a_column(tts: dict[str, str]) -> None:
    embeddings = [tiny_speech.speaker_embedding(i) for i in range(3)]
    batch = pa.table({"text": ["Hello world.", "Hello world.", "Good morning."], "speaker": embeddings})
    operator = make(
        tts["speecht5"], vocoder=tts["vocoder"], speaker_embeddings_column="speaker", minlenratio=MIN_LEN_RATIO
    )
    assert operator.columns() == ("text", "speaker")
    out = operator(batch).column("speech").to_pylist()
    pipe = speecht5_pipeline(tts)
    for text, embedding, cell in zip(batch.column("text").to_pylist(), embeddings, out, strict=True):
        set_seed(0)
        want = pipe(
            text, forward_params={"speaker_embeddings": torch.tensor([embedding]), "minlenratio": MIN_LEN_RATIO}
        )
        assert_same_audio(decode(cell)[0], want["audio"])
    assert out[0]["bytes"] != out[1]["bytes"], "another speaker, the same text: other audio"


def test_the_column_is_what_datasets_audio_writes(tts: dict[str, str], tmp_path: Path) -> None:
    out = make(tts["vits"])(pa.table({"text": TEXTS[:2]}))
    assert datasets.Audio().pa_type == AUDIO
    features = datasets.Features({"text": datasets.Value("string"), "speech": datasets.Audio(decode=False)})
    path = tmp_path / "speech.parquet"
    import pyarrow.parquet as pq

    pq.write_table(out.drop_columns([ERROR_COLUMN]), path)
    loaded = datasets.Dataset.from_parquet(str(path), features=features)
    assert loaded.features["speech"] == datasets.Audio(decode=False)
    assert loaded[0]["speech"]["bytes"] == out.column("speech")[0].as_py()["bytes"]


def test_bad_rows_are_row_errors_and_the_batch_goes_on(tts: dict[str, str]) -> None:
    texts = pa.array(["Hello world.", "", "   ", None, "Good morning."], pa.string())
    out = make(tts["vits"])(pa.table({"text": texts}))
    assert_row_errors(
        out,
        [
            None,
            "input column 'text' is empty: there is no text to speak",
            "input column 'text' is empty: there is no text to speak",
            "input column 'text' is null",
            None,
        ],
    )
    speech = out.column("speech").to_pylist()
    assert [cell is None for cell in speech] == [False, True, True, True, False]
    batch = pa.table({"text": ["Hello.", "Hello."], "speaker": [tiny_speech.speaker_embedding(0), None]})
    out = make(tts["speecht5"], vocoder=tts["vocoder"], speaker_embeddings_column="speaker")(batch)
    assert_row_errors(out, [None, "speaker embeddings column 'speaker' is null or empty"])
    short = pa.table({"text": ["Hello."], "speaker": [[0.1, 0.2]]})
    out = make(tts["speecht5"], vocoder=tts["vocoder"], speaker_embeddings_column="speaker")(short)
    assert_row_errors(out, [r"ValueError: the speaker embedding has 2 values; the model takes 8"])


def test_options_are_checked(tts: dict[str, str]) -> None:
    with pytest.raises(OptionError, match="option format must be one of flac, wav"):
        make(tts["vits"], format="mp3")
    with pytest.raises(OptionError, match="at most one of speaker_embeddings and speaker_embeddings_column"):
        make(tts["vits"], speaker_embeddings=[0.1], speaker_embeddings_column="s")
    operator = make(tts["speecht5"], vocoder=tts["vocoder"])
    with pytest.raises(OptionError, match="speaks with a speaker embedding: set speaker_embeddings"):
        operator.setup()
    with pytest.raises(OptionError, match=r"option speaker_embeddings has 2 values; model .* takes 8"):
        make(tts["speecht5"], vocoder=tts["vocoder"], speaker_embeddings=[0.1, 0.2]).setup()


def test_a_job_step_text_to_speech(tts: dict[str, str]) -> None:
    spec = {
        "name": "tts",
        "input": {"uri": "/data/in"},
        "output": {"uri": "/data/out"},
        "steps": [{"task": "text-to-speech", "model": tts["vits"], "input": "text", "output": "speech"}],
    }
    (step,) = parse_spec(spec).steps
    assert step.task == "text-to-audio"
    out = step.operator()(pa.table({"text": TEXTS[:1]})).column("speech")[0].as_py()
    pipe = pipeline("text-to-speech", model=tts["vits"])
    set_seed(0)
    assert_same_audio(decode(out)[0], pipe(TEXTS[0])["audio"])
