"""image-text-to-text against transformers.pipeline("image-text-to-text") on tiny seeded LLaVA and Idefics3.

The pipeline gets the chat a user would write (one user message: the image, then the prompt) with
``return_full_text=False`` and greedy decoding; the operator's reply must equal its ``generated_text`` exactly, for
prompts fixed and from a column, in batches of images of mixed sizes, modes and formats.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from transformers import pipeline

from lakelabel.jobs.spec import parse_spec
from lakelabel.operators import ERROR_COLUMN, OperatorConfig, OptionError, operator_class
from lakelabel.operators.core.base import prepared_column
from lakelabel.operators.vision.image_io import load_image
from lakelabel.operators.vision.image_text_to_text import REPLY
from tests import tiny_vision, tiny_vlm
from tests.tiny_vision import BAD_IMAGE_ERRORS, assert_row_errors

IMAGES = tiny_vision.images()
NAMES = [
    "rgb_png_64x48",
    "rgb_jpeg_100x60",
    "rgba_png_40x30",
    "gray_png_50x50",
    "rgb_bmp_20x90",
    "exif_rotated_jpeg_40x80",
]
PROMPTS = ["Describe this image.", "What is in the picture?", "Count the shapes.", "Is it day or night?", "Hi", "Why?"]
MAX_NEW_TOKENS = 12


@pytest.fixture(scope="module")
def vlms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("vlms")
    return {
        "llava": str(tiny_vlm.build_llava(root / "llava")),
        "idefics3": str(tiny_vlm.build_idefics3(root / "idefics3")),
    }


def make(model: str, **options: Any):
    config = OperatorConfig(
        model=model, input="image", output="reply", options={"max_new_tokens": MAX_NEW_TOKENS, **options}
    )
    return operator_class("image-text-to-text")(config)


def pipeline_replies(model: str, names: list[str], prompts: list[str]) -> list[str]:
    pipe = pipeline("image-text-to-text", model=model)
    replies = []
    for name, prompt in zip(names, prompts, strict=True):
        image = load_image(IMAGES[name])
        chat = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}]
        (out,) = pipe(text=chat, max_new_tokens=MAX_NEW_TOKENS, return_full_text=False, do_sample=False)
        replies.append(out["generated_text"])
    return replies


@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_prompts_from_a_column_equal_the_pipeline(vlms: dict[str, str], arch: str) -> None:
    batch = pa.table({"image": [IMAGES[name] for name in NAMES], "question": PROMPTS})
    operator = make(vlms[arch], prompt_column="question")
    out = operator(batch)
    assert out.schema.field("reply").type == REPLY
    assert out.column(ERROR_COLUMN).to_pylist() == [[]] * len(NAMES)
    got = [row["generated_text"] for row in out.column("reply").to_pylist()]
    want = pipeline_replies(vlms[arch], NAMES, PROMPTS)
    assert got == want
    assert len(set(got)) == len(got), "the tiny model's replies should depend on the image and the prompt"


@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_a_fixed_prompt_equals_the_pipeline_in_one_batch(
    vlms: dict[str, str], arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = make(vlms[arch], prompt="Describe this image.")
    operator.setup()
    calls: list[int] = []
    original = operator.model.generate

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs["input_ids"].shape[0])
        return original(**kwargs)

    monkeypatch.setattr(operator.model, "generate", counting)
    out = operator(pa.table({"image": [IMAGES[name] for name in NAMES]}))
    assert calls == [len(NAMES)], "images of different sizes share one generate() call"
    got = [row["generated_text"] for row in out.column("reply").to_pylist()]
    assert got == pipeline_replies(vlms[arch], NAMES, ["Describe this image."] * len(NAMES))


def test_full_text_is_the_whole_decoded_sequence(vlms: dict[str, str]) -> None:
    reply = make(vlms["llava"], prompt="Hi")(pa.table({"image": [IMAGES[NAMES[0]]]})).column("reply")[0].as_py()
    full = make(vlms["llava"], prompt="Hi", return_full_text=True)(pa.table({"image": [IMAGES[NAMES[0]]]}))
    text = full.column("reply")[0].as_py()["generated_text"]
    assert text.endswith(reply["generated_text"])
    assert "Hi" in text[: -len(reply["generated_text"])]


def test_bad_rows_are_row_errors_and_the_batch_goes_on(vlms: dict[str, str]) -> None:
    bad = tiny_vision.bad_images()
    images = [IMAGES[NAMES[0]], *bad.values(), IMAGES[NAMES[1]], IMAGES[NAMES[2]], IMAGES[NAMES[3]], None]
    prompts = ["Hi"] * (1 + len(bad)) + ["Hi", None, "  ", "Hi"]
    operator = make(vlms["llava"], prompt_column="q")
    prepared = operator.preparer()(pa.table({"image": images, "q": prompts}))
    assert prepared_column("reply") in prepared.column_names
    out = operator(prepared)
    assert_row_errors(
        out,
        [
            None,
            *BAD_IMAGE_ERRORS,
            None,
            "prompt column 'q' is null",
            "prompt column 'q' is empty",
            "input column 'image' is null",
        ],
    )
    replies = out.column("reply").to_pylist()
    assert replies[0] is not None
    assert replies[1 + len(bad)] is not None


def test_options_are_checked(vlms: dict[str, str]) -> None:
    with pytest.raises(OptionError, match="exactly one of the options prompt and prompt_column"):
        make(vlms["llava"])
    with pytest.raises(OptionError, match="exactly one of the options prompt and prompt_column"):
        make(vlms["llava"], prompt="a", prompt_column="b")
    with pytest.raises(OptionError, match="option max_new_tokens must be a positive integer"):
        make(vlms["llava"], prompt="a", max_new_tokens=0)


def test_a_job_step(vlms: dict[str, str]) -> None:
    spec = {
        "name": "vqa",
        "input": {"uri": "/data/in"},
        "output": {"uri": "/data/out"},
        "steps": [
            {
                "task": "image-text-to-text",
                "model": vlms["idefics3"],
                "input": "image",
                "output": "reply",
                "options": {"prompt": "Describe this image.", "max_new_tokens": MAX_NEW_TOKENS},
            }
        ],
    }
    (step,) = parse_spec(spec).steps
    assert step.operator().columns() == ("image",)
    out = step.operator()(pa.table({"image": [IMAGES[NAMES[0]]]})).column("reply")[0].as_py()
    assert out["generated_text"] == pipeline_replies(vlms["idefics3"], NAMES[:1], ["Describe this image."])[0]
