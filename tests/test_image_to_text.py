"""image-to-text against the model's own generate() on each image alone, on a tiny seeded ViT + BERT captioner.

transformers 5 has no image-to-text pipeline any more (it became image-text-to-text, for chat models), so the
reference is what that pipeline did: load_image, the image processor, ``generate()`` on one image, and a decode with
``skip_special_tokens=True``. Captions must be equal exactly; the operator generates for a whole batch at once.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer, LlavaConfig
from transformers.image_utils import load_image

from lakelabel.operators import ERROR_COLUMN, OperatorConfig, OptionError, operator_class
from lakelabel.operators.core.base import ModelLoadError, prepared_column
from tests import tiny_vision

TASK = "image-to-text"
IMAGES = tiny_vision.images()
BAD = tiny_vision.bad_images()
CAPTION = pa.struct([("generated_text", pa.string())])


@pytest.fixture(scope="module")
def captioners(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("captioners")
    return {
        "vit-bert": str(tiny_vision.build_captioner(root / "vit-bert")),
        "blip": str(tiny_vision.build_blip_captioner(root / "blip")),
        "git": str(tiny_vision.build_git_captioner(root / "git")),
    }


@pytest.fixture(scope="module")
def captioner(captioners: dict[str, str]) -> str:
    return captioners["vit-bert"]


def reference_for(model_path: str) -> Callable[..., str]:
    """Caption one image as the 4.x image-to-text pipeline did."""
    processor = AutoImageProcessor.from_pretrained(model_path)
    model = AutoModelForImageTextToText.from_pretrained(model_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_path)

    def caption(data: bytes, **generate_kwargs: Any) -> str:
        image = load_image(Image.open(io.BytesIO(data)))
        pixel_values = processor(images=image, return_tensors="pt").pixel_values
        with torch.inference_mode():
            (sequence,) = model.generate(pixel_values=pixel_values, **generate_kwargs)
        return tokenizer.decode(sequence, skip_special_tokens=True)

    return caption


@pytest.fixture(scope="module")
def reference(captioner: str) -> Callable[..., str]:
    return reference_for(captioner)


def make(model: str, **options: Any):
    return operator_class(TASK)(OperatorConfig(model=model, input="image", output="caption", options=options))


@pytest.mark.parametrize(
    "options",
    [{}, {"max_new_tokens": 5}, {"num_beams": 2, "max_new_tokens": 12}, {"no_repeat_ngram_size": 2}],
    ids=["default", "short", "beams", "no-repeat"],
)
def test_matches_generate_on_each_image_alone(captioner: str, reference, options: dict[str, Any], tmp_path) -> None:
    out = make(captioner, **options)(pa.table({"image": tiny_vision.struct_column(IMAGES, tmp_path)}))
    assert out.schema.field("caption").type == CAPTION
    assert out.column(ERROR_COLUMN).to_pylist() == [[]] * len(IMAGES)
    ours = [row["generated_text"] for row in out.column("caption").to_pylist()]
    settings = {"max_new_tokens": 30, "num_beams": 1, "do_sample": False, **options}
    assert ours == [reference(data, **settings) for data in IMAGES.values()]
    assert all(caption.strip() for caption in ours), "the tiny captioner should not give empty captions"
    assert len(set(ours)) >= len(IMAGES) - 2, "captions should depend on the image"
    if not options:
        lengths = {len(caption) for caption in ours}
        assert len(lengths) >= 3, "captions should end at different lengths (early [SEP] and max_new_tokens)"


@pytest.mark.parametrize("kind", ["blip", "git"])
def test_blip_and_git_captioners_match_generate_on_each_image_alone(captioners: dict[str, str], kind: str) -> None:
    model = captioners[kind]
    out = make(model, max_new_tokens=8)(pa.table({"image": list(IMAGES.values())}))
    assert out.column(ERROR_COLUMN).to_pylist() == [[]] * len(IMAGES)
    ours = [row["generated_text"] for row in out.column("caption").to_pylist()]
    reference = reference_for(model)
    assert ours == [reference(data, max_new_tokens=8, num_beams=1, do_sample=False) for data in IMAGES.values()]
    assert len(set(ours)) >= len(IMAGES) - 2, "captions should depend on the image"


def test_bad_media_rows_get_errors_and_a_separate_stage_equals_inline(captioner: str, reference) -> None:
    good = [IMAGES["rgba_webp_lossless_26x52"], IMAGES["cmyk_jpeg_36x36"]]
    cells = [{"bytes": good[0], "path": None}, *({"bytes": data, "path": None} for data in BAD.values())]
    cells += [{"bytes": None, "path": ""}, None, {"bytes": good[1], "path": "b.jpg"}]
    table = pa.table({"image": pa.array(cells, tiny_vision.STRUCT), "n": list(range(len(cells)))})
    inline = make(captioner)(table)
    tiny_vision.assert_row_errors(
        inline,
        [
            None,
            *tiny_vision.BAD_IMAGE_ERRORS,
            r"input column 'image' holds neither bytes nor a path",
            r"input column 'image' is null",
            None,
        ],
    )
    values = inline.column("caption").to_pylist()
    assert values[0] == {"generated_text": reference(good[0], max_new_tokens=30)}
    assert values[-1] == {"generated_text": reference(good[1], max_new_tokens=30)}
    assert all(value is None for value in values[1:-1])

    stage = pickle.loads(pickle.dumps(make(captioner).preparer()))
    prepared = stage(table)
    separate = pickle.loads(pickle.dumps(make(captioner)))(prepared)
    assert separate.column_names == ["image", "n", "caption", ERROR_COLUMN]
    assert prepared_column("caption") not in separate.column_names
    assert separate.equals(inline)


def test_models_that_need_a_prompt_or_have_no_decoder_are_refused(tmp_path) -> None:
    chat = tmp_path / "llava"
    LlavaConfig().save_pretrained(chat)  # a config alone: the type is refused before any weights are read
    classifier = tiny_vision.build_image_classifier(tmp_path / "vit")
    for path, model_type in ((chat, "llava"), (classifier, "vit")):
        with pytest.raises(
            ModelLoadError,
            match=f"model '{path}': image-to-text runs captioning models that generate from the image alone "
            rf"\(vision-encoder-decoder, blip, git\); '{model_type}' is not one",
        ):
            make(str(path)).setup()


def test_options_and_output_type_need_no_model() -> None:
    operator = make("/nowhere")
    assert operator.output_type() == CAPTION
    assert operator.input_kind == "image"
    assert operator.options["max_new_tokens"] == 30
    assert operator.options["num_beams"] == 1
    assert operator.options["do_sample"] is False
    for bad in (None, 0, -3, 2.5, True):
        with pytest.raises(OptionError, match="step 'caption': option max_new_tokens must be a positive integer"):
            make("/nowhere", max_new_tokens=bad)
    with pytest.raises(OptionError, match="option num_beams must be a positive integer"):
        make("/nowhere", num_beams=0)
    with pytest.raises(OptionError, match="option do_sample must be true or false"):
        make("/nowhere", do_sample="yes")
    with pytest.raises(OptionError, match="option temperature must be a positive number or null"):
        make("/nowhere", temperature=0)
    with pytest.raises(OptionError, match="option min_new_tokens must not exceed max_new_tokens"):
        make("/nowhere", min_new_tokens=40)
    with pytest.raises(OptionError, match=r"unknown option\(s\) max_length"):
        make("/nowhere", max_length=20)
