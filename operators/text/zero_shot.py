"""``zero-shot-classification``: rank caller-given labels for each text.

Two methods, chosen from the model:

* ``nli`` — a model with an ``entailment`` label scores each ``(text, hypothesis_template.format(label))`` pair,
  exactly as ``pipeline("zero-shot-classification")`` does (``multi_label`` included).
* ``similarity`` — any other encoder (e.g. sentence-transformers MiniLM) embeds the text and each formatted label
  and ranks labels by cosine similarity. Scores are the cosine similarities, in ``[-1, 1]``, not probabilities;
  ``multi_label`` has no effect. This gives real zero-shot labels from a small embedding model.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from transformers import AutoModelForSequenceClassification
from typing_extensions import override

from lakelabel.operators.core.base import Operator, OptionError
from lakelabel.operators.core.columns import equal_lists
from lakelabel.operators.core.loading import load_config, load_model, load_tokenizer
from lakelabel.operators.core.text_batching import SORT_WINDOW, forward_rows
from lakelabel.operators.text.feature_extraction import SentenceEncoder, sentence_transformers_defaults

LABELS_SCORES = pa.struct([("labels", pa.list_(pa.string())), ("scores", pa.list_(pa.float32()))])


def entailment_id(config: Any) -> int:
    """The id of the label starting with ``entail`` (as the pipeline finds it), or -1."""
    for label, index in (config.label2id or {}).items():
        if str(label).lower().startswith("entail"):
            return int(index)
    return -1


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class ZeroShotClassification(Operator):
    """Rank ``candidate_labels`` for each text; ``method`` is ``auto``, ``nli`` or ``similarity``."""

    task: ClassVar[str] = "zero-shot-classification"
    batch_size: ClassVar[int] = SORT_WINDOW
    defaults: ClassVar[dict[str, Any]] = {
        "candidate_labels": None,
        "hypothesis_template": "This example is {}.",
        "multi_label": False,
        "method": "auto",
    }

    @override
    def validate_options(self) -> None:
        labels = self.options["candidate_labels"]
        if isinstance(labels, str):
            labels = [label.strip() for label in labels.split(",") if label.strip()]
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise OptionError(
                f"step '{self.config.output}': option candidate_labels must be a non-empty list of strings"
            )
        self.labels: list[str] = list(labels)
        template = self.options["hypothesis_template"]
        if not isinstance(template, str) or "{}" not in template:
            raise OptionError(f"step '{self.config.output}': option hypothesis_template must contain '{{}}'")
        if self.options["method"] not in {"auto", "nli", "similarity"}:
            raise OptionError(f"step '{self.config.output}': option method must be auto, nli or similarity")

    @override
    def output_type(self) -> pa.DataType:
        return LABELS_SCORES

    @override
    def refuse(self, text: str) -> str | None:
        return "an empty text cannot be classified (pipeline() refuses it too)" if not text else None

    def resolved_method(self) -> str:
        """``nli`` when the model has an entailment label (or the step says so), else ``similarity``."""
        if self.options["method"] != "auto":
            return str(self.options["method"])
        return "nli" if entailment_id(load_config(self.config)) >= 0 else "similarity"

    @override
    def load(self) -> None:
        self.method = self.resolved_method()
        self.hypotheses = [self.options["hypothesis_template"].format(label) for label in self.labels]
        if self.method == "nli":
            self.tokenizer = load_tokenizer(self.config)
            self.model, self.device = load_model(AutoModelForSequenceClassification, self.config)
            self.entailment = entailment_id(self.model.config)
            if self.entailment < 0:
                raise OptionError(f"model '{self.config.model}' has no 'entailment' label for method nli")
            return
        declared = sentence_transformers_defaults(self.config)
        self.encoder = SentenceEncoder(
            self.config,
            pooling=declared.get("pooling", "mean"),
            normalize=True,
            max_length=declared.get("max_length"),
        )
        self.label_vectors = self.encoder.encode(self.hypotheses)

    @override
    def annotate(self, texts: list[str]) -> pa.Array:
        scores = self._nli_scores(texts) if self.method == "nli" else self._similarity_scores(texts)
        order = np.argsort(-scores, axis=-1, kind="stable")
        labels = np.asarray(self.labels, dtype=object)[order]
        ranked = np.take_along_axis(scores, order, axis=-1).astype(np.float32)
        width = scores.shape[1]
        return pa.StructArray.from_arrays(
            [
                equal_lists(pa.array(labels.ravel(), pa.string()), width),
                equal_lists(pa.array(ranked.ravel(), pa.float32()), width),
            ],
            fields=list(LABELS_SCORES),
        )

    def _nli_scores(self, texts: list[str]) -> np.ndarray:
        count = len(self.labels)
        firsts = [text for text in texts for _ in range(count)]
        seconds = self.hypotheses * len(texts)
        try:
            encodings = self.tokenizer(firsts, seconds, truncation="only_first")
        except Exception:  # noqa: BLE001 - the pipeline retries untruncated when only_first cannot apply
            encodings = self.tokenizer(firsts, seconds, truncation=False)
        rows = forward_rows(
            self.tokenizer, encodings, lambda batch: self.model(**batch).logits, self.device, dtype=self.model.dtype
        )
        logits = torch.stack(rows).numpy().reshape(len(texts), count, -1)
        if self.options["multi_label"] or count == 1:
            contradiction = -1 if self.entailment == 0 else 0
            return _softmax(logits[..., [contradiction, self.entailment]])[..., 1]
        return _softmax(logits[..., self.entailment])

    def _similarity_scores(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts) @ self.label_vectors.T
