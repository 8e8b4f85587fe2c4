"""Encoded media in a column: raw bytes, or the ``struct<bytes, path>`` that ``datasets``' ``Image``/``Audio`` write.

Decoding itself lives with the operators that need it (``image_io``, ``audio_io``); this module only gets the
encoded bytes out of a cell and names what was wrong with them.
"""

from __future__ import annotations

from typing import Any

import fsspec


class MediaError(ValueError):
    """A row's image or audio cannot be used: empty, truncated, undecodable or degenerate."""


def media_bytes(value: Any) -> bytes:
    """The encoded bytes of a cell: the bytes themselves, or ``bytes`` (else the file at ``path``) of a struct."""
    if isinstance(value, dict):
        data = value.get("bytes")
        if data is None:
            path = value.get("path")
            if not path:
                raise MediaError("the struct holds neither bytes nor a path")
            try:
                with fsspec.open(path, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                raise MediaError(f"cannot read {path}: {exc}") from None
        value = data
    if not isinstance(value, bytes | bytearray | memoryview):
        raise MediaError(f"expected encoded bytes, got {type(value).__name__}")
    if len(value) == 0:
        raise MediaError("empty (0 bytes)")
    return bytes(value)
