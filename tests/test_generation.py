"""summarization, translation and text-generation on tiny seeded BART, T5 and GPT-2 models.

transformers 5 has no summarization or translation pipeline: their reference is what the 4.x pipelines did for one
text — the model's prefix and the text, tokenised (truncated to the window), ``generate()`` on that input alone,
decoded with ``skip_special_tokens=True``. text-generation is compared with transformers 5's own pipeline. Texts
must be equal exactly; the operators generate for whole batches of texts of very different lengths.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig, pipeline

from lakelabel.operators import ERROR_COLUMN, OperatorConfig, OptionError
from lakelabel.operators.core.base import ModelLoadError
from lakelabel.operators.text.generation import Summarization, Translation
from lakelabel.operators.text.generation_options import DEFAULT_MAX_NEW_TOKENS, default_max_new_tokens
from lakelabel.operators.text.text_generation import TextGeneration
from tests import tiny_generation

LONG = (
    "The committee will vote on the proposal during next week's session, and the company expects profits to grow "
    "by 12 percent in the coming quarter while the train from Amsterdam to Brussels takes about two hours. " * 3
)
TEXTS = [
    "The weather today is cloudy with a chance of rain.",
    "",
    "Hi",
    "東京は日本の首都です。",
    "Москва — столица России.",
    "I love this phone 😍🔥 but the battery dies fast!",
    LONG,
    "Please send the quarterly report to the finance team by Friday morning.",
    "NASA plans to send astronauts back to the Moon before 2030.",
]
SUMMARY = pa.struct([("summary_text", pa.string())])
TRANSLATION = pa.struct([("translation_text", pa.string())])
GENERATED = pa.struct([("generated_text", pa.string())])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("generation")
    return {
        "bart": str(tiny_generation.build_bart(root / "bart")),
        "t5": str(tiny_generation.build_t5(root / "t5")),
        "gpt2": str(tiny_generation.build_gpt2(root / "gpt2")),
        "nllb": str(tiny_generation.build_nllb(root / "nllb")),
    }


def make(cls: type, model: str, **options: Any):
    return cls(OperatorConfig(model=model, input="text", output="out", options=options))


def run(cls: type, model: str, texts: list[str | None], **options: Any) -> list:
    out = make(cls, model, **options)(pa.table({"text": pa.array(texts, pa.string())}))
    return out.column("out").to_pylist()


def seq2seq_reference(model: str) -> Callable[..., list[str]]:
    """What a 4.x summarization/translation pipeline gave for one text (truncated to the window)."""
    tokenizer = AutoTokenizer.from_pretrained(model)
    generator = AutoModelForSeq2SeqLM.from_pretrained(model).eval()

    def generate(text: str, prefix: str = "", **generate_kwargs: Any) -> list[str]:
        inputs = tokenizer(prefix + text, truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt")
        with torch.inference_mode():
            sequences = generator.generate(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], **generate_kwargs
            )
        return [tokenizer.decode(s, skip_special_tokens=True, clean_up_tokenization_spaces=False) for s in sequences]

    return generate


def test_long_text_exceeds_every_window(tiny: dict[str, str]) -> None:
    for name, window in (("bart", tiny_generation.WINDOW), ("gpt2", tiny_generation.CAUSAL_WINDOW)):
        tokenizer = AutoTokenizer.from_pretrained(tiny[name])
        assert tokenizer.model_max_length == window
        assert len(tokenizer(LONG)["input_ids"]) > 2 * window


@pytest.mark.parametrize(
    ("cls", "name", "prefix", "extra"),
    [
        (Summarization, "bart", "", {}),
        (Translation, "bart", "", {}),
        # T5's task_specific_params: the task's prefix, and for summarization its no_repeat_ngram_size too
        (Summarization, "t5", "summarize: ", {"no_repeat_ngram_size": 2}),
        (Translation, "t5", "translate English to German: ", {}),
    ],
    ids=["bart-summarization", "bart-translation", "t5-summarization", "t5-translation"],
)
def test_seq2seq_greedy_equals_generate_on_each_text_alone(
    tiny: dict[str, str], cls: type, name: str, prefix: str, extra: dict[str, Any]
) -> None:
    field = SUMMARY[0].name if cls is Summarization else TRANSLATION[0].name
    reference = seq2seq_reference(tiny[name])
    ours = run(cls, tiny[name], TEXTS, max_new_tokens=12)
    expected = [reference(text, prefix, max_new_tokens=12, do_sample=False, num_beams=1, **extra) for text in TEXTS]
    assert [row[field] for row in ours] == [texts[0] for texts in expected]
    assert sum(bool(row[field]) for row in ours) >= len(TEXTS) - 2, ours
    assert len({row[field] for row in ours}) >= 4, "outputs should depend on the input, or this checks little"


def test_bart_outputs_end_at_different_lengths(tiny: dict[str, str]) -> None:
    """Some rows finish before max_new_tokens: the batch holds padding after finished rows."""
    tokenizer = AutoTokenizer.from_pretrained(tiny["bart"])
    ours = run(Summarization, tiny["bart"], TEXTS, max_new_tokens=12)
    lengths = {len(tokenizer(row["summary_text"], add_special_tokens=False)["input_ids"]) for row in ours}
    assert len(lengths) >= 3, lengths


def test_translation_languages_pick_the_task_prefix(tiny: dict[str, str]) -> None:
    reference = seq2seq_reference(tiny["t5"])
    texts = TEXTS[:4] + TEXTS[5:]
    french = run(Translation, tiny["t5"], texts, max_new_tokens=10, src_lang="en", tgt_lang="fr")
    bare = run(Translation, tiny["t5"], texts, max_new_tokens=10, prefix="")
    for text, got_fr, got_bare in zip(texts, french, bare, strict=True):
        assert [got_fr["translation_text"]] == reference(text, "translate English to French: ", max_new_tokens=10)
        assert [got_bare["translation_text"]] == reference(text, "", max_new_tokens=10)
    german = run(Translation, tiny["t5"], texts, max_new_tokens=10)
    assert german != french != bare, "the prefixes should change some outputs, or this checks little"


def test_multilingual_translation_sets_the_languages(tiny: dict[str, str]) -> None:
    """As 4.x's TranslationPipeline: the source language's code in the input, the target's forced first."""
    tokenizer = AutoTokenizer.from_pretrained(tiny["nllb"])
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny["nllb"]).eval()
    tokenizer.src_lang = "eng_Latn"
    outputs = {}
    for target in ("fra_Latn", "deu_Latn"):
        ours = run(Translation, tiny["nllb"], TEXTS, max_new_tokens=8, src_lang="eng_Latn", tgt_lang=target)
        for text, got in zip(TEXTS, ours, strict=True):
            inputs = tokenizer(text, truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt")
            with torch.inference_mode():
                (sequence,) = model.generate(
                    **inputs, max_new_tokens=8, forced_bos_token_id=tokenizer.convert_tokens_to_ids(target)
                )
            assert sequence[1] == tokenizer.convert_tokens_to_ids(target)
            assert got == {"translation_text": tokenizer.decode(sequence, skip_special_tokens=True)}, text
        outputs[target] = ours
        assert sum(bool(row["translation_text"]) for row in ours) >= len(TEXTS) - 2
    assert outputs["fra_Latn"] != outputs["deu_Latn"]


@pytest.mark.parametrize(
    ("languages", "match"),
    [({}, "src_lang and tgt_lang"), ({"src_lang": "eng_Latn", "tgt_lang": "xx_Latn"}, "tgt_lang 'xx_Latn'")],
)
def test_multilingual_translation_needs_known_languages(
    tiny: dict[str, str], languages: dict[str, str], match: str
) -> None:
    with pytest.raises(OptionError, match=match):
        make(Translation, tiny["nllb"], **languages).setup()


@pytest.mark.parametrize("full_text", [True, False])
def test_text_generation_equals_the_pipeline(tiny: dict[str, str], full_text: bool) -> None:
    pipe = pipeline("text-generation", model=tiny["gpt2"])
    ours = run(TextGeneration, tiny["gpt2"], TEXTS, max_new_tokens=10, return_full_text=full_text)
    for text, got in zip(TEXTS, ours, strict=True):
        (expected,) = pipe(
            text, max_new_tokens=10, do_sample=False, return_full_text=full_text, handle_long_generation="hole"
        )
        assert got == expected, text
        assert got["generated_text"].startswith(text) or not full_text
    new = [row["generated_text"][len(text) if full_text else 0 :] for row, text in zip(ours, TEXTS, strict=True)]
    assert sum(bool(text) for text in new) >= len(TEXTS) - 1, new


def test_text_generation_batch_equals_one_by_one(tiny: dict[str, str]) -> None:
    prompts = ["Hi", "The river Thames flows through Oxford and London before reaching the sea.", "A", LONG, "Ok ok"]
    tokenizer = AutoTokenizer.from_pretrained(tiny["gpt2"])
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    assert min(lengths) == 1, lengths
    assert max(lengths) > 40, lengths  # one batch, heavily left-padded
    batch = run(TextGeneration, tiny["gpt2"], prompts, max_new_tokens=12, return_full_text=False)
    alone = [run(TextGeneration, tiny["gpt2"], [p], max_new_tokens=12, return_full_text=False)[0] for p in prompts]
    assert batch == alone
    assert all(row["generated_text"] for row in batch)


def test_beam_search_equals_generate(tiny: dict[str, str]) -> None:
    options = {"max_new_tokens": 8, "num_beams": 3, "num_return_sequences": 2}
    reference = seq2seq_reference(tiny["bart"])
    texts = [TEXTS[0], TEXTS[7]]
    ours = run(Summarization, tiny["bart"], texts, **options)
    for text, got in zip(texts, ours, strict=True):
        assert [row["summary_text"] for row in got] == reference(text, **options)
    assert len(ours[0]) == 2
    assert ours[0][0] != ours[0][1]


def test_sampling_is_reproducible_and_seeded(tiny: dict[str, str]) -> None:
    options = {"max_new_tokens": 10, "do_sample": True, "top_k": 20, "temperature": 1.5, "return_full_text": False}
    first = run(TextGeneration, tiny["gpt2"], TEXTS, **options, seed=7)
    again = run(TextGeneration, tiny["gpt2"], TEXTS, **options, seed=7)
    other = run(TextGeneration, tiny["gpt2"], TEXTS, **options, seed=8)
    greedy = run(TextGeneration, tiny["gpt2"], TEXTS, max_new_tokens=10, return_full_text=False)
    assert first == again
    assert first != other
    assert first != greedy
    summaries = [run(Summarization, tiny["bart"], TEXTS, max_new_tokens=8, do_sample=True) for _ in range(2)]
    assert summaries[0] == summaries[1]


def test_null_rows_get_an_error_and_the_rest_is_annotated(tiny: dict[str, str]) -> None:
    table = pa.table({"text": pa.array(["Hi there", None, "NASA plans"], pa.string())})
    for cls, name in ((Summarization, "bart"), (Translation, "t5"), (TextGeneration, "gpt2")):
        out = make(cls, tiny[name], max_new_tokens=5)(table)
        values = out.column("out").to_pylist()
        assert values[1] is None
        assert None not in (values[0], values[2])
        errors = out.column(ERROR_COLUMN).to_pylist()
        assert errors[0] == errors[2] == []
        assert errors[1] == [{"step": "out", "message": "input column 'text' is null"}]


@pytest.mark.parametrize(
    ("cls", "struct"), [(Summarization, SUMMARY), (Translation, TRANSLATION), (TextGeneration, GENERATED)]
)
def test_output_types(tiny: dict[str, str], cls: type, struct: pa.DataType) -> None:
    name = {Summarization: "bart", Translation: "t5", TextGeneration: "gpt2"}[cls]
    table = pa.table({"text": pa.array(["Hi", None], pa.string())})
    single = make(cls, tiny[name], max_new_tokens=4)
    assert single.output_type() == struct
    assert single(table).schema.field("out").type == struct
    several = make(cls, tiny[name], max_new_tokens=4, num_beams=2, num_return_sequences=2)
    assert several.output_type() == pa.list_(struct)
    out = several(table)
    assert out.schema.field("out").type == pa.list_(struct)
    assert len(out.column("out")[0].as_py()) == 2


@pytest.mark.parametrize(
    "options",
    [
        {"max_new_tokens": None},
        {"max_new_tokens": 0},
        {"max_new_tokens": -3},
        {"max_new_tokens": "20"},
        {"max_new_tokens": True},
        {"max_lenght": 20},
        {"num_beams": 0},
        {"top_p": 1.5},
        {"temperature": 0},
        {"do_sample": "yes"},
        {"early_stopping": "sometimes"},
        {"num_return_sequences": 0},
        {"seed": -1},
        {"min_new_tokens": 30, "max_new_tokens": 10},
        {"prefix": 3},
        {"clean_up_tokenization_spaces": "no"},
    ],
)
def test_bad_options_are_refused(tiny: dict[str, str], options: dict[str, Any]) -> None:
    name = next(iter(options))
    for cls in (Summarization, Translation, TextGeneration):
        with pytest.raises(OptionError, match=name):
            make(cls, tiny["bart"], **options)


def test_options_that_need_the_model_are_refused_at_setup(tiny: dict[str, str]) -> None:
    with pytest.raises(OptionError, match="num_return_sequences"):
        make(Summarization, tiny["bart"], num_return_sequences=2).setup()
    with pytest.raises(OptionError, match="max_new_tokens"):
        make(TextGeneration, tiny["gpt2"], max_new_tokens=tiny_generation.CAUSAL_WINDOW).setup()
    with pytest.raises(OptionError, match="return_full_text"):
        make(TextGeneration, tiny["gpt2"], return_full_text=None)
    with pytest.raises(OptionError, match="min_new_tokens"):
        make(Summarization, tiny["bart"], min_new_tokens=DEFAULT_MAX_NEW_TOKENS + 1).setup()
    with pytest.raises(ModelLoadError, match="encoder-decoder"):
        make(TextGeneration, tiny["bart"]).setup()
    with pytest.raises(ModelLoadError, match="cannot load weights"):
        make(Summarization, tiny["gpt2"]).setup()


def test_default_max_new_tokens_is_bounded() -> None:
    assert default_max_new_tokens(GenerationConfig(), encoder_decoder=True) == DEFAULT_MAX_NEW_TOKENS
    assert default_max_new_tokens(GenerationConfig(max_length=142), encoder_decoder=True) == 141
    assert default_max_new_tokens(GenerationConfig(max_length=4096), encoder_decoder=False) == DEFAULT_MAX_NEW_TOKENS
    assert default_max_new_tokens(GenerationConfig(max_new_tokens=7, max_length=50), encoder_decoder=True) == 7


def test_construction_is_cheap_and_picklable(tiny: dict[str, str]) -> None:
    operator = make(Summarization, tiny["bart"], max_new_tokens=4)
    assert not hasattr(operator, "model")
    blob = pickle.dumps(operator)
    assert len(blob) < 2_000
    assert pickle.loads(blob)(pa.table({"text": ["fine"]})).column("out")[0].as_py()["summary_text"]


def test_an_empty_prompt_without_a_start_token_is_a_row_error(tiny: dict[str, str]) -> None:
    operator = make(TextGeneration, tiny["gpt2"], max_new_tokens=4)
    operator.setup()
    operator.tokenizer.bos_token = None
    out = operator(pa.table({"text": ["", " ", "Hi"]}))
    assert out.column("out").to_pylist()[0] is None
    assert "empty" in out.column(ERROR_COLUMN)[0].as_py()[0]["message"]
    assert None not in out.column("out").to_pylist()[1:]
