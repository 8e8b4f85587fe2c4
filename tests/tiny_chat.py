"""A tiny, seeded, offline chat model for tests: a Qwen2-style decoder with a ChatML template written here.

The tokenizer is the byte-level BPE of ``tests.tiny_generation`` (every byte sequence encodes, so any JSON text can
be generated) with ChatML's special tokens; ``<|im_end|>`` ends a reply (the generation config's end-of-text
token) and ``<|endoftext|>`` pads. The model is a 2-layer ``Qwen2ForCausalLM`` built under ``torch.manual_seed``;
a few output rows are scaled so that its greedy replies depend on the prompt, vary in length and, under a JSON
grammar, close their strings well within a few dozen tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from tests.tiny_generation import build_tokenizer

if TYPE_CHECKING:
    from pathlib import Path

CHAT_WINDOW = 512
"""Context window (tokens) of the tiny chat model."""

CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""The ChatML template (Qwen's format): each message between ``<|im_start|>role`` and ``<|im_end|>``."""

_BOOSTED = {'"': 3.0, ",": 3.0, "}": 3.0, "]": 3.0, "<|im_end|>": 2.0}
_DIGITS = 0.2
"""Output rows of all-digit tokens scaled down: numbers end after a few digits."""
"""Output rows scaled up: a reply ends, and a JSON string, array or object closes, within a few dozen tokens."""


def build_chat(path: Path, *, seed: int = 0, chat_template: bool = True) -> Path:
    """Build the tiny chat model in ``path``; ``chat_template=False`` leaves the template out (a base model)."""
    tokenizer = build_tokenizer(
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        template=None,
        model_max_length=CHAT_WINDOW,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    if chat_template:
        tokenizer.chat_template = CHATML
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=CHAT_WINDOW,
        initializer_range=0.2,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        for token, scale in _BOOSTED.items():
            model.lm_head.weight[tokenizer.convert_tokens_to_ids(token)] *= scale
        for token, index in tokenizer.get_vocab().items():
            if token.isdigit():
                model.lm_head.weight[index] *= _DIGITS
    path.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
