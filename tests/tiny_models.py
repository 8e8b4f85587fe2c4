"""Tiny, seeded, offline Hugging Face models for tests.

Every builder learns a small BERT-style WordPiece tokenizer, constructs a tiny
``BertConfig`` model under ``torch.manual_seed(seed)`` and writes both with
``save_pretrained`` (``model.safetensors`` + ``tokenizer.json``), so the
directory loads through ``AutoModelFor*.from_pretrained`` / ``AutoTokenizer``
and ``transformers.pipeline`` exactly like a hub checkpoint, without network.
"""

from __future__ import annotations

import collections
import functools
import itertools
from typing import TYPE_CHECKING

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

if TYPE_CHECKING:
    from pathlib import Path

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
NER_LABELS: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
NLI_LABELS: tuple[str, ...] = ("contradiction", "neutral", "entailment")

VOCAB_SIZE = 500
# Weight init std, far above BERT's 0.02: at 0.02 a 2-layer random BERT's [CLS] vector barely depends on the
# input, so every text gets the same label and zero-shot scores tie to ~1e-7 (their order is then noise).
INITIALIZER_RANGE = 0.4
# Token-classifier head: sharpen the logits, and favour "O" by half a logit spread so that about half the
# tokens are "O" and the rest form PER/ORG/LOC groups.
_NER_HEAD_SCALE = 5.0
_NER_O_BIAS = 0.5

TRAINING_CORPUS: tuple[str, ...] = (
    "Alice Johnson moved from London to Paris in 2019 to work for the United Nations.",
    "Barack Obama was born in Honolulu, Hawaii, on August 4, 1961.",
    "Microsoft and Google announced a new partnership in Seattle last Tuesday.",
    "The Eiffel Tower in Paris attracts nearly 7 million visitors every year.",
    "Angela Merkel led Germany for 16 years before stepping down in 2021.",
    "Apple reported revenue of 394 billion dollars for the fiscal year.",
    "Maria Garcia teaches mathematics at the University of Toronto.",
    "The river Thames flows through Oxford and London before reaching the sea.",
    "I loved this movie, the acting was wonderful and the music was great!",
    "This product is terrible; it broke after two days and support never replied.",
    "The weather today is cloudy with a chance of rain in the afternoon.",
    "Amazon opened a warehouse near Berlin that employs 1,200 people.",
    "Dr. Kenji Watanabe presented his research at a conference in Tokyo.",
    "The European Central Bank raised interest rates by 0.25 percent.",
    "Sarah and Tom went hiking in the Rocky Mountains near Denver, Colorado.",
    "The football match between Madrid and Barcelona ended in a 2-2 draw.",
    "NASA plans to send astronauts back to the Moon before 2030.",
    "The service at the restaurant was slow, but the food was delicious.",
    "Please send the quarterly report to the finance team by Friday morning.",
    "Elon Musk said that Tesla will build a new factory in Mexico.",
    "The quick brown fox jumps over the lazy dog near the old farm.",
    "Our hotel in Rome had a beautiful view of the Colosseum at night.",
    "The World Health Organization published new guidelines on Monday.",
    "I am not sure whether the meeting is at 3 pm or 4 pm tomorrow.",
    "Priya Sharma founded a startup in Bangalore that now has 45 employees.",
    "The library in New York holds more than 50 million books and maps.",
    "He was disappointed by the ending, which felt rushed and confusing.",
    "Scientists at Stanford University discovered a new species of frog in Peru.",
    "The train from Amsterdam to Brussels takes about two hours.",
    "Customers praised the new phone for its battery life and bright screen.",
    "Mount Everest is the highest mountain on Earth at 8,849 metres.",
    "The committee will vote on the proposal during next week's session.",
    "Johann Sebastian Bach composed music in Leipzig for many years.",
    "Samsung and Sony compete fiercely in the television market.",
    "A storm knocked out power to 30,000 homes across northern Texas.",
    "She thinks the documentary is informative, balanced and surprisingly funny.",
    "The Red Cross delivered food and water to villages in Kenya.",
    "Delivery was late again, and the package arrived damaged and wet.",
    "Fresh bread, cheese and olives are sold at the Sunday market in Lyon.",
    "The company expects profits to grow by 12 percent in the coming quarter.",
)


