"""Tiny, seeded, offline text-to-speech models: a VITS (MMS-TTS layout) and a SpeechT5 with its HiFi-GAN vocoder.

VITS reads characters (``VitsTokenizer``, a ``vocab.json`` of letters, no phonemizer); SpeechT5 reads
SentencePiece pieces, so its builder trains a character-level SentencePiece model on a few sentences (offline,
one thread, deterministic). Weights are drawn under ``torch.manual_seed``; every directory is written with
``save_pretrained`` and loads through ``AutoModel*`` / ``AutoTokenizer`` and ``transformers.pipeline`` like a Hub
checkpoint. Both models are stochastic at inference (VITS draws its noise, SpeechT5's decoder prenet keeps its
dropout on), which is what the per-row seed is for.
"""

from __future__ import annotations

import json
import string
from typing import TYPE_CHECKING

import torch
from transformers import (
    SpeechT5Config,
    SpeechT5ForTextToSpeech,
    SpeechT5HifiGan,
    SpeechT5HifiGanConfig,
    SpeechT5Tokenizer,
    VitsConfig,
    VitsModel,
    VitsTokenizer,
)

from tests.tiny_models import TRAINING_CORPUS

if TYPE_CHECKING:
    from pathlib import Path

SAMPLING_RATE = 16_000
SPEAKER_EMBEDDING_DIM = 8
MEL_BINS = 20
# SpeechT5 stops where its stop probabilities pass 0.5; a random head stops at a step that does not depend on the
# text, or never (then only maxlenratio, 20 frames per token, ends it: slow). This head stops as soon as it may, so
# with the minlenratio option the audio's length follows the text's.
STOP_BIAS = -2.0
STOP_SCALE = 20.0
# Random vocoders are far off the range of audio: VITS's last layer saturates its tanh, HiFi-GAN's gives ~1e-6.
# These factors on the last convolution bring both to peaks of ~0.1-0.9, so 16-bit samples hold real detail.
VITS_OUTPUT_SCALE = 0.01
HIFIGAN_OUTPUT_SCALE = 3e4


def build_vits(path: Path, *, seed: int = 0) -> Path:
    """A tiny ``VitsModel`` with a character ``VitsTokenizer`` (blanks between characters, as MMS-TTS does)."""
    symbols = ["<pad>", "<unk>", " ", *string.ascii_lowercase, *".,!?'-"]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({symbol: i for i, symbol in enumerate(symbols)}))
    tokenizer = VitsTokenizer(str(path / "vocab.json"), phonemize=False, add_blank=True, normalize=True)
    torch.manual_seed(seed)
    config = VitsConfig(
        vocab_size=len(symbols),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=17,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        duration_predictor_filter_channels=16,
        duration_predictor_num_flows=2,
        prior_encoder_num_flows=2,
        prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=2,
        sampling_rate=SAMPLING_RATE,
        pad_token_id=0,
    )
    model = VitsModel(config).eval()
    with torch.no_grad():  # a random decoder saturates its tanh: scale its last layer into the audible range
        model.decoder.conv_post.weight.mul_(VITS_OUTPUT_SCALE)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _sentencepiece(path: Path) -> Path:
    import sentencepiece as spm

    model = path / "spm_char.model"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAINING_CORPUS),
        model_prefix=str(path / "spm_char"),
        model_type="char",
        vocab_size=60,
        character_coverage=1.0,
        num_threads=1,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        minloglevel=2,
    )
    return model


def build_speecht5(path: Path, *, seed: int = 0) -> tuple[Path, Path]:
    """A tiny ``SpeechT5ForTextToSpeech`` in ``path`` and its ``SpeechT5HifiGan`` vocoder in ``path / 'vocoder'``."""
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = SpeechT5Tokenizer(str(_sentencepiece(path)))
    torch.manual_seed(seed)
    config = SpeechT5Config(
        vocab_size=len(tokenizer),
        hidden_size=16,
        encoder_layers=1,
        encoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=32,
        num_mel_bins=MEL_BINS,
        speech_decoder_prenet_units=16,
        speech_decoder_postnet_units=16,
        speech_decoder_postnet_layers=2,
        speaker_embedding_dim=SPEAKER_EMBEDDING_DIM,
        reduction_factor=2,
        max_text_positions=256,
        max_speech_positions=1024,
        conv_dim=(16, 16),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=2,
    )
    model = SpeechT5ForTextToSpeech(config).eval()
    with torch.no_grad():
        model.speech_decoder_postnet.prob_out.weight.mul_(STOP_SCALE)
        model.speech_decoder_postnet.prob_out.bias.fill_(STOP_BIAS)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=MEL_BINS,
            sampling_rate=SAMPLING_RATE,
            upsample_initial_channel=16,
            upsample_rates=[4, 4],
            upsample_kernel_sizes=[8, 8],
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1, 3]],
        )
    ).eval()
    with torch.no_grad():
        vocoder.conv_post.weight.mul_(HIFIGAN_OUTPUT_SCALE)
    vocoder.save_pretrained(path / "vocoder")
    return path, path / "vocoder"


def speaker_embedding(seed: int) -> list[float]:
    """A seeded speaker embedding of the tiny SpeechT5's size."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(SPEAKER_EMBEDDING_DIM, generator=generator).tolist()
