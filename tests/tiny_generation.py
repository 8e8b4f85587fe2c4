"""Tiny, seeded, offline generative models for tests: BART, T5 and an NLLB-style M2M100 (encoder-decoder) and GPT-2.

BART, T5 and GPT-2 share a small byte-level BPE vocabulary whose merges are learned in Python with lexicographic
tie-breaking (``tokenizers``' own trainer breaks ties by hash-map order, so its vocabulary changes from one process
to the next), so every byte sequence — any script, emoji — encodes without unknown tokens. The NLLB-style model has
a character vocabulary and language codes. Models are built under ``torch.manual_seed(seed)``, with a few output
weights set so that greedy outputs depend on the input and are mostly not empty, then written with
``save_pretrained`` (``model.safetensors``, ``generation_config.json``, ``tokenizer.json``).
"""

from __future__ import annotations

import collections
import functools
import itertools
from typing import TYPE_CHECKING

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    GPT2Config,
    GPT2LMHeadModel,
    M2M100Config,
    M2M100ForConditionalGeneration,
    NllbTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from tests.tiny_models import TRAINING_CORPUS

if TYPE_CHECKING:
    from pathlib import Path

CORPUS: tuple[str, ...] = (
    *TRAINING_CORPUS,
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Die Konferenz in München beginnt am Montag um neun Uhr.",
    "La réunion à Genève a été reportée à la semaine prochaine.",
    "summarize: translate English to German: ",
)
MERGES = 300
WINDOW = 48
"""Encoder window (tokens) of the tiny encoder-decoder models: a paragraph overflows it."""
CAUSAL_WINDOW = 64
"""Context window (tokens) of the tiny GPT-2."""

_BART_EOS_BIAS = 1.0

T5_TASK_PARAMS = {
    "summarization": {"prefix": "summarize: ", "no_repeat_ngram_size": 2},
    "translation_en_to_de": {"prefix": "translate English to German: "},
    "translation_en_to_fr": {"prefix": "translate English to French: "},
}
"""T5-style ``task_specific_params``: the prefixes (and one generation setting) the 4.x pipelines applied."""

NLLB_LANGUAGES = ("eng_Latn", "fra_Latn", "deu_Latn")


@functools.cache
def _bpe(merges: int = MERGES) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Learn byte-level BPE merges on ``CORPUS`` deterministically: the base alphabet and the merges, in order."""
    pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    counts: collections.Counter[str] = collections.Counter(
        word for sentence in CORPUS for word, _ in pre_tokenizer.pre_tokenize_str(sentence)
    )
    alphabet = tuple(sorted(pre_tokenizers.ByteLevel.alphabet()))
    words = {word: list(word) for word in sorted(counts)}
    learned: list[tuple[str, str]] = []
    for _ in range(merges):
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for word, pieces in words.items():
            for pair in itertools.pairwise(pieces):
                pairs[pair] += counts[word]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        learned.append(best)
        for pieces in words.values():
            i = 0
            while i < len(pieces) - 1:
                if (pieces[i], pieces[i + 1]) == best:
                    pieces[i : i + 2] = ["".join(best)]
                i += 1
    return alphabet, tuple(learned)


def build_tokenizer(
    specials: tuple[str, ...], *, template: str | None, model_max_length: int, **tokens: str
) -> PreTrainedTokenizerFast:
    """A byte-level BPE fast tokenizer with ``specials`` first in the vocabulary.

    Args:
        specials: special tokens, given ids 0, 1, ...
        template: the single-sequence template (e.g. ``"<s> $A </s>"``), or None to add no special tokens.
        model_max_length: the window the tokenizer reports.
        **tokens: the special-token roles (``bos_token``, ``eos_token``, ``pad_token``, ...).

    Returns:
        The tokenizer.
    """
    alphabet, merges = _bpe()
    pieces = [*specials, *alphabet, *("".join(pair) for pair in merges)]
    vocab: dict[str, int] = {}
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab, list(merges)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    if template is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(token, vocab[token]) for token in specials if token in template]
        )
    tokenizer.add_special_tokens(list(specials))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=model_max_length, **tokens)


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_bart(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny ``BartForConditionalGeneration`` (learned positions: an input over the window would fail)."""
    tokenizer = build_tokenizer(
        ("<s>", "<pad>", "</s>", "<unk>", "<mask>"),
        template="<s> $A </s>",
        model_max_length=WINDOW,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        max_position_embeddings=WINDOW,
        init_std=0.2,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = BartForConditionalGeneration(config)
    with torch.no_grad():  # some outputs end early (padding after a finished row), most run to max_new_tokens
        model.final_logits_bias[0, tokenizer.eos_token_id] = _BART_EOS_BIAS
    return _save(model, tokenizer, path)


def build_t5(path: Path, *, seed: int = 1) -> Path:
    """Build a tiny ``T5ForConditionalGeneration`` whose config carries T5's ``task_specific_params`` prefixes.

    Seed 1 by default: at seed 0 the random model's greedy output is nearly the same for every text.
    """
    tokenizer = build_tokenizer(
        ("<pad>", "</s>", "<unk>"),
        template="$A </s>",
        model_max_length=WINDOW,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=16,
        d_ff=37,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        n_positions=WINDOW,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        task_specific_params=T5_TASK_PARAMS,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():  # a random T5 favours its pad token (the decoder start): every output would decode empty
        model.lm_head.weight[tokenizer.pad_token_id] = 0.0
    return _save(model, tokenizer, path)


def build_gpt2(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny ``GPT2LMHeadModel``; its tokenizer has no pad token and adds no special tokens, as GPT-2's."""
    tokenizer = build_tokenizer(
        ("<|endoftext|>",),
        template=None,
        model_max_length=CAUSAL_WINDOW,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=CAUSAL_WINDOW,
        n_embd=32,
        n_layer=2,
        n_head=2,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    return _save(model, tokenizer, path)


def build_nllb(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny NLLB-style multilingual translator: an ``NllbTokenizer`` and an ``M2M100`` model.

    The tokenizer (a character vocabulary with ``NLLB_LANGUAGES`` as language codes) writes the source language's
    code before the text, and the target language's code is forced as the first generated token. The output layer
    never picks a special token but the end of text, so outputs are not empty.
    """
    pieces = sorted({char for sentence in CORPUS for char in sentence.replace(" ", "\u2581")})
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    tokenizer = NllbTokenizer(
        vocab=vocab, merges=[], additional_special_tokens=list(NLLB_LANGUAGES), model_max_length=WINDOW
    )
    config = M2M100Config(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        max_position_embeddings=WINDOW,
        init_std=0.2,
        scale_embedding=False,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(config)
    never = [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id]
    with torch.no_grad():
        for token in [*never, *tokenizer.convert_tokens_to_ids(list(NLLB_LANGUAGES))]:
            model.lm_head.weight[token] = 0.0
    return _save(model, tokenizer, path)
