"""``text-to-audio`` (alias ``text-to-speech``): each text spoken by a TTS model, written as encoded audio.

The output column has the layout ``datasets``' ``Audio`` feature writes, ``struct<bytes: binary, path: string>``
(``path`` null), holding a FLAC file (the default) or a WAV file of 16-bit samples at the model's sampling rate, so
``datasets``, soundfile or any audio tool reads the column with no custom code.

Each row runs as ``pipeline("text-to-audio")`` runs one text: the tokenizer on the whole text (the pipeline does
not split long texts; a text longer than the model's window is a row error, as the model refuses it), then

* a model that makes the waveform itself (VITS / MMS-TTS): its forward pass, as the pipeline calls it;
* a model that makes a spectrogram (SpeechT5): ``generate()`` with the speaker embedding, then the vocoder
  (option ``vocoder``; the pipeline's own default is ``microsoft/speecht5_hifigan``).

Both are stochastic (VITS draws noise, SpeechT5's decoder keeps its dropout on), so ``torch.manual_seed(seed)``
runs before every row: the same text gives the same audio in any batch and on a re-run, and equals the
pipeline's output after ``transformers.set_seed(seed)``. Rows run one at a time for that reason. Samples are
clipped to [-1, 1] before 16-bit encoding. An empty or whitespace-only text is a row error.
"""

from __future__ import annotations

import importlib.util
import io
import math
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import soundfile
import torch
from typing_extensions import override

from lakelabel.operators.core.base import ModelLoadError, Operator, OptionError
from lakelabel.operators.core.columns import column_values
from lakelabel.operators.core.loading import load_config, load_model, load_tokenizer

AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
"""What ``datasets``' ``Audio`` feature writes to Parquet."""

FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}
DEFAULT_VOCODER = "microsoft/speecht5_hifigan"
"""The vocoder ``pipeline("text-to-audio")`` loads for a spectrogram model when it is given none."""

_SPECTROGRAM_FLOATS = ("threshold", "minlenratio", "maxlenratio")


