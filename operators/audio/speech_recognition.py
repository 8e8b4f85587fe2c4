"""``automatic-speech-recognition``: a transcript per recording, as ``pipeline("automatic-speech-recognition")`` gives.

Two engines:

* ``transformers`` (default) runs Whisper (``WhisperForConditionalGeneration``) or a CTC model (``Wav2Vec2ForCTC``
  and its relatives) from a Hub id or a local directory. The CPU stage decodes each recording to mono float32 at
  the feature extractor's rate and cuts it into the pipeline's chunks (``chunk_length_s`` with ``stride_length_s``
  of overlap on each side, default a sixth of the chunk), running the feature extractor per chunk. The model
  stage batches the chunks of all rows together, and the pipeline's own post-processing merges them (Whisper:
  the tokenizer's ``_decode_asr``; CTC: the stride-trimmed argmax tokens, decoded once), so a row's output
  equals ``pipeline()``'s on the same waveform. Whisper recordings longer than its 30 s window are chunked at
  ``chunk_length_s=30`` when no ``chunk_length_s`` is given (``pipeline()`` would run Whisper's sequential
  long-form decoding instead); shorter ones are one chunk, exactly as the pipeline without chunking. CTC models
  chunk only when ``chunk_length_s`` is set.
* ``faster-whisper`` runs a CTranslate2 Whisper directory through ``lakelabel.operators.audio.faster_whisper_engine``;
  the CPU stage only decodes to 16 kHz mono, and the engine computes its own features and handles long audio.

Options (``pipeline()``'s names): ``engine``, ``return_timestamps`` (``False``; Whisper: ``True`` for segments or
``"word"``; CTC: ``"char"`` or ``"word"``), ``chunk_length_s``, ``stride_length_s``, ``max_new_tokens`` (default
128, always bounded), ``num_beams`` (default 1: greedy, as ``pipeline()`` with Whisper's generation config; the
``faster-whisper`` engine keeps ``transcribe()``'s own defaults, a beam of 5, for every option a step leaves out),
``language``
(default: detected per chunk by multilingual Whisper), ``task`` (``transcribe`` or ``translate``; Whisper only;
passed to the model only when set, so that a checkpoint's own prompt applies otherwise: ``transcribe`` for
OpenAI's) and ``compute_type`` (faster-whisper only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from typing_extensions import override

from lakelabel.operators.audio.audio_io import (
    length_batches,
    load_feature_extractor,
    pad_stack,
    pads_exactly,
)
from lakelabel.operators.audio.speech_chunks import (
    SpeechPreparer,
    align_to_samples,
    engine_class,
    is_number,
    model_kind,
    strides,
)
from lakelabel.operators.core.base import Operator, OptionError, Prepared, Preparer
from lakelabel.operators.core.loading import load_config, load_model, load_tokenizer, resolve_device

if TYPE_CHECKING:
    pass

TIMESTAMPED = pa.struct([("text", pa.string()), ("timestamp", pa.list_(pa.float64()))])
TRANSCRIPT = pa.struct([("text", pa.string()), ("chunks", pa.list_(TIMESTAMPED))])

ENGINES = ("transformers", "faster-whisper")
TASKS = ("transcribe", "translate")
WHISPER_BATCH = 16
"""Whisper chunks per ``generate`` call (each is a fixed 30 s of log-mel features)."""

_WHISPER_PROMPT = 4  # <|startoftranscript|> <|lang|> <|task|> <|notimestamps|>


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _language_token(language: str) -> str:
    """Whisper's token for a language name, code or token, as ``generate()`` looks it up."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE  # noqa: PLC0415

    language = language.lower()
    if language.startswith("<|"):
        return language
    return f"<|{TO_LANGUAGE_CODE.get(language, language)}|>"


