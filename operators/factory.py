"""One operator from keyword arguments: what ``lakelabel.operator`` and ``lakelabel.annotate`` build."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakelabel.operators.core.base import OperatorConfig
from lakelabel.operators.registry import operator_class

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lakelabel.operators.core.base import Operator

__all__ = ["operator"]


def operator(
    task: str,
    *,
    model: str,
    input: str,
    output: str,
    options: Mapping[str, Any] | None = None,
    dtype: str | None = None,
    device: str = "auto",
    revision: str | None = None,
    trust_remote_code: bool = False,
    use_safetensors: bool = True,
) -> Operator:
    """A configured operator for ``task`` that annotates a ``pyarrow.Table`` when called; loads no model yet.

    ``task`` is a built-in task name (or alias), a name an installed package registers, or ``module:Class``.
    Options are checked now (``OptionError`` names the option); the model loads on the first call, or on ``setup()``::

        op = lakelabel.operator("text-classification", model="./my-model", input="text", output="sentiment")
        annotated = op(pa.table({"text": ["great!", None]}))  # adds `sentiment` and `lakelabel_errors`
    """
    config = OperatorConfig(
        model=model,
        input=input,
        output=output,
        options=dict(options or {}),
        device=device,
        dtype=dtype or "auto",
        revision=revision,
        trust_remote_code=trust_remote_code,
        use_safetensors=use_safetensors,
    )
    return operator_class(task)(config)