class TextToSpeech(Operator):
    """Speak each text: ``struct<bytes: binary, path: string>`` (encoded audio, ``datasets``' ``Audio`` layout).

    Options: ``format`` (``flac`` or ``wav``), ``seed`` (0; set before every row), and for spectrogram models
    (SpeechT5) ``vocoder`` (a Hub id or directory; default ``microsoft/speecht5_hifigan``, the pipeline's),
    ``speaker_embeddings`` (a list of floats used for every row) or ``speaker_embeddings_column`` (a column of
    ``list<float>``, one embedding per row), and ``threshold`` / ``minlenratio`` / ``maxlenratio`` (the stop
    settings of ``generate()``; null: its defaults 0.5 / 0.0 / 20.0).
    """

    task: ClassVar[str] = "text-to-audio"
    defaults: ClassVar[dict[str, Any]] = {
        "format": "flac",
        "seed": 0,
        "vocoder": None,
        "speaker_embeddings": None,
        "speaker_embeddings_column": None,
        "threshold": None,
        "minlenratio": None,
        "maxlenratio": None,
    }

    @override
    def validate_options(self) -> None:
        step = f"step '{self.config.output}'"
        options = self.options
        if options["format"] not in FORMATS:
            raise OptionError(f"{step}: option format must be one of {', '.join(FORMATS)}")
        if not isinstance(options["seed"], int) or isinstance(options["seed"], bool):
            raise OptionError(f"{step}: option seed must be an integer")
        fixed, column = options["speaker_embeddings"], options["speaker_embeddings_column"]
        if fixed is not None and column is not None:
            raise OptionError(f"{step}: give at most one of speaker_embeddings and speaker_embeddings_column")
        if fixed is not None and (not isinstance(fixed, list) or not fixed or not all(_is_number(x) for x in fixed)):
            raise OptionError(f"{step}: option speaker_embeddings must be a non-empty list of numbers")
        if column is not None and (not isinstance(column, str) or not column):
            raise OptionError(f"{step}: option speaker_embeddings_column must be a column name")
        if options["vocoder"] is not None and (not isinstance(options["vocoder"], str) or not options["vocoder"]):
            raise OptionError(f"{step}: option vocoder must be a Hub id or a directory")
        for name in _SPECTROGRAM_FLOATS:
            value = options[name]
            if value is not None and (not _is_number(value) or value < 0):
                raise OptionError(f"{step}: option {name} must be a non-negative number or null")

    @override
    def output_type(self) -> pa.DataType:
        return AUDIO

    @override
    def columns(self) -> tuple[str, ...]:
        column = self.options["speaker_embeddings_column"]
        return (self.config.input,) if column is None else (self.config.input, column)

    @override
    def row_values(self, batch: pa.Table) -> list[Any]:
        texts = column_values(batch, self.config.input)
        column = self.options["speaker_embeddings_column"]
        if column is None:
            return [(text, self.options["speaker_embeddings"]) for text in texts]
        return list(zip(texts, column_values(batch, column), strict=True))

    @override
    def check(self, value: tuple[Any, Any]) -> str | None:
        text, embedding = value
        reason = super().check(text)
        if reason is None and not text.strip():
            reason = f"input column '{self.config.input}' is empty: there is no text to speak"
        column = self.options["speaker_embeddings_column"]
        if reason is None and column is not None and not embedding:
            reason = f"speaker embeddings column '{column}' is null or empty"
        return reason

    @override
    def load(self) -> None:
        from transformers import (  # noqa: PLC0415 - heavy
            AutoModelForTextToSpectrogram,
            AutoModelForTextToWaveform,
            SpeechT5HifiGan,
        )
        from transformers.models.auto.modeling_auto import (  # noqa: PLC0415
            MODEL_FOR_TEXT_TO_SPECTROGRAM_MAPPING_NAMES,
            MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES,
        )

        model_type = load_config(self.config).model_type
        self.spectrogram = model_type in MODEL_FOR_TEXT_TO_SPECTROGRAM_MAPPING_NAMES
        if self.spectrogram:
            model_class: Any = AutoModelForTextToSpectrogram
        elif model_type in MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES:
            model_class = AutoModelForTextToWaveform
        else:
            raise ModelLoadError(f"model '{self.config.model}' ('{model_type}') is not a text-to-speech model")
        if model_type == "speecht5" and importlib.util.find_spec("sentencepiece") is None:
            raise ModelLoadError(
                f"model '{self.config.model}': SpeechT5's tokenizer needs sentencepiece: pip install 'lakelabel[tts]'"
            )
        self.tokenizer = load_tokenizer(self.config)
        self.model, self.device = load_model(model_class, self.config)
        if self.spectrogram:
            self._load_spectrogram_parts(SpeechT5HifiGan)
            self.sampling_rate = int(self.vocoder.config.sampling_rate)
        else:
            if self.model.can_generate():
                raise ModelLoadError(
                    f"model '{self.config.model}' ('{model_type}') generates audio tokens; text-to-audio runs"
                    " models that make the waveform in one forward pass (VITS / MMS-TTS) or a spectrogram (SpeechT5)"
                )
            self.sampling_rate = _sampling_rate(self.model)

    def _load_spectrogram_parts(self, vocoder_class: Any) -> None:
        step = f"step '{self.config.output}'"
        vocoder = replace(self.config, model=self.options["vocoder"] or DEFAULT_VOCODER, revision=None)
        try:
            self.vocoder, _ = load_model(vocoder_class, vocoder)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{step}: option vocoder: {exc}") from exc
        self.embedding_size = getattr(self.model.config, "speaker_embedding_dim", None)
        fixed = self.options["speaker_embeddings"]
        if fixed is None and self.options["speaker_embeddings_column"] is None:
            raise OptionError(
                f"{step}: model '{self.config.model}' speaks with a speaker embedding: set speaker_embeddings"
                " (a list of numbers) or speaker_embeddings_column"
            )
        if fixed is not None and self.embedding_size is not None and len(fixed) != self.embedding_size:
            raise OptionError(
                f"{step}: option speaker_embeddings has {len(fixed)} values; model '{self.config.model}' takes"
                f" {self.embedding_size}"
            )
        self.generate_kwargs = {
            name: float(self.options[name]) for name in _SPECTROGRAM_FLOATS if self.options[name] is not None
        }

    @override
    def annotate(self, texts: list[tuple[str, list[float] | None]]) -> pa.Array:
        encoded = [self._encode(self._speak(text, embedding)) for text, embedding in texts]
        return pa.array([{"bytes": data, "path": None} for data in encoded], AUDIO)

    def _speak(self, text: str, embedding: list[float] | None) -> np.ndarray:
        inputs = {key: value.to(self.device) for key, value in self.tokenizer(text, return_tensors="pt").items()}
        torch.manual_seed(self.options["seed"])
        with torch.inference_mode():
            if self.spectrogram:
                if self.embedding_size is not None and len(embedding) != self.embedding_size:
                    raise ValueError(
                        f"the speaker embedding has {len(embedding)} values; the model takes {self.embedding_size}"
                    )
                speaker = torch.tensor([embedding], dtype=self.model.dtype, device=self.device)
                spectrogram = self.model.generate(**inputs, speaker_embeddings=speaker, **self.generate_kwargs)
                waveform = self.vocoder(spectrogram)
            else:
                waveform = self.model(**inputs)[0]
        return waveform.to(device="cpu", dtype=torch.float).numpy().squeeze()

    def _encode(self, waveform: np.ndarray) -> bytes:
        container, subtype = FORMATS[self.options["format"]]
        buffer = io.BytesIO()
        soundfile.write(buffer, np.clip(waveform, -1.0, 1.0), self.sampling_rate, format=container, subtype=subtype)
        return buffer.getvalue()


def _sampling_rate(model: Any) -> int:
    """The rate the pipeline reads: ``sampling_rate`` (or ``sample_rate``) of the config or generation config."""
    for source in (getattr(model, "generation_config", None), model.config):
        for name in ("sampling_rate", "sample_rate"):
            value = getattr(source, name, None)
            if isinstance(value, int) and value > 0:
                return value
    raise ModelLoadError(f"model '{model.name_or_path}': its config names no sampling rate")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
