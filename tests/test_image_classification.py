"""image-classification against transformers.pipeline() on tiny seeded ViT classifiers.

The pipeline gets each image as Pillow opens it (it applies EXIF orientation and RGB conversion itself); the
operator gets the encoded bytes, or datasets-style structs. Labels must be equal and in the same order, scores
within 1e-4. Bad media get a null and a row error while the rest of the batch matches the pipeline.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from transformers import pipeline

from lakelabel.operators import ERROR_COLUMN, OperatorConfig, OptionError, operator_class
from lakelabel.operators.core.base import prepared_column
from tests import tiny_vision

TASK = "image-classification"
IMAGES = tiny_vision.images()
BAD = tiny_vision.bad_images()
TOL = 1e-4
LABEL_SCORE = pa.struct([("label", pa.string()), ("score", pa.float32())])
NUM_LABELS = len(tiny_vision.IMAGE_LABELS)


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("image-classifiers")
    return {
        "single": str(tiny_vision.build_image_classifier(root / "single")),
        "multi": str(tiny_vision.build_image_classifier(root / "multi", seed=1, multi_label=True)),
    }


@pytest.fixture(scope="module")
def pipes(classifiers: dict[str, str]) -> dict[str, Any]:
    return {kind: pipeline(TASK, model=model) for kind, model in classifiers.items()}


def make(model: str, **options: Any):
    return operator_class(TASK)(OperatorConfig(model=model, input="image", output="labels", options=options))


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def assert_matches(got: list[dict], want: list[dict], name: str) -> None:
    assert [g["label"] for g in got] == [w["label"] for w in want], name
    np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in want], atol=TOL, err_msg=name)


@pytest.mark.parametrize("kind", ["single", "multi"])
@pytest.mark.parametrize(
    "options",
    [{}, {"top_k": 2}, {"top_k": None, "function_to_apply": "sigmoid"}, {"top_k": 9, "function_to_apply": "none"}],
    ids=["default", "top2", "all-sigmoid", "capped-none"],
)
def test_matches_pipeline(
    classifiers: dict[str, str], pipes: dict[str, Any], kind: str, options: dict[str, Any], tmp_path
) -> None:
    model, pipe = classifiers[kind], pipes[kind]
    out = make(model, **options)(pa.table({"image": tiny_vision.struct_column(IMAGES, tmp_path)}))
    assert out.schema.field("labels").type == pa.list_(LABEL_SCORE)
    assert out.column(ERROR_COLUMN).to_pylist() == [[]] * len(IMAGES)
    ours = out.column("labels").to_pylist()
    pipe_options = {**options, "top_k": NUM_LABELS} if options.get("top_k", 0) is None else options
    want_len = min(options.get("top_k", 5) or NUM_LABELS, NUM_LABELS)
    for (name, data), got in zip(IMAGES.items(), ours, strict=True):
        want = pipe(opened(data), **pipe_options)
        assert len(got) == want_len, name
        assert_matches(got, want, name)
    assert len({row[0]["label"] for row in ours}) >= 3, "the tiny classifier should not give one label to all"


def test_multi_label_models_default_to_sigmoid(classifiers: dict[str, str]) -> None:
    table = pa.table({"image": list(IMAGES.values())})
    default = make(classifiers["multi"], top_k=None)(table).column("labels").to_pylist()
    sigmoid = make(classifiers["multi"], top_k=None, function_to_apply="sigmoid")(table).column("labels").to_pylist()
    assert default == sigmoid
    assert any(sum(entry["score"] for entry in row) > 1.5 for row in default), "sigmoid scores need not sum to 1"


def test_bad_media_rows_get_errors_and_a_separate_stage_equals_inline(
    classifiers: dict[str, str], pipes: dict[str, Any], tmp_path
) -> None:
    good = [IMAGES["rgb_jpeg_100x60"], IMAGES["palette_gif_33x77"]]
    cells = [
        {"bytes": good[0], "path": "a.jpg"},
        *({"bytes": data, "path": f"{name}.img"} for name, data in BAD.items()),
        {"bytes": None, "path": None},
        None,
        {"bytes": None, "path": str(tmp_path / "missing.png")},
        {"bytes": good[1], "path": None},
    ]
    table = pa.table({"id": list(range(len(cells))), "image": pa.array(cells, tiny_vision.STRUCT)})
    model = classifiers["single"]
    inline = make(model, top_k=3)(table)
    tiny_vision.assert_row_errors(
        inline,
        [
            None,
            *tiny_vision.BAD_IMAGE_ERRORS,
            r"input column 'image' holds neither bytes nor a path",
            r"input column 'image' is null",
            r"MediaError: cannot read .*missing\.png: .*No such file or directory.*",
            None,
        ],
    )
    values = inline.column("labels").to_pylist()
    pipe = pipes["single"]
    assert_matches(values[0], pipe(opened(good[0]), top_k=3), "first")
    assert_matches(values[-1], pipe(opened(good[1]), top_k=3), "last")
    assert all(value is None for value in values[1:-1])

    stage = pickle.loads(pickle.dumps(make(model, top_k=3).preparer()))  # its own CPU worker, as Ray runs it
    prepared = stage(table)
    assert prepared.schema.field(prepared_column("labels")).type == pa.large_binary()
    separate = pickle.loads(pickle.dumps(make(model, top_k=3)))(prepared)
    assert prepared_column("labels") not in separate.column_names
    assert separate.column_names == ["id", "image", "labels", ERROR_COLUMN]
    assert separate.equals(inline)


def test_options_and_output_type_need_no_model() -> None:
    assert make("/nowhere").output_type() == pa.list_(LABEL_SCORE)
    assert make("/nowhere", top_k=None).output_type() == pa.list_(LABEL_SCORE)
    assert make("/nowhere").input_kind == "image"
    assert make("/nowhere", function_to_apply="SoftMax").options["function_to_apply"] == "SoftMax"
    with pytest.raises(OptionError, match="step 'labels': option top_k must be a positive integer or null"):
        make("/nowhere", top_k=0)
    with pytest.raises(OptionError, match="option top_k must be a positive integer or null"):
        make("/nowhere", top_k=True)
    with pytest.raises(OptionError, match="option function_to_apply must be one of softmax, sigmoid, none"):
        make("/nowhere", function_to_apply="relu")
    with pytest.raises(OptionError, match=r"unknown option\(s\) threshold"):
        make("/nowhere", threshold=0.5)
