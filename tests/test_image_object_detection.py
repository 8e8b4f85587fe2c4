"""object-detection against transformers.pipeline() on a tiny seeded YOLOS.

The detector's image processor keeps each image's aspect ratio, so images of different sizes give inputs of
different shapes; one batch holds them all and the operator runs each shape's rows together. Labels and boxes must
equal the pipeline's, scores within 1e-4, for every image alone through the pipeline.
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
from lakelabel.operators.vision.image_io import MAX_PIXELS
from tests import tiny_vision

TASK = "object-detection"
IMAGES = tiny_vision.images()
BAD = tiny_vision.bad_images()
TOL = 1e-4
BOX = pa.struct([("xmin", pa.int32()), ("ymin", pa.int32()), ("xmax", pa.int32()), ("ymax", pa.int32())])
DETECTION = pa.struct([("score", pa.float32()), ("label", pa.string()), ("box", BOX)])


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_vision.build_object_detector(tmp_path_factory.mktemp("detector") / "yolos"))


@pytest.fixture(scope="module")
def pipe(detector: str) -> Any:
    return pipeline(TASK, model=detector)


def make(model: str, **options: Any):
    return operator_class(TASK)(OperatorConfig(model=model, input="image", output="objects", options=options))


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def assert_matches(got: list[dict], want: list[dict], name: str) -> None:
    assert [(g["label"], g["box"]) for g in got] == [(w["label"], w["box"]) for w in want], name
    np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in want], atol=TOL, err_msg=name)


@pytest.mark.parametrize("threshold", [None, 0.1, 0.9])
def test_matches_pipeline_with_images_of_different_sizes_in_one_batch(
    detector: str, pipe: Any, threshold: float | None, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakelabel.operators.vision import object_detection

    shapes: list[list[tuple[int, ...]]] = []
    original = object_detection.shape_batches

    def spy(items: list[dict[str, np.ndarray]], **kwargs: Any):
        for batch in original(items, **kwargs):
            shapes.append([items[i]["pixel_values"].shape for i in batch])
            yield batch

    monkeypatch.setattr(object_detection, "shape_batches", spy)
    options = {} if threshold is None else {"threshold": threshold}
    out = make(detector, **options)(pa.table({"image": tiny_vision.struct_column(IMAGES, tmp_path)}))
    assert out.schema.field("objects").type == pa.list_(DETECTION)
    assert out.column(ERROR_COLUMN).to_pylist() == [[]] * len(IMAGES)
    found = 0
    for (name, data), got in zip(IMAGES.items(), out.column("objects").to_pylist(), strict=True):
        want = pipe(opened(data), **options)
        assert_matches(got, want, name)
        found += len(want)
    assert all(len(set(batch)) == 1 for batch in shapes), "a batch mixed input shapes"
    assert len(shapes) >= 5, "the test images should give several input shapes"
    assert max(len(batch) for batch in shapes) >= 2, "rows of one shape should share a batch"
    assert sum(len(batch) for batch in shapes) == len(IMAGES)
    if threshold == 0.1:
        assert found >= 3 * len(IMAGES), "the tiny detector should find objects at a low threshold"
    if threshold == 0.9:
        assert 0 < found < len(IMAGES) * 10


def test_boxes_are_in_original_pixels(detector: str) -> None:
    """Boxes scale to the image as shown (EXIF rotation applied), not to the processor's resized input."""
    data = IMAGES["exif_rotated_jpeg_40x80"]
    (objects,) = make(detector, threshold=0.0)(pa.table({"image": [data]})).column("objects").to_pylist()
    assert len(objects) == 10, "threshold 0 keeps every detection token"
    assert max(box["box"]["ymax"] for box in objects) > 40, "heights reach past the stored image's 40 rows"
    assert all(box["box"]["xmax"] <= 40 * 2 for box in objects)


def test_bad_media_rows_get_errors_and_a_separate_stage_equals_inline(detector: str, pipe: Any) -> None:
    good = [IMAGES["rgb_png_64x48"], IMAGES["rgb_bmp_20x90"]]
    strip = tiny_vision.encode(Image.new("RGB", (300, 2)), "PNG")  # resized to 0x80 keeping its aspect ratio
    cells = [good[0], *BAD.values(), strip, None, good[1]]
    table = pa.table({"image": pa.array(cells, pa.binary())})
    inline = make(detector, threshold=0.2)(table)
    tiny_vision.assert_row_errors(
        inline,
        [
            None,
            *tiny_vision.BAD_IMAGE_ERRORS,
            r"MediaError: the image processor cannot use this 300x2 image: ValueError: .*height=0, width=80.*",
            r"input column 'image' is null",
            None,
        ],
    )
    values = inline.column("objects").to_pylist()
    assert_matches(values[0], pipe(opened(good[0]), threshold=0.2), "first")
    assert_matches(values[-1], pipe(opened(good[1]), threshold=0.2), "last")
    assert values[0]
    assert values[-1]
    assert all(value is None for value in values[1:-1])

    stage = pickle.loads(pickle.dumps(make(detector, threshold=0.2).preparer()))
    prepared = stage(table)
    separate = pickle.loads(pickle.dumps(make(detector, threshold=0.2)))(prepared)
    assert separate.column_names == ["image", "objects", ERROR_COLUMN]
    assert prepared_column("objects") not in separate.column_names
    assert separate.equals(inline)


def test_options_and_output_type_need_no_model() -> None:
    assert make("/nowhere").output_type() == pa.list_(DETECTION)
    assert make("/nowhere").input_kind == "image"
    assert make("/nowhere").options == {"threshold": 0.5, "max_pixels": MAX_PIXELS}
    assert make("/nowhere", threshold=0).options == {"threshold": 0, "max_pixels": MAX_PIXELS}
    for bad in (-0.1, 1.5, "high", True, float("nan"), None):
        with pytest.raises(OptionError, match="step 'objects': option threshold must be a number from 0 to 1"):
            make("/nowhere", threshold=bad)
    with pytest.raises(OptionError, match=r"unknown option\(s\) top_k"):
        make("/nowhere", top_k=3)
