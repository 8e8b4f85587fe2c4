"""Loading models and tokenizers from a Hub id or a local directory, onto the right device, safely.

The same code path serves ``org/name`` Hub ids (fetched into the Hugging Face cache, honouring ``HF_HOME``,
``HF_TOKEN`` and ``HF_HUB_OFFLINE``) and local directories (as written by ``save_pretrained``). Secure defaults:
no ``trust_remote_code`` and safetensors weights only, unless the step's config says otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig

from lakelabel.operators.core.base import ModelLoadError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from lakelabel.operators.core.base import OperatorConfig

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(preference: str = "auto") -> torch.device:
    """``auto`` picks the first CUDA device when one is present, else the CPU."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def resolve_dtype(preference: str, device: torch.device) -> torch.dtype:
    """``auto`` is float16 on CUDA (half the memory, tensor cores) and float32 on the CPU."""
    if preference == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[preference]
    except KeyError:
        raise ValueError(f"dtype '{preference}' is not one of auto, {', '.join(_DTYPES)}") from None


def _common(config: OperatorConfig) -> dict[str, Any]:
    return {"revision": config.revision, "trust_remote_code": config.trust_remote_code}


def load_config(config: OperatorConfig) -> PretrainedConfig:
    """The model's ``config.json`` only: cheap, no weights."""
    try:
        return AutoConfig.from_pretrained(config.model, **_common(config))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model '{config.model}': cannot read its config: {exc}") from exc


def load_tokenizer(config: OperatorConfig) -> PreTrainedTokenizerBase:
    """The model's tokenizer (the fast one when the model ships it)."""
    try:
        return AutoTokenizer.from_pretrained(config.model, **_common(config))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model '{config.model}': cannot load its tokenizer: {exc}") from exc


def load_model(model_class: Any, config: OperatorConfig) -> tuple[PreTrainedModel, torch.device]:
    """Load weights with ``model_class.from_pretrained`` onto the configured device, in eval mode."""
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    try:
        model = model_class.from_pretrained(
            config.model, dtype=dtype, use_safetensors=config.use_safetensors, **_common(config)
        )
    except (OSError, ValueError) as exc:
        hint = "" if not config.use_safetensors else " (only safetensors weights are loaded by default)"
        raise ModelLoadError(f"model '{config.model}': cannot load weights{hint}: {exc}") from exc
    return model.to(device).eval(), device


def read_model_json(config: OperatorConfig, filename: str) -> dict[str, Any] | None:
    """Read an optional JSON file shipped beside the weights (e.g. sentence-transformers' ``modules.json``)."""
    local = Path(config.model).expanduser()
    if local.is_dir():
        path: Path | None = local / filename
    else:
        from transformers.utils import cached_file  # noqa: PLC0415 - only needed for Hub ids

        try:
            found = cached_file(
                config.model,
                filename,
                revision=config.revision,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )
        except OSError:
            found = None
        path = Path(found) if found else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
