"""automatic-speech-recognition against transformers.pipeline() on tiny seeded Whisper and Wav2Vec2-CTC models.

The pipeline is fed the waveform our decoder produced ({"raw": array, "sampling_rate": 16000}): decoding and
soxr resampling are tested in test_audio_io. Texts and chunk texts must be equal, timestamps equal.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from safetensors.numpy import load as load_arrays
from transformers import pipeline

from lakelabel.operators import ERROR_COLUMN, OperatorConfig, OptionError, operator_class
from lakelabel.operators.audio.audio_io import load_audio
from lakelabel.operators.core.base import prepared_column
from tests import tiny_audio

TASK = "automatic-speech-recognition"
RATE = tiny_audio.SAMPLING_RATE
CLIPS = tiny_audio.clips()
WHISPER_WINDOW = 30 * RATE


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_audio.build_whisper(tmp_path_factory.mktemp("asr") / "whisper"))


@pytest.fixture(scope="module")
def ctc(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_audio.build_ctc(tmp_path_factory.mktemp("asr") / "ctc"))


def make(model: str, **options: Any):
    return operator_class(TASK)(OperatorConfig(model=model, input="audio", output="asr", options=options))


def clip_table(clips: dict[str, bytes] = CLIPS, *, struct: bool = False) -> pa.Table:
    if struct:  # as datasets' Audio feature stores it
        column = pa.array(
            [{"bytes": data, "path": f"{name}.bin"} for name, data in clips.items()],
            pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        )
    else:
        column = pa.array(list(clips.values()), pa.binary())
    return pa.table({"name": list(clips), "audio": column})


def expected(pipe: Any, data: bytes, **kwargs: Any) -> dict[str, Any]:
    return pipe({"raw": load_audio(data, RATE), "sampling_rate": RATE}, **kwargs)


def assert_transcript(got: dict[str, Any], want: dict[str, Any], name: str) -> None:
    assert got["text"] == want["text"], name
    if "chunks" not in want:
        assert got["chunks"] is None, name
        return
    assert [c["text"] for c in got["chunks"]] == [c["text"] for c in want["chunks"]], name
    for ours, theirs in zip(got["chunks"], want["chunks"], strict=True):
        assert len(ours["timestamp"]) == 2
        for a, b in zip(ours["timestamp"], theirs["timestamp"], strict=True):
            assert (a is None) == (b is None), (name, ours, theirs)
            if b is not None:
                assert a == pytest.approx(b, abs=1e-9), (name, ours, theirs)


WORD_CLIPS = ("ogg_1s", "mp3_2s", "stereo_44k")  # word timestamps run DTW per token: kept to short clips
WHISPER_CASES = {
    "default": ({}, {}, tuple(CLIPS)),
    "segments": ({"return_timestamps": True}, {"return_timestamps": True}, tuple(CLIPS)),
    "word": ({"return_timestamps": "word", "max_new_tokens": 16}, {"return_timestamps": "word"}, WORD_CLIPS),
    "fr-beams": (
        {"language": "fr", "task": "translate", "num_beams": 2, "max_new_tokens": 20},
        {"language": "fr", "task": "translate", "num_beams": 2},
        tuple(CLIPS),
    ),
    "chunks": (
        {"chunk_length_s": 10, "stride_length_s": [2, 3], "return_timestamps": True},
        {"chunk_length_s": 10, "stride_length_s": [2, 3], "return_timestamps": True},
        tuple(CLIPS),
    ),
}


@pytest.mark.parametrize("case", list(WHISPER_CASES))
def test_whisper_matches_pipeline(whisper: str, case: str) -> None:
    options, pipe_kwargs, names = WHISPER_CASES[case]
    clips = {name: CLIPS[name] for name in names}
    pipe = pipeline(TASK, model=whisper)
    out = make(whisper, **options)(clip_table(clips, struct=case == "default"))
    assert out.column(ERROR_COLUMN).to_pylist() == [[]] * len(clips)
    ours = out.column("asr").to_pylist()
    for (name, data), got in zip(clips.items(), ours, strict=True):
        kwargs = {"max_new_tokens": options.get("max_new_tokens", 128), "num_beams": 1, **pipe_kwargs}
        if len(load_audio(data, RATE)) > WHISPER_WINDOW:
            kwargs.setdefault("chunk_length_s", 30)  # our default for a recording longer than Whisper's window
        assert_transcript(got, expected(pipe, data, **kwargs), name)
    texts = [row["text"] for row in ours]
    if case == "default":
        assert all(texts), "the tiny Whisper should say something for every clip"
    assert len(set(texts)) >= 2, "transcripts should depend on the audio, or this test checks little"


def test_a_long_recording_is_chunked_whole(whisper: str) -> None:
    operator = make(whisper)
    prepared = operator.preparer()(pa.table({"audio": [CLIPS["long_35s"], CLIPS["wav_3s"]]}))
    long_clip, short_clip = (load_arrays(blob) for blob in prepared.column(prepared_column("asr")).to_pylist())
    # 35 s at 16 kHz in 30 s chunks with 5 s of stride each side: [0, 30) and [20, 35)
    np.testing.assert_array_equal(long_clip["stride"], [[480_000, 0, 80_000], [240_000, 80_000, 0]])
    assert long_clip["inputs"].shape == (2, 80, 3000)
    assert "stride" not in short_clip
    assert short_clip["inputs"].shape == (1, 80, 3000)
    (row,) = make(whisper, return_timestamps=True)(pa.table({"audio": [CLIPS["long_35s"]]})).column("asr").to_pylist()
    assert max(t for chunk in row["chunks"] for t in chunk["timestamp"] if t is not None) > 30


CTC_CASES = [
    {},
    {"return_timestamps": "char"},
    {"chunk_length_s": 4, "return_timestamps": "word"},
    {"chunk_length_s": 3, "stride_length_s": [0.5, 1]},
]


@pytest.mark.parametrize("options", CTC_CASES, ids=["default", "char", "chunked-word", "chunked-stride"])
def test_ctc_matches_pipeline(ctc: str, options: dict[str, Any]) -> None:
    pipe = pipeline(TASK, model=ctc)
    out = make(ctc, **options)(clip_table())
    ours = out.column("asr").to_pylist()
    for (name, data), got in zip(CLIPS.items(), ours, strict=True):
        assert_transcript(got, expected(pipe, data, **options), name)
    assert len({row["text"] for row in ours}) == len(CLIPS)


def _bad_rows() -> tuple[list[bytes | None], list[str | None]]:
    good = CLIPS["wav_3s"]
    flac = CLIPS["flac_7s"]
    rows = [good, None, b"", b"not audio", good[: len(good) // 2], flac[:2000], tiny_audio.encode(
        np.zeros(0, np.float32), RATE, "WAV", "PCM_16"
    ), CLIPS["ogg_1s"]]  # fmt: skip
    errors = [
        None,
        "input column 'audio' is null",
        "MediaError: empty (0 bytes)",
        "MediaError: cannot decode audio (soundfile: Format not recognised; "
        "PyAV: Invalid data found when processing input)",
        "MediaError: truncated: the data chunk holds 47978 of 96000 bytes",
        "MediaError: cannot decode audio (soundfile: flac decoder lost sync; "
        "PyAV: Invalid data found when processing input)",
        "MediaError: no audio samples (0 frames)",
        None,
    ]
    return rows, errors


@pytest.mark.parametrize("model", ["ctc", "whisper"])
def test_bad_media_rows_get_errors_and_the_rest_is_annotated(model: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model)
    options = {"max_new_tokens": 16} if model == "whisper" else {}
    rows, errors = _bad_rows()
    out = make(path, **options)(pa.table({"audio": pa.array(rows, pa.binary())}))
    messages = [row[0]["message"] if row else None for row in out.column(ERROR_COLUMN).to_pylist()]
    assert messages == errors
    assert all(len(row) <= 1 for row in out.column(ERROR_COLUMN).to_pylist())
    values = out.column("asr").to_pylist()
    assert [value is None for value in values] == [error is not None for error in errors]
    clean = make(path, **options)(pa.table({"audio": [rows[0], rows[-1]]})).column("asr").to_pylist()
    assert [values[0], values[-1]] == clean


def test_a_separate_preparing_stage_equals_inline(whisper: str) -> None:
    batch = clip_table(struct=True).append_column("id", pa.array(range(len(CLIPS))))
    inline = make(whisper, return_timestamps=True)(batch)
    stage = pickle.loads(pickle.dumps(make(whisper, return_timestamps=True).preparer()))
    prepared = stage(batch)
    assert prepared.schema.field(prepared_column("asr")).type == pa.large_binary()
    separate = pickle.loads(pickle.dumps(make(whisper, return_timestamps=True)))(prepared)
    assert prepared_column("asr") not in separate.column_names
    assert separate.column_names == ["name", "audio", "id", "asr", ERROR_COLUMN]
    assert separate.equals(inline)


def test_output_type_needs_no_model() -> None:
    transcript = pa.struct(
        [
            ("text", pa.string()),
            ("chunks", pa.list_(pa.struct([("text", pa.string()), ("timestamp", pa.list_(pa.float64()))]))),
        ]
    )
    assert make("/nowhere").output_type() == transcript
    assert make("/nowhere", engine="faster-whisper").output_type() == transcript
    assert make("/nowhere").input_kind == "audio"
    assert make("/nowhere").resources().num_gpus == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"engine": "onnx"}, "option engine must be one of transformers, faster-whisper"),
        ({"max_new_tokens": None}, "option max_new_tokens must be a positive integer"),
        ({"max_new_tokens": 0}, "option max_new_tokens must be a positive integer"),
        ({"num_beams": 0}, "option num_beams must be a positive integer"),
        ({"return_timestamps": "chars"}, "option return_timestamps must be false, true, 'char' or 'word'"),
        ({"chunk_length_s": -1}, "option chunk_length_s must be a positive number"),
        ({"chunk_length_s": 10, "stride_length_s": 5}, "option stride_length_s must leave room"),
        ({"stride_length_s": [1, 2, 3]}, "option stride_length_s must be seconds"),
        ({"task": "summarize"}, "option task must be one of transcribe, translate"),
        ({"compute_type": "int8"}, "option compute_type applies only to engine faster-whisper"),
        ({"engine": "faster-whisper", "return_timestamps": "char"}, "'char' is not available with engine"),
        ({"engine": "faster-whisper", "stride_length_s": 1}, "stride_length_s is not available with engine"),
        ({"top_k": 3}, "unknown option\\(s\\) top_k"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        make("/nowhere", **options)


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("whisper", {"return_timestamps": "char"}, "'char' is CTC-only"),
        ("whisper", {"max_new_tokens": 445}, "max_new_tokens must be at most 444"),
        ("whisper", {"language": "klingon"}, "option language 'klingon' is not a language of this model"),
        ("ctc", {"return_timestamps": True}, "must be 'char' or 'word' for a CTC model"),
        ("ctc", {"language": "fr"}, "option language does not apply to the CTC model"),
    ],
)
def test_options_the_model_cannot_honour_are_refused_at_setup(
    model: str, options: dict[str, Any], message: str, request: pytest.FixtureRequest
) -> None:
    operator = make(request.getfixturevalue(model), **options)
    with pytest.raises(OptionError, match=message):
        operator.setup()


def test_a_model_that_is_neither_whisper_nor_ctc_is_refused(tmp_path) -> None:
    from lakelabel.operators.core.base import ModelLoadError

    classifier = tiny_audio.build_audio_classifier(tmp_path / "classifier")
    with pytest.raises(ModelLoadError, match="runs Whisper or CTC models"):
        make(str(classifier)).setup()
