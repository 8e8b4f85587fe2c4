"""Tiny, seeded, offline audio models for tests: a Whisper, a Wav2Vec2 CTC model and a Wav2Vec2 classifier.

Each builder writes its model (``model.safetensors``), tokenizer and feature extractor together with
``save_pretrained`` so that the directory loads through ``AutoModel*`` / ``AutoProcessor`` and
``transformers.pipeline`` exactly like a Hub checkpoint, without network. Everything is deterministic: the
byte-level BPE merges are learned by a small exact algorithm (ties broken lexicographically) and the weights are
drawn under ``torch.manual_seed``.
"""

from __future__ import annotations

import collections
import functools
import io
import itertools
import json
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import torch
from tokenizers import pre_tokenizers
from transformers import (
    GenerationConfig,
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2ForSequenceClassification,
    Wav2Vec2Processor,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)
from transformers.models.whisper.tokenization_whisper import LANGUAGES

if TYPE_CHECKING:
    from pathlib import Path

SAMPLING_RATE = 16_000
CLASS_LABELS: tuple[str, ...] = ("yes", "no", "up", "down", "silence")

CORPUS: tuple[str, ...] = (
    "He hoped there would be stew for dinner, turnips and carrots and bruised potatoes.",
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
)

# Weight init std far above Whisper's 0.02 and Wav2Vec2's 0.02: at 0.02 a random two-layer model gives the same
# tokens whatever the audio, so a transcript would check nothing.
WHISPER_INIT_STD = 0.3
WAV2VEC2_INIT_RANGE = 0.5


@functools.cache
def _byte_level_bpe(num_merges: int) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """Learn byte-level BPE merges on ``CORPUS`` exactly (most frequent pair first, ties lexicographic)."""
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    counts: collections.Counter[str] = collections.Counter(
        word for line in CORPUS for word, _ in pre.pre_tokenize_str(line)
    )
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=lambda char: (len(char), char))
    vocab = {char: i for i, char in enumerate(alphabet)}
    words = {word: list(word) for word in sorted(counts)}
    merges: list[tuple[str, str]] = []
    while len(merges) < num_merges:
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for word, pieces in words.items():
            for pair in itertools.pairwise(pieces):
                pairs[pair] += counts[word]
        if not pairs:
            break
        left, right = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append((left, right))
        merged = left + right
        vocab.setdefault(merged, len(vocab))
        for pieces in words.values():
            i = 0
            while i < len(pieces) - 1:
                if pieces[i] == left and pieces[i + 1] == right:
                    pieces[i : i + 2] = [merged]
                i += 1
    return vocab, tuple(merges)


def build_whisper_tokenizer(*, num_merges: int = 200) -> WhisperTokenizer:
    """A Whisper tokenizer with Whisper's special-token layout over a small byte-level BPE vocabulary.

    Token order follows Whisper's: BPE tokens, ``<|endoftext|>``, ``<|startoftranscript|>``, one token per
    language (in ``LANGUAGES`` order), the task tokens, ``<|notimestamps|>`` and 1501 timestamp tokens.
    """
    vocab, merges = _byte_level_bpe(num_merges)
    tokenizer = WhisperTokenizer(vocab=dict(vocab), merges=list(merges))
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in LANGUAGES),
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.set_prefix_tokens()
    expected = len(vocab)
    for token in specials:
        assert tokenizer.convert_tokens_to_ids(token) == expected, (token, expected)
        expected += 1
    return tokenizer


