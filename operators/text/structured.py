"""Typed structured outputs: a JSON Schema's Arrow type, the schema the grammar runs, and each reply's value.

A ``response_format`` schema is mapped to one Arrow type when the operator is constructed, before any model loads,
and a schema the mapping cannot type is refused there, naming the field::

    >>> arrow_type({"type": "object", "properties": {"label": {"enum": ["pos", "neg"]}, "n": {"type": "integer"}}})
    StructType(struct<label: string, n: int64>)

| JSON Schema | Arrow |
|---|---|
| ``object`` with ``properties`` | ``struct`` with those fields in that order (a field left out of a reply is null) |
| ``string`` (any ``format``, ``pattern``, length) | ``string`` |
| ``enum`` / ``const`` of strings | ``string`` (of integers: ``int64``; of booleans: ``bool``) |
| ``integer`` | ``int64`` (the grammar keeps values in int64's range) |
| ``number`` | ``double`` |
| ``boolean`` | ``bool`` |
| ``array`` with ``items`` | ``list<item>`` |
| ``"type": [T, "null"]`` | T (every Arrow field is nullable) |
| ``$ref`` to ``#/$defs/...`` or ``#/definitions/...`` | the referenced schema, inlined (not recursive) |

Refused: ``anyOf``/``oneOf``/``allOf``/``not``/``if``, objects without ``properties`` or with
``additionalProperties``/``patternProperties``, tuple arrays (``prefixItems``, a list of ``items``), enums mixing
types, ``null`` alone, and recursive ``$ref``. A reply is parsed as JSON and validated against the schema the job
gave (``jsonschema``); a reply that does not parse or validate is the row's error, never a value.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from lakelabel.operators.core.base import OptionError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_SCALARS = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}
_REFUSED = ("anyOf", "oneOf", "allOf", "not", "if", "patternProperties", "prefixItems", "dependentSchemas")


class SchemaError(OptionError):
    """A ``response_format`` schema that cannot be typed as one Arrow type; the message names the field."""


def arrow_type(schema: Mapping[str, Any]) -> pa.DataType:
    """The Arrow type of values valid against ``schema`` (``$ref`` resolved); raise ``SchemaError`` naming the field."""
    return _type(inline_refs(schema), "response_format")


def inline_refs(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with every local ``$ref`` replaced by its target; ``SchemaError`` on a recursive or unknown one."""
    definitions = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def resolve(node: Any, where: str, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, f"{where}[{i}]", seen) for i, item in enumerate(node)]
        if not isinstance(node, Mapping):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None
            prefix = ref.rsplit("/", 1)[0] if isinstance(ref, str) else None
            if prefix not in {"#/$defs", "#/definitions"} or name not in definitions:
                raise SchemaError(f"{where}: $ref {ref!r} is not a '#/$defs/NAME' of this schema")
            if ref in seen:
                raise SchemaError(f"{where}: $ref {ref!r} is recursive; a recursive schema has no fixed Arrow type")
            target = {**definitions[name], **{k: v for k, v in node.items() if k != "$ref"}}
            return resolve(target, where, (*seen, ref))
        return {
            key: resolve(value, f"{where}.{key}" if key not in {"properties", "items"} else where, seen)
            if key not in {"$defs", "definitions", "enum", "const", "required", "default", "examples"}
            else value
            for key, value in node.items()
            if key not in {"$defs", "definitions"}
        }

    return resolve(schema, "response_format", ())


def _type(schema: Any, where: str) -> pa.DataType:
    if not isinstance(schema, Mapping):
        raise SchemaError(f"{where}: a schema must be a mapping, not {type(schema).__name__}")
    for key in _REFUSED:
        if key in schema:
            raise SchemaError(f"{where}: '{key}' has no single Arrow type; give one type per field")
    if "enum" in schema or "const" in schema:
        return _enum_type(schema, where)
    kind = _kind(schema, where)
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, Mapping):
            raise SchemaError(f"{where}: an array needs 'items' with one schema (tuple arrays have no list type)")
        return pa.list_(_type(items, f"{where}[]"))
    if kind == "object":
        return _struct(schema, where)
    raise SchemaError(f"{where}: type {kind!r} has no Arrow type (use string, integer, number, boolean, array, object)")