@functools.cache
def _wordpiece_vocab(vocab_size: int) -> tuple[str, ...]:
    """Learn a WordPiece vocabulary on ``TRAINING_CORPUS`` deterministically.

    Same algorithm as ``tokenizers.trainers.WordPieceTrainer`` (BPE merges over
    ``##``-prefixed continuation pieces), but ties are broken lexicographically:
    the Rust trainer breaks them by hash-map order, so its vocabulary changes from
    one process to the next (huggingface/tokenizers#1794).
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: collections.Counter[str] = collections.Counter(
        word
        for sentence in TRAINING_CORPUS
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(sentence))
    )
    words = {word: [word[0], *(f"##{char}" for char in word[1:])] for word in sorted(counts)}
    vocab = list(SPECIAL_TOKENS) + sorted({piece for pieces in words.values() for piece in pieces})
    known = set(vocab)
    while len(vocab) < vocab_size:
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for word, pieces in words.items():
            for pair in itertools.pairwise(pieces):
                pairs[pair] += counts[word]
        if not pairs:
            break
        left, right = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merged = left + right.removeprefix("##")
        for pieces in words.values():
            i = 0
            while i < len(pieces) - 1:
                if pieces[i] == left and pieces[i + 1] == right:
                    pieces[i : i + 2] = [merged]
                i += 1
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
    return tuple(vocab)


def build_tokenizer(*, model_max_length: int = 32, vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """Build a small BERT-style WordPiece fast tokenizer learned on a fixed English corpus.

    Args:
        model_max_length: Window size the tokenizer reports (small so that long texts overflow).
        vocab_size: Target vocabulary size; small enough that many words split into ``##`` pieces.

    Returns:
        A fast tokenizer with ``[PAD]``/``[UNK]``/``[CLS]``/``[SEP]``/``[MASK]`` assigned.
    """
    vocab = {token: i for i, token in enumerate(_wordpiece_vocab(vocab_size))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _config(tokenizer: PreTrainedTokenizerFast, labels: tuple[str, ...] | None = None) -> BertConfig:
    """Tiny two-layer BERT config sized to ``tokenizer``, optionally with a label map."""
    kwargs: dict[str, object] = {}
    if labels is not None:
        kwargs["id2label"] = dict(enumerate(labels))
        kwargs["label2id"] = {label: i for i, label in enumerate(labels)}
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=INITIALIZER_RANGE,
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, path: Path) -> Path:
    """Write model (safetensors) and tokenizer into ``path`` and return it."""
    path.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(path)  # transformers 5 always writes model.safetensors
    tokenizer.save_pretrained(path)
    return path


def build_text_classifier(path: Path, *, num_labels: int = 3, seed: int = 0, model_max_length: int = 32) -> Path:
    """Build a tiny sentiment-style ``BertForSequenceClassification`` in ``path``.

    With ``num_labels == 3`` the labels are negative/neutral/positive; otherwise ``LABEL_<i>``.
    """
    tokenizer = build_tokenizer(model_max_length=model_max_length)
    labels = SENTIMENT_LABELS
    if num_labels != len(SENTIMENT_LABELS):
        labels = tuple(f"LABEL_{i}" for i in range(num_labels))
    torch.manual_seed(seed)
    model = BertForSequenceClassification(_config(tokenizer, labels))
    return _save(model, tokenizer, path)


def build_token_classifier(path: Path, *, seed: int = 0, model_max_length: int = 32) -> Path:
    """Build a tiny BIO-tagging ``BertForTokenClassification`` (PER/ORG/LOC) in ``path``.

    The classifier head is sharpened and its "O" bias raised so that argmax labels vary from
    token to token: ordinary sentences yield several entity groups, not all "O" nor all entities.
    """
    tokenizer = build_tokenizer(model_max_length=model_max_length)
    torch.manual_seed(seed)
    model = BertForTokenClassification(_config(tokenizer, NER_LABELS))
    with torch.no_grad():
        model.classifier.weight.mul_(_NER_HEAD_SCALE)
        model.classifier.bias.zero_()
        model.classifier.bias[NER_LABELS.index("O")] = _NER_O_BIAS * model.classifier.weight.norm(dim=1).mean()
    return _save(model, tokenizer, path)


def build_nli_classifier(path: Path, *, seed: int = 0, model_max_length: int = 32) -> Path:
    """Build a tiny NLI ``BertForSequenceClassification`` usable by zero-shot classification."""
    tokenizer = build_tokenizer(model_max_length=model_max_length)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(_config(tokenizer, NLI_LABELS))
    return _save(model, tokenizer, path)


def build_encoder(path: Path, *, seed: int = 0, model_max_length: int = 32) -> Path:
    """Build a tiny plain ``BertModel`` (no head) for embeddings / feature extraction."""
    tokenizer = build_tokenizer(model_max_length=model_max_length)
    torch.manual_seed(seed)
    model = BertModel(_config(tokenizer))
    return _save(model, tokenizer, path)