class SpeechRecognition(Operator):
    """Transcribe each recording: ``struct<text, chunks: list<struct<text, timestamp: list<float64>>>>``.

    ``chunks`` is null unless ``return_timestamps`` is set; each ``timestamp`` is ``[start, end]`` in seconds,
    where ``end`` may be null (Whisper did not close its last segment), as ``pipeline()`` returns it.
    """

    task: ClassVar[str] = "automatic-speech-recognition"
    input_kind: ClassVar[str] = "audio"
    defaults: ClassVar[dict[str, Any]] = {
        "engine": "transformers",
        "return_timestamps": False,
        "chunk_length_s": None,
        "stride_length_s": None,
        "max_new_tokens": 128,
        "num_beams": 1,
        "language": None,
        "task": "transcribe",
        "compute_type": None,
    }

    def _refuse(self, option: str, why: str) -> OptionError:
        return OptionError(f"step '{self.config.output}' ({self.task}): option {option} {why}")

    @override
    def validate_options(self) -> None:
        options = self.options
        if options["engine"] not in ENGINES:
            raise self._refuse("engine", f"must be one of {', '.join(ENGINES)}, not {options['engine']!r}")
        timestamps = options["return_timestamps"]
        if not isinstance(timestamps, bool) and timestamps not in ("char", "word"):
            raise self._refuse("return_timestamps", f"must be false, true, 'char' or 'word', not {timestamps!r}")
        self._validate_chunking()
        for option in ("max_new_tokens", "num_beams"):
            if not _positive_int(options[option]):
                raise self._refuse(option, f"must be a positive integer, not {options[option]!r}")
        if options["language"] is not None and not isinstance(options["language"], str):
            raise self._refuse("language", "must be a language name or code, or null")
        if options["task"] not in TASKS:
            raise self._refuse("task", f"must be one of {', '.join(TASKS)}, not {options['task']!r}")
        if options["engine"] == "faster-whisper":
            if timestamps == "char":
                raise self._refuse("return_timestamps", "'char' is not available with engine faster-whisper")
            if options["stride_length_s"] is not None:
                raise self._refuse("stride_length_s", "is not available with engine faster-whisper")
        elif options["compute_type"] is not None:
            raise self._refuse("compute_type", "applies only to engine faster-whisper")

    def _validate_chunking(self) -> None:
        chunk, stride = self.options["chunk_length_s"], self.options["stride_length_s"]
        if chunk is not None and (not is_number(chunk) or chunk <= 0):
            raise self._refuse("chunk_length_s", f"must be a positive number of seconds or null, not {chunk!r}")
        if stride is None:
            return
        pair = isinstance(stride, list | tuple) and len(stride) == 2 and all(is_number(s) for s in stride)
        if not (is_number(stride) or pair) or min(strides(stride, 0.0)) < 0:
            raise self._refuse("stride_length_s", f"must be seconds >= 0, or [left, right] seconds, not {stride!r}")
        if chunk is not None and sum(strides(stride, chunk)) >= chunk:
            raise self._refuse("stride_length_s", "must leave room in chunk_length_s (left + right < chunk)")

    @override
    def output_type(self) -> pa.DataType:
        return TRANSCRIPT

    @override
    def preparer(self) -> Preparer | None:
        return SpeechPreparer(self)

    # -- model stage ----------------------------------------------------------------------------------------
    @override
    def load(self) -> None:
        if self.options["engine"] == "faster-whisper":
            self.engine = engine_class()(
                self.config.model,
                device=str(resolve_device(self.config.device)),
                compute_type=self.options["compute_type"],
                options=dict(self.config.options),  # only what the step sets: the rest are faster-whisper's defaults
            )
            return
        self.kind = model_kind(load_config(self.config), self.config.model)
        self.feature_extractor = load_feature_extractor(self.config)
        self.tokenizer = load_tokenizer(self.config)
        if self.kind == "whisper":
            from transformers import AutoModelForSpeechSeq2Seq  # noqa: PLC0415 - heavy

            self.model, self.device = load_model(AutoModelForSpeechSeq2Seq, self.config)
            self._check_whisper()
        else:
            from transformers import AutoModelForCTC  # noqa: PLC0415 - heavy

            self.model, self.device = load_model(AutoModelForCTC, self.config)
            self._check_ctc()

    def _timestamps(self) -> bool | str:
        """``return_timestamps``, or the model's generation config's (as the pipeline reads it)."""
        generation = getattr(self.model, "generation_config", None)
        return self.options["return_timestamps"] or getattr(generation, "return_timestamps", False) or False

    def _check_whisper(self) -> None:
        model_config, generation = self.model.config, self.model.generation_config
        timestamps = self._timestamps()
        if timestamps == "char":
            raise self._refuse("return_timestamps", "'char' is CTC-only; Whisper gives true (segments) or 'word'")
        if timestamps == "word" and getattr(generation, "alignment_heads", None) is None:
            raise self._refuse("return_timestamps", f"'word' needs alignment_heads in {self.config.model}'s config")
        limit = model_config.max_target_positions - _WHISPER_PROMPT
        if self.options["max_new_tokens"] > limit:
            raise self._refuse("max_new_tokens", f"must be at most {limit} for model '{self.config.model}'")
        multilingual = getattr(generation, "is_multilingual", True)
        if not multilingual and (self.options["language"] is not None or "task" in self.config.options):
            raise self._refuse("language/task", f"cannot be set for the English-only model '{self.config.model}'")
        self.generate_kwargs: dict[str, Any] = {
            "max_new_tokens": self.options["max_new_tokens"],
            "num_beams": self.options["num_beams"],
        }
        if self.tokenizer.pad_token_id is not None:
            self.generate_kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        # As the pipeline: passed to generate() only when set, so that a checkpoint's own prompt applies otherwise.
        if "task" in self.config.options:
            self.generate_kwargs["task"] = self.options["task"]
        if self.options["language"] is not None:
            self.generate_kwargs["language"] = self.options["language"]
            if _language_token(self.options["language"]) not in (getattr(generation, "lang_to_id", None) or {}):
                raise self._refuse("language", f"{self.options['language']!r} is not a language of this model")
        if timestamps:
            self.generate_kwargs["return_timestamps"] = True
        if timestamps == "word":
            self.generate_kwargs["return_token_timestamps"] = True
            self.generate_kwargs["return_segments"] = True
        self.time_precision = self.feature_extractor.chunk_length / model_config.max_source_positions

    def _check_ctc(self) -> None:
        timestamps = self.options["return_timestamps"]
        if timestamps is True:
            raise self._refuse("return_timestamps", "must be 'char' or 'word' for a CTC model")
        for option in ("language", "max_new_tokens", "num_beams", "task"):
            if option in self.config.options and self.config.options[option] != self.defaults[option]:
                raise self._refuse(option, f"does not apply to the CTC model '{self.config.model}'")
        self.align_to = align_to_samples(self.model.config, self.feature_extractor)
        self.pad = pads_exactly(self.model.config, self.feature_extractor) and hasattr(
            self.model, "_get_feat_extract_output_lengths"
        )

    @override
    def annotate(self, texts: list[Prepared]) -> pa.Array:
        if self.options["engine"] == "faster-whisper":
            rows = [self.engine.transcribe(item["waveform"]) for item in texts]
        elif self.kind == "whisper":
            rows = self._annotate_whisper(texts)
        else:
            rows = self._annotate_ctc(texts)
        return pa.array([_transcript(row) for row in rows], type=TRANSCRIPT)

    def _annotate_whisper(self, items: list[Prepared]) -> list[dict[str, Any]]:
        chunks = [(row, index) for row, item in enumerate(items) for index in range(item["inputs"].shape[0])]
        word = self.generate_kwargs.get("return_token_timestamps", False)
        outputs: dict[tuple[int, int], dict[str, Any]] = {}
        size = 1 if word else WHISPER_BATCH  # token timestamps are normalised over the batch's padded length
        dtype = self.model.dtype
        for start in range(0, len(chunks), size):
            batch = chunks[start : start + size]
            features = torch.from_numpy(np.stack([items[r]["inputs"][i] for r, i in batch]))
            mask = torch.from_numpy(np.stack([items[r]["attention_mask"][i] for r, i in batch]))
            with torch.inference_mode():
                generated = self.model.generate(
                    input_features=features.to(self.device, dtype=dtype),
                    attention_mask=mask.to(self.device),
                    **self.generate_kwargs,
                )
            for position, key in enumerate(batch):
                outputs[key] = _whisper_output(generated, position, word=word)
        rows = []
        sampling_rate = self.feature_extractor.sampling_rate
        for row, item in enumerate(items):
            model_outputs = []
            for index in range(item["inputs"].shape[0]):
                output = outputs[(row, index)]
                if "stride" in item:
                    output["stride"] = tuple(float(s) / sampling_rate for s in item["stride"][index])
                model_outputs.append(output)
            text, optional = self.tokenizer._decode_asr(
                model_outputs,
                return_timestamps=self._timestamps() or None,
                return_language=None,
                time_precision=self.time_precision,
            )
            rows.append({"text": text, **optional})
        return rows

    def _annotate_ctc(self, items: list[Prepared]) -> list[dict[str, Any]]:
        inputs: list[np.ndarray] = []
        keys: list[tuple[int, int]] = []
        for row, item in enumerate(items):
            offsets = np.concatenate([[0], np.cumsum(item["lengths"])])
            for index in range(len(item["lengths"])):
                inputs.append(item["inputs"][offsets[index] : offsets[index + 1]])
                keys.append((row, index))
        tokens: dict[tuple[int, int], np.ndarray] = {}
        padding_value = float(getattr(self.feature_extractor, "padding_value", 0.0))
        pad = self.pad and all(array.ndim == 1 for array in inputs)
        for batch in length_batches([array.shape[0] for array in inputs], pad=pad):
            stacked, mask = pad_stack([inputs[i] for i in batch], padding_value)
            with torch.inference_mode():
                logits = self.model(
                    **{
                        self.model.main_input_name: torch.from_numpy(stacked).to(self.device, dtype=self.model.dtype),
                        "attention_mask": torch.from_numpy(mask).to(self.device),
                    }
                ).logits
            predicted = logits.argmax(dim=-1).cpu().numpy()
            lengths = (
                self.model._get_feat_extract_output_lengths(torch.from_numpy(mask.sum(-1))).tolist()
                if pad
                else [predicted.shape[1]] * len(batch)
            )
            for position, index in enumerate(batch):
                tokens[keys[index]] = predicted[position, : int(lengths[position])]
        return [
            self._decode_ctc(item, [tokens[(row, i)] for i in range(len(item["lengths"]))])
            for row, item in enumerate(items)
        ]

    def _decode_ctc(self, item: Prepared, pieces: list[np.ndarray]) -> dict[str, Any]:
        """The pipeline's CTC post-processing: trim each chunk's strides, join, decode once."""
        from transformers.pipelines.automatic_speech_recognition import rescale_stride  # noqa: PLC0415

        if "stride" in item:
            trimmed = []
            for piece, stride in zip(pieces, item["stride"], strict=True):
                total, left, right = rescale_stride([tuple(int(s) for s in stride)], 1 / self.align_to)[0]
                trimmed.append(piece[left : total - right])
            pieces = trimmed
        ids = np.concatenate(pieces)
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        timestamps = self.options["return_timestamps"]
        if not timestamps:
            return {"text": text}
        offsets = self.tokenizer.decode(ids, skip_special_tokens=False, output_char_offsets=True)["char_offsets"]
        if timestamps == "word":
            offsets = self.tokenizer._get_word_offsets(offsets, self.tokenizer.replace_word_delimiter_char)
        rate = self.feature_extractor.sampling_rate
        chunks = [
            {
                "text": offset[timestamps],
                "timestamp": (
                    offset["start_offset"] * self.align_to / rate,
                    offset["end_offset"] * self.align_to / rate,
                ),
            }
            for offset in offsets
        ]
        return {"text": text, "chunks": chunks}


def _whisper_output(generated: Any, position: int, *, word: bool) -> dict[str, Any]:
    """One chunk's ``generate`` result as the pipeline's ``_forward`` hands it to ``_decode_asr``."""
    if word:
        if "segments" not in generated:
            timestamps = generated["token_timestamps"][position : position + 1]
        else:
            segments = generated["segments"][position]
            timestamps = torch.cat([segment["token_timestamps"] for segment in segments]).unsqueeze(0)
        return {"tokens": generated["sequences"][position : position + 1].cpu(), "token_timestamps": timestamps.cpu()}
    sequences = generated["sequences"] if isinstance(generated, dict) else generated
    return {"tokens": sequences[position : position + 1].cpu()}


def _transcript(row: dict[str, Any]) -> dict[str, Any]:
    """A pipeline-style result as a ``TRANSCRIPT`` value (tuples to lists, extra keys dropped)."""
    chunks = row.get("chunks")
    if chunks is not None:
        chunks = [
            {
                "text": chunk["text"],
                "timestamp": [None if t is None else float(t) for t in chunk["timestamp"]],
            }
            for chunk in chunks
        ]
    return {"text": row["text"], "chunks": chunks}