def build_whisper(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny multilingual ``WhisperForConditionalGeneration`` with its processor in ``path``."""
    tokenizer = build_whisper_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    eot, sot, space = ids("<|endoftext|>"), ids("<|startoftranscript|>"), ids("Ġ")
    # Suppress the byte tokens of control and non-ASCII bytes, so that transcripts are printable text.
    printable = {chr(code) for code in range(33, 127)} | {"Ġ"}
    suppress = sorted(ids(char) for char in pre_tokenizers.ByteLevel.alphabet() if char not in printable)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        decoder_layers=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=448,
        init_std=WHISPER_INIT_STD,
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        begin_suppress_tokens=[space, eot],
        suppress_tokens=suppress,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=448,
        begin_suppress_tokens=[space, eot],
        suppress_tokens=suppress,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids(f"<|{code}|>") for code in LANGUAGES},
        task_to_id={"translate": ids("<|translate|>"), "transcribe": ids("<|transcribe|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
        alignment_heads=[[1, 0], [1, 1]],
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    WhisperProcessor(WhisperFeatureExtractor(), tokenizer).save_pretrained(path)
    return path


def _wav2vec2_config(**kwargs: object) -> Wav2Vec2Config:
    """A tiny Wav2Vec2 (three conv layers, 320 samples per frame as the real ones, two transformer layers)."""
    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16, 16),
        conv_stride=(10, 8, 4),
        conv_kernel=(10, 8, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        initializer_range=WAV2VEC2_INIT_RANGE,
        mask_time_prob=0.0,
        **kwargs,
    )


def build_ctc(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny character-level ``Wav2Vec2ForCTC`` (layer-norm feature encoder, attention mask) in ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    letters = [*"abcdefghijklmnopqrstuvwxyz'"]
    vocab = {token: i for i, token in enumerate(["<pad>", "<s>", "</s>", "<unk>", "|", *letters])}
    vocab_file = path / "vocab.json"
    vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), word_delimiter_token="|")
    features = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLING_RATE, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    config = _wav2vec2_config(
        vocab_size=len(vocab),
        pad_token_id=vocab["<pad>"],
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        ctc_loss_reduction="mean",
    )
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(config).eval()
    model.save_pretrained(path)
    Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(path)
    return path


def build_audio_classifier(path: Path, *, seed: int = 0, group_norm: bool = True) -> Path:
    """Build a tiny keyword-spotting ``Wav2Vec2ForSequenceClassification`` in ``path``.

    With ``group_norm`` (as ``wav2vec2-base`` checkpoints) the feature extractor returns no attention mask and
    padding would change the result; without it (as ``wav2vec2-large-lv60``) padded batches are exact.
    """
    labels = CLASS_LABELS
    config = _wav2vec2_config(
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        classifier_proj_size=16,
        feat_extract_norm="group" if group_norm else "layer",
        do_stable_layer_norm=not group_norm,
    )
    torch.manual_seed(seed)
    model = Wav2Vec2ForSequenceClassification(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLING_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=not group_norm,
    ).save_pretrained(path)
    return path


def signal(seconds: float, *, seed: int, sampling_rate: int = SAMPLING_RATE, channels: int = 1) -> np.ndarray:
    """A seeded test signal: a few tones with a slow envelope plus noise; ``(samples,)`` or ``(samples, channels)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sampling_rate)) / sampling_rate
    columns = []
    for _ in range(channels):
        tones = sum(
            rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(100, 3000) * t + rng.uniform(0, 6))
            for _ in range(3)
        )
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0) * t)
        columns.append(tones * envelope + rng.normal(0, 0.05, t.shape))
    stacked = np.stack(columns, axis=1).astype(np.float32)
    return stacked[:, 0] if channels == 1 else stacked


def encode(waveform: np.ndarray, sampling_rate: int, fmt: str, subtype: str | None = None) -> bytes:
    """Encode ``waveform`` with soundfile (``WAV``, ``FLAC``, ``OGG``, ``MP3``)."""
    buffer = io.BytesIO()
    sf.write(buffer, waveform, sampling_rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def clips() -> dict[str, bytes]:
    """Encoded test recordings: several formats and lengths, one longer than Whisper's 30 s, one 44.1 kHz stereo."""
    return {
        "wav_3s": encode(signal(3.0, seed=1), SAMPLING_RATE, "WAV", "PCM_16"),
        "flac_7s": encode(signal(7.5, seed=2), SAMPLING_RATE, "FLAC"),
        "ogg_1s": encode(signal(1.0, seed=4), SAMPLING_RATE, "OGG", "VORBIS"),
        "mp3_2s": encode(signal(2.0, seed=5), SAMPLING_RATE, "MP3"),
        "stereo_44k": encode(signal(2.5, seed=6, sampling_rate=44_100, channels=2), 44_100, "WAV", "FLOAT"),
        "long_35s": encode(signal(35.0, seed=3), SAMPLING_RATE, "FLAC"),
    }