def _kind(schema: Mapping[str, Any], where: str) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) != 1:
            raise SchemaError(f"{where}: type {kind} has no single Arrow type; give one type (null is allowed)")
        kind = kinds[0]
    if kind is None and "properties" in schema:
        kind = "object"
    if not isinstance(kind, str):
        raise SchemaError(f"{where}: needs a 'type' (or 'enum'/'const') to have an Arrow type")
    return kind


def _enum_type(schema: Mapping[str, Any], where: str) -> pa.DataType:
    values = schema["enum"] if "enum" in schema else [schema["const"]]
    if not isinstance(values, list) or not values:
        raise SchemaError(f"{where}: enum must be a non-empty list")
    kinds = {type(value) for value in values if value is not None}
    if kinds == {str}:
        return pa.string()
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    raise SchemaError(f"{where}: enum values {values} mix types; an Arrow column holds one type")


def _struct(schema: Mapping[str, Any], where: str) -> pa.StructType:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        raise SchemaError(f"{where}: an object needs 'properties' (a free-form object has no Arrow struct type)")
    if schema.get("additionalProperties", False) is not False:
        raise SchemaError(f"{where}: additionalProperties must be false or absent (extra keys have no Arrow field)")
    required = schema.get("required", [])
    unknown = [name for name in required if name not in properties]
    if unknown:
        raise SchemaError(f"{where}: required field(s) {', '.join(map(str, unknown))} are not in its properties")
    return pa.struct([(str(name), _type(field, f"{where}.{name}")) for name, field in properties.items()])


def grammar_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema the grammar runs: ``$ref`` inlined, extra keys off and every integer bounded to int64's range.

    Raises:
        SchemaError: an integer's bounds reach outside int64, naming the field.
    """
    resolved = copy.deepcopy(inline_refs(schema))

    def bound(node: Any, where: str) -> None:
        if not isinstance(node, dict):
            return
        kinds = node.get("type")
        if kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds):
            low, high = node.setdefault("minimum", INT64_MIN), node.setdefault("maximum", INT64_MAX)
            if not INT64_MIN <= low <= INT64_MAX or not INT64_MIN <= high <= INT64_MAX:
                raise SchemaError(f"{where}: integer bounds [{low}, {high}] reach outside int64")
        if "properties" in node:
            node.setdefault("additionalProperties", False)
            for name, field in node["properties"].items():
                bound(field, f"{where}.{name}")
        if "items" in node:
            bound(node["items"], f"{where}[]")

    bound(resolved, "response_format")
    return resolved


class ReplyReader:
    """Parses replies and validates them against the job's schema: the value, or the reason it is not one."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        from jsonschema.validators import validator_for  # noqa: PLC0415 - the llm extra; checked at construction

        validator = validator_for(schema)
        self.validator = validator(schema)

    def read(self, text: str) -> tuple[Any, str | None]:
        """``(value, None)`` for a valid reply, ``(None, reason)`` otherwise."""
        try:
            # strict=False: grammar libraries let raw control characters into strings, which strict JSON refuses
            value = json.loads(text, strict=False)
        except ValueError as exc:
            return None, f"the reply is not complete JSON ({exc}): {_preview(text)}"
        error = next(iter(self.validator.iter_errors(value)), None)
        if error is not None:
            path = "".join(f"[{p!r}]" for p in error.absolute_path)
            return None, f"the reply does not match response_format at {path or 'the top'}: {error.message}"
        return value, None


def check_schema(schema: Mapping[str, Any], where: str) -> None:
    """Raise ``SchemaError`` if ``schema`` is not a valid JSON Schema (as ``jsonschema`` reads it)."""
    from jsonschema.exceptions import SchemaError as InvalidSchema  # noqa: PLC0415
    from jsonschema.validators import validator_for  # noqa: PLC0415

    try:
        validator_for(schema).check_schema(schema)
    except InvalidSchema as exc:
        path = ".".join(str(p) for p in exc.absolute_path)
        raise SchemaError(f"{where}{'.' + path if path else ''}: not a valid JSON Schema: {exc.message}") from None


def _preview(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
