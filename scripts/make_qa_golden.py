r"""Write ``tests/golden/question_answering.json``: transformers 4.x ``pipeline("question-answering")`` answers.

transformers 5 has no question-answering pipeline, so lakelabel's ``question-answering`` operator is checked
against answers that the 4.x pipeline gave on the committed tiny model (``tests/golden/tiny-qa``), for a fixed
list of questions, contexts and option sets. Run it with a transformers 4.57 environment, never lakelabel's own::

    python3 -m venv /tmp/tf457
    /tmp/tf457/bin/pip install --find-links /opt/wheels torch==2.13.0 "transformers==4.57.*" safetensors
    /tmp/tf457/bin/python scripts/make_qa_golden.py tests/golden/tiny-qa tests/golden/question_answering.json

The tiny model itself is committed so that it is bit-identical here and in the test. To rebuild it (then rerun
this script, and commit both), from the repository root with lakelabel's environment::

    .venv/bin/python -c "from pathlib import Path; from tests.tiny_heads import build_qa_model; \
        build_qa_model(Path('tests/golden/tiny-qa'))"

Rows the pipeline refused are recorded with its error message; the operator must give those rows a row error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_REPEATED = "Alice Johnson moved from London to Paris in 2019 to work for the United Nations. "
_LONG = (
    "The library in New York holds more than 50 million books and maps. "
    "Scientists at Stanford University discovered a new species of frog in Peru. "
    "The train from Amsterdam to Brussels takes about two hours. "
    "Mount Everest is the highest mountain on Earth at 8,849 metres. "
    "Johann Sebastian Bach composed music in Leipzig for many years. "
    "The Red Cross delivered food and water to villages in Kenya."
)

CASES: list[tuple[str, str]] = [
    ("Where did Alice move?", _REPEATED + "The river Thames flows through Oxford and London before reaching the sea."),
    ("Who was born in Honolulu?", "Barack Obama was born in Honolulu, Hawaii, on August 4, 1961."),
    ("What does the library hold?", _LONG),
    ("Where does Alice work?", _REPEATED * 3 + _REPEATED.upper()),
    ("Où est la tour Eiffel ?", "La tour Eiffel se trouve à Paris, près de la Seine ; elle mesure 330 mètres."),
    ("東京はどこですか？", "東京は日本の首都です。Москва — столица России. Café crème à 3 € in Zürich."),  # noqa: RUF001
    ("What did customers praise?", "Customers praised the new phone 📱 for its battery life 🔋 and bright screen!!!"),
    ("Who presented?", "Dr. Kenji Watanabe (Tokyo) presented—his research: \"frogs\", 'maps' & more... [sic]"),
    (" ", "The quick brown fox jumps over the lazy dog near the old farm."),
    ("Where?", "   "),
    ("Where?", "Paris"),
    ("", "Paris is the capital of France."),
    ("Where?", ""),
    ("where " * 30, _LONG),
    ("where " * 17, _LONG),
    ("where " * 18, "Paris"),
]
"""``(question, context)`` pairs: repeated and upper-cased answers across windows, non-ASCII scripts, emoji,
punctuation against words, whitespace-only and one-word texts, empty texts, overlong questions
(refused beside a long context, answered beside a short one)."""

OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"top_k": 3},
    {"handle_impossible_answer": True},
    {"top_k": 3, "handle_impossible_answer": True},
    {"top_k": 2, "max_answer_len": 2},
    {"max_seq_len": 24, "doc_stride": 6},
    {"max_seq_len": 24, "doc_stride": 6, "top_k": 3, "handle_impossible_answer": True},
    {"align_to_words": False, "top_k": 3},
    {"top_k": 20},
    {"max_seq_len": 16, "doc_stride": 0, "max_answer_len": 1},
]


def _answer(pipe: Any, question: str, context: str, options: dict[str, Any]) -> dict[str, Any]:
    try:
        result = pipe(question=question, context=context, **options)
    except Exception as exc:  # noqa: BLE001 - the refusal is what is recorded
        return {"error": f"{type(exc).__name__}: {exc}"}
    except BaseException as exc:  # the tokenizer panics (pyo3 PanicException) on a stride it cannot honour
        if type(exc).__name__ != "PanicException":
            raise
        return {"error": f"{type(exc).__name__}: {exc}"}
    answers = [result] if isinstance(result, dict) else result
    return {"answers": [{key: answer[key] for key in ("answer", "score", "start", "end")} for answer in answers]}


def main() -> None:
    """Run the 4.x pipeline over every case and option set; write the golden JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the tiny QA model directory (tests/golden/tiny-qa)")
    parser.add_argument("output", type=Path, help="where to write the golden JSON")
    args = parser.parse_args()

    import transformers  # noqa: PLC0415 - after HF_HUB_OFFLINE is set
    from transformers import AutoModelForQuestionAnswering, PreTrainedTokenizerFast, pipeline  # noqa: PLC0415

    if int(transformers.__version__.split(".")[0]) >= 5:
        sys.exit(f"transformers {transformers.__version__} has no question-answering pipeline; use 4.57")
    # The tokenizer was saved by transformers 5 (tokenizer_class TokenizersBackend): load tokenizer.json directly.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(args.model)
    model = AutoModelForQuestionAnswering.from_pretrained(args.model, use_safetensors=True)
    pipe = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    runs = [
        {
            "options": options,
            "results": [_answer(pipe, question, context, options) for question, context in CASES],
        }
        for options in OPTION_SETS
    ]
    golden = {
        "generator": "scripts/make_qa_golden.py",
        "transformers": transformers.__version__,
        "cases": [{"question": question, "context": context} for question, context in CASES],
        "runs": runs,
    }
    args.output.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    answered = sum("answers" in result for run in runs for result in run["results"])
    sys.stdout.write(f"wrote {args.output}: {len(runs)} option sets x {len(CASES)} cases, {answered} answered\n")


if __name__ == "__main__":
    main()
