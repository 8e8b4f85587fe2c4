"""``question-answering``: extractive answers found in a context, as the transformers 4.x pipeline gave them.

transformers 5 removed ``pipeline("question-answering")``; this operator keeps it as a batch operator on
``AutoModelForQuestionAnswering``. The step's ``input`` column is the context; the question is read from a column
(``question_column``) or fixed for every row (``question``). A context longer than the window is covered by 4.x's
overlapping windows (``max_seq_len`` tokens each, ``doc_stride`` tokens of overlap); the windows of a whole batch
run through the model together, in length-sorted micro-batches, and the spans are chosen exactly as 4.x chose them
(``lakelabel.operators.text.qa_spans``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from transformers import AutoModelForQuestionAnswering
from typing_extensions import override

from lakelabel.operators.core.base import Operator, OptionError
from lakelabel.operators.core.columns import column_values
from lakelabel.operators.core.loading import load_model, load_tokenizer
from lakelabel.operators.core.text_batching import forward_rows
from lakelabel.operators.text.qa_spans import Window, best_answers

if TYPE_CHECKING:
    from transformers import BatchEncoding

ANSWER = pa.struct([("answer", pa.string()), ("score", pa.float32()), ("start", pa.int32()), ("end", pa.int32())])

_MAX_SEQ_LEN = 384
_MAX_DOC_STRIDE = 128


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


class QuestionAnswering(Operator):
    """Answer a question about each row's context: ``struct<answer, score, start, end>``.

    ``start``/``end`` are character offsets into the context (``context[start:end] == answer``). Options, with the
    4.x pipeline's names and defaults:

    - ``question_column`` or ``question`` (exactly one): the column holding each row's question, or one question
      asked of every row.
    - ``top_k`` (1): with more than 1, a ``list`` of up to ``top_k`` answers, best first.
    - ``max_answer_len`` (15): the longest answer, in tokens.
    - ``handle_impossible_answer`` (false): also rank the empty answer (``""`` at 0..0).
    - ``align_to_words`` (true): widen answers to whole words.
    - ``max_seq_len`` (null: the tokenizer's maximum, at most 384): tokens per window, question included.
    - ``doc_stride`` (null: half of ``max_seq_len``, at most 128): overlap between the windows of a long context.
    - ``max_question_len`` (64): accepted as 4.x accepts it; like 4.x with a fast tokenizer (the only kind this
      operator runs), it does not shorten questions.

    Rows 4.x refused get a row error: a null, non-string or empty question or context, and a question too long to
    leave room for the context (or for ``doc_stride``) within ``max_seq_len``. Where the tokenizer pads on the
    left, 4.x put the context first and let any token (question tokens too) start an answer; here only context
    tokens (and CLS, for "no answer") can.
    """

    task: ClassVar[str] = "question-answering"
    defaults: ClassVar[dict[str, Any]] = {
        "question_column": None,
        "question": None,
        "top_k": 1,
        "doc_stride": None,
        "max_answer_len": 15,
        "max_seq_len": None,
        "max_question_len": 64,
        "handle_impossible_answer": False,
        "align_to_words": True,
    }

    @override
    def validate_options(self) -> None:
        options = self.options
        step = f"step '{self.config.output}'"
        column, question = options["question_column"], options["question"]
        if (column is None) == (question is None):
            raise OptionError(f"{step}: give exactly one of the options question_column and question")
        if column is not None and (not isinstance(column, str) or not column):
            raise OptionError(f"{step}: option question_column must be a column name")
        if question is not None and (not isinstance(question, str) or not question):
            raise OptionError(f"{step}: option question must be a non-empty string")
        for name, minimum in (("top_k", 1), ("max_answer_len", 1), ("max_question_len", 1)):
            if not _is_int(options[name], minimum):
                raise OptionError(f"{step}: option {name} must be an integer >= {minimum}")
        for name, minimum in (("max_seq_len", 1), ("doc_stride", 0)):
            if options[name] is not None and not _is_int(options[name], minimum):
                raise OptionError(f"{step}: option {name} must be an integer >= {minimum} or null")
        for name in ("handle_impossible_answer", "align_to_words"):
            if not isinstance(options[name], bool):
                raise OptionError(f"{step}: option {name} must be true or false")
        stride, window = options["doc_stride"], options["max_seq_len"]
        if stride is not None and window is not None and stride > window:
            raise OptionError(f"{step}: option doc_stride ({stride}) is larger than max_seq_len ({window})")

    @override
    def columns(self) -> tuple[str, ...]:
        column = self.options["question_column"]
        return (self.config.input,) if column is None else (column, self.config.input)

    @override
    def row_values(self, batch: pa.Table) -> list[Any]:
        contexts = column_values(batch, self.config.input)
        column = self.options["question_column"]
        questions = [self.options["question"]] * len(contexts) if column is None else column_values(batch, column)
        return list(zip(questions, contexts, strict=True))

    @override
    def check(self, value: tuple[Any, Any]) -> str | None:
        question, context = value
        column = self.options["question_column"]
        named = ((question, f"question column '{column}'" if column else "option question"), (context, None))
        for text, label in named:
            where = label or f"input column '{self.config.input}'"
            if text is None:
                return f"{where} is null"
            if not isinstance(text, str):
                return f"{where} holds {type(text).__name__}, not a string"
            if not text:
                return f"{where} is empty"  # 4.x: "`question` cannot be empty" / "`context` cannot be empty"
        return self._window_refusal(question, context)

    @override
    def output_type(self) -> pa.DataType:
        return ANSWER if self.options["top_k"] == 1 else pa.list_(ANSWER)

    @override
    def load(self) -> None:
        self.tokenizer = load_tokenizer(self.config)
        if not self.tokenizer.is_fast:
            raise OptionError(f"model '{self.config.model}': question-answering needs a fast tokenizer")
        self.model, self.device = load_model(AutoModelForQuestionAnswering, self.config)
        step = f"step '{self.config.output}'"
        window = self.options["max_seq_len"]
        self.max_seq_len = int(min(self.tokenizer.model_max_length, _MAX_SEQ_LEN) if window is None else window)
        stride = self.options["doc_stride"]
        self.doc_stride = int(min(self.max_seq_len // 2, _MAX_DOC_STRIDE) if stride is None else stride)
        if self.doc_stride > self.max_seq_len:
            raise OptionError(
                f"{step}: option doc_stride ({self.doc_stride}) is larger than max_seq_len ({self.max_seq_len})"
            )
        self.specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        if self.max_seq_len <= self.specials:
            raise OptionError(f"{step}: option max_seq_len ({self.max_seq_len}) leaves no room for any token")
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions and self.max_seq_len > positions:
            raise OptionError(
                f"{step}: option max_seq_len ({self.max_seq_len}) exceeds the {positions} positions of model "
                f"'{self.config.model}'"
            )
        self.question_first = self.tokenizer.padding_side == "right"
        self._question_lengths: dict[str, int] = {}

    def _tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _window_refusal(self, question: str, context: str) -> str | None:
        """Why the tokenizer cannot cut this pair into windows (4.x failed on it), else None.

        Windows hold ``budget`` context tokens beside the question; the tokenizer needs at least one, and more than
        ``doc_stride``. The context is tokenized only when the question leaves too little room, to see whether it
        fits whole (no windows needed).
        """
        length = self._question_lengths.get(question)
        if length is None:
            length = self._tokens(question)
            if len(self._question_lengths) < 10_000:
                self._question_lengths[question] = length
        budget = self.max_seq_len - self.specials - length
        if budget > self.doc_stride or self.specials + length + self._tokens(context) <= self.max_seq_len:
            return None
        if budget < 1:
            return (
                f"the question is {length} tokens long and leaves no room for the context within max_seq_len "
                f"({self.max_seq_len})"
            )
        return (
            f"the question is {length} tokens long and leaves {budget} context tokens per window, not more than "
            f"doc_stride ({self.doc_stride}); lower doc_stride or raise max_seq_len"
        )

    def _encode(self, questions: list[str], contexts: list[str]) -> BatchEncoding:
        first, second = (questions, contexts) if self.question_first else (contexts, questions)
        return self.tokenizer(
            text=first,
            text_pair=second,
            truncation="only_second" if self.question_first else "only_first",
            max_length=self.max_seq_len,
            stride=self.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )

    def _windows(self, encodings: BatchEncoding, logits: list[torch.Tensor]) -> list[list[Window]]:
        """Each row's windows: logits, the mask of tokens that cannot answer, the word and offset maps."""
        context_sequence = 1 if self.question_first else 0
        cls_id = self.tokenizer.cls_token_id
        rows: list[list[Window]] = []
        for index, row in enumerate(encodings["overflow_to_sample_mapping"]):
            encoding = encodings[index]
            p_mask = np.array([sequence != context_sequence for sequence in encoding.sequence_ids], dtype=np.int64)
            if cls_id is not None:
                p_mask[np.asarray(encoding.ids) == cls_id] = 0  # keep CLS: some models point at it for "no answer"
            scores = logits[index].numpy()
            window = Window(
                start_logits=np.ascontiguousarray(scores[:, 0]),
                end_logits=np.ascontiguousarray(scores[:, 1]),
                p_mask=p_mask,
                attention_mask=np.asarray(encoding.attention_mask, dtype=np.int64),
                encoding=encoding,
            )
            if row == len(rows):
                rows.append([])
            rows[row].append(window)
        return rows

    @override
    def annotate(self, texts: list[tuple[str, str]]) -> pa.Array:
        questions = [question for question, _ in texts]
        contexts = [context for _, context in texts]
        encodings = self._encode(questions, contexts)

        def run(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            output = self.model(**batch)
            return torch.stack([output.start_logits, output.end_logits], dim=-1)

        logits = forward_rows(self.tokenizer, encodings, run, self.device, trim=True, dtype=self.model.dtype)
        top_k = self.options["top_k"]
        found = [
            best_answers(
                windows,
                context,
                top_k=top_k,
                handle_impossible_answer=self.options["handle_impossible_answer"],
                max_answer_len=self.options["max_answer_len"],
                align_to_words=self.options["align_to_words"],
                sequence_index=1 if self.question_first else 0,
            )
            for windows, context in zip(self._windows(encodings, logits), contexts, strict=True)
        ]
        if top_k == 1:
            if not all(found):
                raise ValueError("no answer span: the context holds no token that can answer")
            return pa.array([answers[0] for answers in found], type=ANSWER)
        return pa.array(found, type=pa.list_(ANSWER))
