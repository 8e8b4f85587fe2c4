"""Answer-span selection for extractive question answering, as the transformers 4.x pipeline selected spans.

transformers 5 dropped ``pipeline("question-answering")``; this module keeps its post-processing (4.57's
``select_starts_ends``, ``decode_spans`` and ``QuestionAnsweringPipeline.postprocess``) so that the same model
gives the same answers, character offsets and scores. Every window of a context is scored on its own (start and
end logits softmaxed over the window's context tokens plus the CLS token), the best spans of every window are
mapped back to characters of the context, equal answers found in several windows add up their scores, and the
best ``top_k`` remain. The numpy operations are 4.x's own, on arrays of the same shapes, so that ties (spans
scored exactly 0 when a window has few candidates) resolve as they did.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Encoding

NULL_SCORE_START = 1_000_000.0
"""The running minimum of the "no answer" score starts here (large and positive), as in 4.x."""


@dataclass(frozen=True)
class Window:
    """One window of a context, as the model saw it (without padding).

    Attributes:
        start_logits: float32 start logits, one per token.
        end_logits: float32 end logits, one per token.
        p_mask: 1 for tokens that cannot be in an answer (question and special tokens), 0 for context tokens and
            the CLS token (kept for "no answer").
        attention_mask: the window's attention mask (all ones: windows are unpadded).
        encoding: the window's ``tokenizers.Encoding`` (word ids and character offsets).
    """

    start_logits: np.ndarray
    end_logits: np.ndarray
    p_mask: np.ndarray
    attention_mask: np.ndarray
    encoding: Encoding


def decode_spans(
    start: np.ndarray, end: np.ndarray, topk: int, max_answer_len: int, undesired_tokens: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``topk`` best ``(start, end)`` token spans of one window and their probabilities.

    Args:
        start: start probabilities, shape ``(1, tokens)``.
        end: end probabilities, shape ``(1, tokens)``.
        topk: how many spans to keep (fewer come back when some fall outside the allowed tokens).
        max_answer_len: the longest span, in tokens.
        undesired_tokens: despite its name (kept from 4.x), 1 for tokens allowed in a span, shape ``(1, tokens)``.

    Returns:
        Start token indices, end token indices and span probabilities, best first.
    """
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    # Only spans with start <= end < start + max_answer_len keep their score.
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    scores_flat = candidates.flatten()
    if topk == 1:
        idx_sort = np.array([np.argmax(scores_flat)])
    elif len(scores_flat) < topk:
        idx_sort = np.argsort(-scores_flat)
    else:
        idx = np.argpartition(-scores_flat, topk)[0:topk]
        idx_sort = idx[np.argsort(-scores_flat[idx])]
    starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
    # As in 4.x: nonzero() of the (1, tokens) mask also yields its row indices (all 0), so token 0 always passes.
    allowed = undesired_tokens.nonzero()
    desired = np.isin(starts, allowed) & np.isin(ends, allowed)
    starts = starts[desired]
    ends = ends[desired]
    return starts, ends, candidates[0, starts, ends]


def select_starts_ends(
    window: Window, min_null_score: float, top_k: int, *, handle_impossible_answer: bool, max_answer_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Softmax one window's logits over its allowed tokens and pick its best spans.

    Returns:
        Start and end token indices and probabilities of the best spans, and the updated minimum "no answer"
        score (the CLS start probability times the CLS end probability, over every window so far).
    """
    undesired_tokens = np.abs(window.p_mask[None] - 1) & window.attention_mask[None]
    undesired_mask = undesired_tokens == 0.0
    start = np.where(undesired_mask, -10000.0, window.start_logits[None])
    end = np.where(undesired_mask, -10000.0, window.end_logits[None])
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
    start[0, 0] = end[0, 0] = 0.0  # the CLS token is no span
    starts, ends, scores = decode_spans(start, end, top_k, max_answer_len, undesired_tokens)
    return starts, ends, scores, min_null_score


def char_span(
    encoding: Encoding, start: int, end: int, sequence_index: int, *, align_to_words: bool
) -> tuple[int, int]:
    """Character offsets in the context of the token span ``start..end``, widened to whole words if asked."""
    if align_to_words:
        # As 4.x: a token without a word (CLS) makes this fail, and the token offsets are used instead.
        with contextlib.suppress(Exception):
            start_word = encoding.token_to_word(start)
            end_word = encoding.token_to_word(end)
            return (
                encoding.word_to_chars(start_word, sequence_index=sequence_index)[0],
                encoding.word_to_chars(end_word, sequence_index=sequence_index)[1],
            )
    return encoding.offsets[start][0], encoding.offsets[end][1]


def best_answers(
    windows: list[Window],
    context: str,
    *,
    top_k: int,
    handle_impossible_answer: bool,
    max_answer_len: int,
    align_to_words: bool,
    sequence_index: int,
) -> list[dict[str, Any]]:
    """The ``top_k`` best answers over every window of one context, best first (``answer, score, start, end``).

    Args:
        windows: the context's windows in order.
        context: the context text (answers are slices of it).
        top_k: how many answers to return at most.
        handle_impossible_answer: also rank the "no answer" (empty answer at 0..0, scored by the lowest CLS
            probability over the windows).
        max_answer_len: the longest answer, in tokens.
        align_to_words: widen answers to whole words.
        sequence_index: which sequence of the tokenized pair is the context (1 when the question comes first).
    """
    min_null_score = NULL_SCORE_START
    answers: list[dict[str, Any]] = []
    # Some spans disappear when aligned to words (two spans inside one word become one answer): ask for more.
    pre_topk = top_k * 2 + 10 if align_to_words else top_k
    for window in windows:
        starts, ends, scores, min_null_score = select_starts_ends(
            window,
            min_null_score,
            pre_topk,
            handle_impossible_answer=handle_impossible_answer,
            max_answer_len=max_answer_len,
        )
        for s, e, score in zip(starts, ends, scores, strict=True):
            first, last = char_span(window.encoding, int(s), int(e), sequence_index, align_to_words=align_to_words)
            text = context[first:last]
            same = next((answer for answer in answers if answer["answer"].lower() == text.lower()), None)
            if same is not None:
                same["score"] += score.item()
            else:
                answers.append({"answer": text, "score": score.item(), "start": first, "end": last})
    if handle_impossible_answer:
        answers.append({"answer": "", "score": min_null_score, "start": 0, "end": 0})
    return sorted(answers, key=lambda answer: answer["score"], reverse=True)[:top_k]
