"""audio-classification against transformers.pipeline() on tiny seeded Wav2Vec2 classifiers.

Two classifiers: a group-norm one (as wav2vec2-base checkpoints: no attention mask, padding would change results,
so only equal lengths share a batch) and a layer-norm one (padded batches with an attention mask). The pipeline is
fed the waveform our decoder produced. Labels must be equal and in the same order, scores within 1e-4.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from transformers import pipeline

from lakelabel.operators import ERROR_COLUMN, OperatorConfig, OptionError, operator_class
from lakelabel.operators.audio.audio_io import load_audio
from lakelabel.operators.core.base import prepared_column
from tests import tiny_audio

TASK = "audio-classification"
RATE = tiny_audio.SAMPLING_RATE
CLIPS = tiny_audio.clips()
TOL = 1e-4
LABEL_SCORE = pa.struct([("label", pa.string()), ("score", pa.float32())])


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("audio-classifiers")
    return {
        "group": str(tiny_audio.build_audio_classifier(root / "group", group_norm=True)),
        "layer": str(tiny_audio.build_audio_classifier(root / "layer", group_norm=False, seed=3)),
    }


def make(model: str, **options: Any):
    return operator_class(TASK)(OperatorConfig(model=model, input="audio", output="labels", options=options))


def struct_column(clips: dict[str, bytes]) -> pa.Array:
    return pa.array(
        [{"bytes": data, "path": f"{name}.bin"} for name, data in clips.items()],
        pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )


@pytest.mark.parametrize("norm", ["group", "layer"])
@pytest.mark.parametrize(
    "options",
    [{}, {"top_k": 2}, {"top_k": None, "function_to_apply": "sigmoid"}, {"top_k": 9, "function_to_apply": "none"}],
    ids=["default", "top2", "all-sigmoid", "capped-none"],
)
def test_matches_pipeline(classifiers: dict[str, str], norm: str, options: dict[str, Any]) -> None:
    model = classifiers[norm]
    pipe = pipeline(TASK, model=model)
    out = make(model, **options)(pa.table({"audio": struct_column(CLIPS)}))
    assert out.schema.field("labels").type == pa.list_(LABEL_SCORE)
    assert out.column(ERROR_COLUMN).to_pylist() == [[]] * len(CLIPS)
    ours = out.column("labels").to_pylist()
    want_len = {None: 5, 2: 2, 9: 5}[options.get("top_k", 9)]
    for (name, data), got in zip(CLIPS.items(), ours, strict=True):
        want = pipe({"raw": load_audio(data, RATE), "sampling_rate": RATE}, **options)
        assert len(got) == want_len, name
        assert [g["label"] for g in got] == [w["label"] for w in want], name
        np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in want], atol=TOL, err_msg=name)
    assert len({row[0]["label"] for row in ours}) >= 2, "the tiny classifier should not give one label to all"


def test_rows_of_equal_length_share_a_batch_and_padding_is_used_only_where_exact(
    classifiers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakelabel.operators.audio import audio_classification

    batches: list[tuple[bool, list[int]]] = []
    original = audio_classification.length_batches

    def spy(lengths: list[int], *, pad: bool, **kwargs: Any):
        for batch in original(lengths, pad=pad, **kwargs):
            batches.append((pad, [lengths[i] for i in batch]))
            yield batch

    monkeypatch.setattr(audio_classification, "length_batches", spy)
    clips = [CLIPS["wav_3s"], CLIPS["flac_7s"], CLIPS["wav_3s"], CLIPS["ogg_1s"]]
    for norm in ("group", "layer"):
        make(classifiers[norm])(pa.table({"audio": clips}))
    assert batches[:3] == [(False, [16000]), (False, [48000, 48000]), (False, [120000])]
    assert batches[3:] == [(True, [16000, 48000, 48000, 120000])]


def test_bad_media_rows_get_errors_and_a_separate_stage_equals_inline(classifiers: dict[str, str]) -> None:
    good = CLIPS["mp3_2s"]
    table = pa.table({"audio": pa.array([good, b"", None, b"RIFF....WAVEfmt ", CLIPS["stereo_44k"]], pa.binary())})
    model = classifiers["layer"]
    inline = make(model, top_k=1)(table)
    messages = [row[0]["message"] if row else None for row in inline.column(ERROR_COLUMN).to_pylist()]
    assert messages == [
        None,
        "MediaError: empty (0 bytes)",
        "input column 'audio' is null",
        "MediaError: cannot decode audio (soundfile: Error in WAV file. No 'data' chunk marker; "
        "PyAV: Invalid data found when processing input)",
        None,
    ]
    values = inline.column("labels").to_pylist()
    assert [value is None for value in values] == [False, True, True, True, False]
    assert all(len(value) == 1 for value in values if value is not None)
    stage = pickle.loads(pickle.dumps(make(model, top_k=1).preparer()))
    prepared = stage(table)
    separate = pickle.loads(pickle.dumps(make(model, top_k=1)))(prepared)
    assert prepared_column("labels") not in separate.column_names
    assert separate.equals(inline)


def test_options_and_output_type_need_no_model() -> None:
    assert make("/nowhere").output_type() == pa.list_(LABEL_SCORE)
    assert make("/nowhere", top_k=None).output_type() == pa.list_(LABEL_SCORE)
    assert make("/nowhere").input_kind == "audio"
    with pytest.raises(OptionError, match="option top_k must be a positive integer or null"):
        make("/nowhere", top_k=0)
    with pytest.raises(OptionError, match="option function_to_apply must be one of softmax, sigmoid, none"):
        make("/nowhere", function_to_apply="relu")
    with pytest.raises(OptionError, match="unknown option\\(s\\) max_new_tokens"):
        make("/nowhere", max_new_tokens=3)
