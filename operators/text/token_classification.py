"""``token-classification`` (named entities): grouped entities with character offsets, as the pipeline gives.

A text longer than the model's window is split into overlapping windows (``stride`` tokens of overlap, the
pipeline's own ``stride`` behaviour) so that the whole text is covered; entities found twice in an overlap are
merged the way the pipeline merges them. The windows of a whole batch run through the model together, and the
entity grouping is the pipeline's own post-processing, so the output equals ``pipeline()``'s.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

import pyarrow as pa
import torch
from transformers import AutoModelForTokenClassification, pipeline
from transformers.pipelines.token_classification import AggregationStrategy
from typing_extensions import override

from lakelabel.operators.core.base import Operator, OptionError
from lakelabel.operators.core.loading import load_model, load_tokenizer
from lakelabel.operators.core.text_batching import SORT_WINDOW, forward_rows

ENTITY = pa.struct(
    [
        ("entity_group", pa.string()),
        ("score", pa.float32()),
        ("word", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
    ]
)
_STRATEGIES = ("simple", "first", "average", "max")
_UNBOUNDED = 1_000_000


class TokenClassification(Operator):
    """Named entities per text: ``list<struct<entity_group, score, word, start, end>>``.

    Options: ``aggregation_strategy`` (``simple`` — the seeds' ``grouped_entities=True`` — ``first``,
    ``average`` or ``max``), ``ignore_labels`` (default ``["O"]``) and ``stride`` (overlap between windows of a
    long text; default a quarter of the window).
    """

    task: ClassVar[str] = "token-classification"
    batch_size: ClassVar[int] = SORT_WINDOW
    defaults: ClassVar[dict[str, Any]] = {
        "aggregation_strategy": "simple",
        "ignore_labels": None,
        "stride": None,
    }

    @override
    def validate_options(self) -> None:
        strategy = str(self.options["aggregation_strategy"]).lower()
        if strategy not in _STRATEGIES:
            raise OptionError(
                f"step '{self.config.output}': option aggregation_strategy must be one of {', '.join(_STRATEGIES)}"
                " (per-token output without grouping cannot cover texts longer than the model's window)"
            )
        stride = self.options["stride"]
        if stride is not None and (not isinstance(stride, int) or stride < 0):
            raise OptionError(f"step '{self.config.output}': option stride must be a non-negative integer")

    @override
    def output_type(self) -> pa.DataType:
        return pa.list_(ENTITY)

    @override
    def load(self) -> None:
        self.tokenizer = load_tokenizer(self.config)
        if not self.tokenizer.is_fast:
            raise OptionError(f"model '{self.config.model}': token-classification needs a fast tokenizer")
        self.model, self.device = load_model(AutoModelForTokenClassification, self.config)
        window = self.tokenizer.model_max_length
        if not window or window >= _UNBOUNDED:
            window = int(getattr(self.model.config, "max_position_embeddings", 512))
        self.window = int(window)
        stride = self.options["stride"]
        self.stride = self.window // 4 if stride is None else stride
        if self.stride >= self.window - self.tokenizer.num_special_tokens_to_add():
            raise OptionError(f"step '{self.config.output}': option stride must be below the window size")
        self.pipeline = pipeline("token-classification", model=self.model, tokenizer=self.tokenizer, device=self.device)
        self.postprocess_params = {
            "aggregation_strategy": AggregationStrategy[str(self.options["aggregation_strategy"]).upper()],
            "ignore_labels": self.options["ignore_labels"],
        }

    @override
    def annotate(self, texts: list[str]) -> pa.Array:
        encodings = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.window,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        logits = forward_rows(
            self.tokenizer,
            encodings,
            lambda batch: self.model(**batch).logits,
            self.device,
            trim=True,
            dtype=self.model.dtype,
        )
        windows: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for index, text_index in enumerate(encodings["overflow_to_sample_mapping"]):
            windows[text_index].append(
                {
                    "logits": logits[index].unsqueeze(0),
                    "input_ids": torch.tensor([encodings["input_ids"][index]]),
                    "offset_mapping": torch.tensor([encodings["offset_mapping"][index]]),
                    "special_tokens_mask": torch.tensor([encodings["special_tokens_mask"][index]]),
                    "sentence": texts[text_index],
                }
            )
        entities = [self.pipeline.postprocess(windows[i], **self.postprocess_params) for i in range(len(texts))]
        return pa.array(
            [[{**entity, "score": float(entity["score"])} for entity in found] for found in entities],
            type=pa.list_(ENTITY),
        )
