"""Tiny, seeded BERT models with a question-answering or a masked-language-modelling head, for tests.

They reuse the WordPiece tokenizer and the two-layer config of ``tests.tiny_models``, so they load through
``AutoModelFor*`` and ``AutoTokenizer`` exactly like Hub checkpoints, offline. The committed question-answering
model under ``tests/golden/tiny-qa`` was written by ``build_qa_model`` (see ``scripts/make_qa_golden.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import BertForMaskedLM, BertForQuestionAnswering

from tests.tiny_models import _config, _save, build_tokenizer

if TYPE_CHECKING:
    from pathlib import Path

QA_SEED = 7
QA_MAX_LENGTH = 64
"""The QA tokenizer's window: short enough that ordinary paragraphs overflow into several windows."""

# Span-head scale: with it, start/end logits spread over several units, so the best span moves from one
# question and context to the next instead of sitting on the same few tokens.
_QA_HEAD_SCALE = 3.0


def build_qa_model(path: Path, *, seed: int = QA_SEED, model_max_length: int = QA_MAX_LENGTH) -> Path:
    """Build a tiny extractive ``BertForQuestionAnswering`` (random, seeded) in ``path``."""
    tokenizer = build_tokenizer(model_max_length=model_max_length)
    torch.manual_seed(seed)
    model = BertForQuestionAnswering(_config(tokenizer))
    with torch.no_grad():
        model.qa_outputs.weight.mul_(_QA_HEAD_SCALE)
    return _save(model, tokenizer, path)


def build_mlm(path: Path, *, seed: int = 0, model_max_length: int = 32) -> Path:
    """Build a tiny ``BertForMaskedLM`` (random, seeded; decoder tied to the embeddings) in ``path``."""
    tokenizer = build_tokenizer(model_max_length=model_max_length)
    torch.manual_seed(seed)
    model = BertForMaskedLM(_config(tokenizer))
    return _save(model, tokenizer, path)
