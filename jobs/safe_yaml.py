"""Loading YAML safely: the safe loader (no arbitrary objects), and no alias bombs.

An alias (``*a``) repeats the node its anchor names; nested aliases ("billion laughs") make a few lines expand to
billions of values. The document is composed first (aliases stay shared nodes, so this is cheap) and its expanded
size counted with memoisation; a document above ``MAX_NODES`` values is refused before it is constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_NODES = 100_000
"""Values a job file may expand to; real job files hold a few hundred."""


class YamlBombError(ValueError):
    """The document's aliases expand it beyond ``MAX_NODES`` values."""


def _expanded(node: yaml.Node, sizes: dict[int, int], active: set[int]) -> int:
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:  # a recursive alias: infinitely large
        raise YamlBombError("YAML alias refers to itself (a recursive document); refused")
    active.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded(item, sizes, active) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded(k, sizes, active) + _expanded(v, sizes, active) for k, v in node.value)
    active.discard(key)
    sizes[key] = size
    if size > MAX_NODES:
        raise YamlBombError(f"YAML aliases expand the document to more than {MAX_NODES} values; refused")
    return size


def safe_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing documents whose aliases expand beyond ``MAX_NODES`` values."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is None:
        return None
    _expanded(node, {}, set())
    return yaml.safe_load(text)
