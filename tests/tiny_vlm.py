"""Tiny, seeded, offline vision-language chat models for ``image-text-to-text``: LLaVA and Idefics3.

* LLaVA: a CLIP vision tower and a Llama decoder, with ``LlavaProcessor`` (a Pillow-backend CLIP image processor:
  every image is resized and cropped to one size, one ``<image>`` token expands to its patches).
* Idefics3: a SigLIP-style vision tower whose patches are pixel-shuffled into a few tokens, and a Llama decoder,
  with ``Idefics3Processor`` (Pillow backend; image splitting off, so each image is one resized frame with a pixel
  mask). Qwen2-VL's processor needs a video processor, which needs torchvision, so it is not built here.

Both use ``tiny_generation``'s byte-level BPE vocabulary with the model's special tokens, and a small chat
template; weights are drawn under ``torch.manual_seed`` with a large init range so that replies depend on the
image and the prompt. Directories are written with ``save_pretrained`` and load through ``AutoProcessor`` /
``AutoModelForImageTextToText`` and ``transformers.pipeline`` like Hub checkpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import (
    CLIPImageProcessorPil,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from tests import tiny_generation

if TYPE_CHECKING:
    from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ image_token }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
INIT_RANGE = 0.3
IMAGE_SIZE = 16
WINDOW = 512


def _tokenizer(image_tokens: tuple[str, ...]) -> object:
    return tiny_generation.build_tokenizer(
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>", *image_tokens),
        template=None,
        model_max_length=WINDOW,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def _text(tokenizer: object) -> dict[str, object]:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": WINDOW,
        "initializer_range": INIT_RANGE,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|im_start|>"),
    }


def build_llava(path: Path, *, seed: int = 0) -> Path:
    """A tiny ``LlavaForConditionalGeneration`` with its ``LlavaProcessor`` and chat template."""
    tokenizer = _tokenizer(("<image>",))
    vision = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": 4,
        "projection_dim": 16,
        "initializer_range": INIT_RANGE,
    }
    config = LlavaConfig(
        vision_config={"model_type": "clip_vision_model", **vision},
        text_config={"model_type": "llama", **_text(tokenizer), "head_dim": 16},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    size = {"shortest_edge": IMAGE_SIZE}
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size=size, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
        patch_size=4,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE.replace("{{ image_token }}", "<image>"),
    )
    processor.save_pretrained(path)
    return path


def build_idefics3(path: Path, *, seed: int = 0) -> Path:
    """A tiny ``Idefics3ForConditionalGeneration`` (SigLIP-style vision, pixel shuffle, Llama) and its processor."""
    tokenizer = _tokenizer(("<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"))
    vision = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": 4,
        "initializer_range": INIT_RANGE,
    }
    config = Idefics3Config(
        vision_config=vision,
        text_config={"model_type": "llama", **_text(tokenizer), "head_dim": 16},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=2,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": IMAGE_SIZE}, max_image_size={"longest_edge": IMAGE_SIZE}
    )
    tokens_per_image = (IMAGE_SIZE // 4) ** 2 // 2**2
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=tokens_per_image,
        chat_template=CHAT_TEMPLATE.replace("{{ image_token }}", "<image>"),
    )
    processor.save_pretrained(path)
    return path
