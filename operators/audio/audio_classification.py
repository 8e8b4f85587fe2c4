"""``audio-classification``: ranked labels per recording, as ``pipeline("audio-classification")`` returns them.

The CPU stage decodes each recording to mono float32 at the feature extractor's rate and runs the feature
extractor on it, as the pipeline does per input. The model stage batches rows: inputs of one shape are stacked;
raw waveforms of different lengths are zero-padded with an attention mask only where that leaves the model's
output unchanged (Wav2Vec2-style models with ``feat_extract_norm="layer"``), otherwise only equal lengths share a
forward pass. Scores are the pipeline's post-processing of the logits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from typing_extensions import override

from lakelabel.operators.audio.audio_io import (
    MAX_AUDIO_SECONDS,
    length_batches,
    load_audio,
    load_feature_extractor,
    pad_stack,
    pads_exactly,
)
from lakelabel.operators.core.base import Operator, Prepared, Preparer
from lakelabel.operators.core.loading import load_model
from lakelabel.operators.core.ranking import LABEL_SCORE, Ranking, check_options


class AudioClassification(Operator):
    """Label each recording: ``list<struct<label: string, score: float32>>``, best first.

    Options (as the pipeline names them): ``top_k`` (default 5, capped at the number of labels; ``null`` for all)
    and ``function_to_apply`` (``softmax``, ``sigmoid`` or ``none``; default from the model's ``problem_type``).
    """

    task: ClassVar[str] = "audio-classification"
    input_kind: ClassVar[str] = "audio"
    defaults: ClassVar[dict[str, Any]] = {"top_k": 5, "function_to_apply": None, "max_audio_seconds": MAX_AUDIO_SECONDS}

    @override
    def validate_options(self) -> None:
        check_options(self.options, self.config.output, any_case=False)

    @override
    def output_type(self) -> pa.DataType:
        return pa.list_(LABEL_SCORE)

    @override
    def preparer(self) -> Preparer | None:
        return ClassificationPreparer(self)

    @override
    def load(self) -> None:
        from transformers import AutoModelForAudioClassification  # noqa: PLC0415 - heavy

        self.feature_extractor = load_feature_extractor(self.config)
        self.model, self.device = load_model(AutoModelForAudioClassification, self.config)
        model_config = self.model.config
        self.ranking = Ranking.for_model(model_config, self.options, one_label_sigmoid=False)
        self.main_input = self.feature_extractor.model_input_names[0]
        self.pad = pads_exactly(model_config, self.feature_extractor)
        self.padding_value = float(getattr(self.feature_extractor, "padding_value", 0.0))

    @override
    def annotate(self, texts: list[Prepared]) -> pa.Array:
        inputs = [item[self.main_input] for item in texts]
        pad = self.pad and all(array.ndim == 1 for array in inputs)
        scores: list[torch.Tensor] = [torch.empty(0)] * len(texts)
        for batch in length_batches([array.size for array in inputs], pad=pad):
            if pad:
                stacked, mask = pad_stack([inputs[i] for i in batch], self.padding_value)
                arrays = {self.main_input: stacked, "attention_mask": mask}
            else:
                arrays = {key: np.stack([texts[i][key] for i in batch]) for key in texts[batch[0]]}
            tensors = {
                key: torch.from_numpy(array).to(
                    self.device, dtype=self.model.dtype if array.dtype.kind == "f" else None
                )
                for key, array in arrays.items()
            }
            with torch.inference_mode():
                logits = self.model(**tensors).logits.float().cpu()
            for position, index in enumerate(batch):
                scores[index] = logits[position]
        return self.ranking.top(torch.stack(scores))


class ClassificationPreparer(Preparer):
    """Decodes a recording to the feature extractor's rate and runs the feature extractor on it (one row)."""

    @override
    def load(self) -> None:
        self.feature_extractor = load_feature_extractor(self.config)
        self.sampling_rate = int(self.feature_extractor.sampling_rate)

    @override
    def prepare(self, value: Any) -> Prepared:
        limit = self.operator.options.get("max_audio_seconds", MAX_AUDIO_SECONDS)
        waveform = load_audio(value, self.sampling_rate, max_seconds=limit)
        processed = self.feature_extractor(waveform, sampling_rate=self.sampling_rate, return_tensors="np")
        return {key: np.asarray(array)[0] for key, array in processed.items()}
