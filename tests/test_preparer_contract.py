"""The preparer half of the contract: a CPU stage decodes media ahead of the model, inline or as its own stage."""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from typing_extensions import override

from lakelabel.operators import ERROR_COLUMN, Operator, OperatorConfig
from lakelabel.operators.core.base import Prepared, Preparer, prepared_column
from lakelabel.operators.core.columns import column_values
from lakelabel.operators.core.media import media_bytes


class _SizePreparer(Preparer):
    @override
    def prepare(self, value: Any) -> Prepared:
        data = media_bytes(value)
        if data.startswith(b"BAD"):
            raise ValueError("not a recognised format")
        return {"size": np.array([len(data)], np.int64), "first": np.frombuffer(data[:1], np.uint8)}


class _ByteSize(Operator):
    """Annotates encoded media with its size; a stand-in for an image or audio model."""

    task: ClassVar[str] = "byte-size"
    input_kind: ClassVar[str] = "audio"
    uses_gpu: ClassVar[bool] = False

    def __init__(self, config: OperatorConfig) -> None:
        super().__init__(config)
        self.seen: list[Any] = []

    @override
    def output_type(self) -> pa.DataType:
        return pa.int64()

    @override
    def load(self) -> None:
        pass

    @override
    def annotate(self, texts: list[Any]) -> pa.Array:
        self.seen.extend(texts)
        return pa.array([int(item["size"][0]) for item in texts], pa.int64())

    @override
    def preparer(self) -> Preparer | None:
        return _SizePreparer(self)


def _operator() -> _ByteSize:
    return _ByteSize(OperatorConfig(model="none", input="clip", output="size"))


def _batch(tmp_path: Any) -> pa.Table:
    on_disk = tmp_path / "clip.bin"
    on_disk.write_bytes(b"xyz12")
    clip = pa.array(
        [
            {"bytes": b"abcd", "path": None},
            None,
            {"bytes": b"", "path": "x.wav"},
            {"bytes": b"BAD!", "path": None},
            {"bytes": None, "path": str(on_disk)},
            {"bytes": None, "path": None},
        ],
        pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    return pa.table({"id": list(range(6)), "clip": clip})


def _messages(table: pa.Table) -> list[str | None]:
    return [row[0]["message"] if row else None for row in table.column(ERROR_COLUMN).to_pylist()]


def test_inline_preparer_decodes_each_row_once_and_records_bad_media(tmp_path: Any) -> None:
    operator = _operator()
    out = operator(_batch(tmp_path))
    assert out.column_names == ["id", "clip", "size", ERROR_COLUMN]
    assert out.column("size").to_pylist() == [4, None, None, None, 5, None]
    assert _messages(out) == [
        None,
        "input column 'clip' is null",
        "MediaError: empty (0 bytes)",
        "ValueError: not a recognised format",
        None,
        "input column 'clip' holds neither bytes nor a path",
    ]
    assert [int(item["first"][0]) for item in operator.seen] == [ord("a"), ord("x")]


def test_a_separate_stage_gives_the_same_table_as_inline(tmp_path: Any) -> None:
    batch = _batch(tmp_path)
    operator = _operator()
    stage = pickle.loads(pickle.dumps(operator.preparer()))  # shipped to its own CPU worker
    prepared = stage(batch)
    assert prepared_column("size") in prepared.column_names
    assert prepared.schema.field(prepared_column("size")).type == pa.large_binary()
    model_stage = pickle.loads(pickle.dumps(_operator()))
    separate = model_stage(prepared)
    assert separate.equals(_operator()(batch))
    assert prepared_column("size") not in separate.column_names
    assert len(model_stage.seen) == 2
    assert all("size" in item for item in model_stage.seen)


def test_raw_bytes_and_wrong_types_are_checked_by_input_kind() -> None:
    table = pa.table({"clip": pa.array([b"ab", None], pa.binary()), "text": ["a", "b"]})
    out = _operator()(table)
    assert out.column("size").to_pylist() == [2, None]
    words = _ByteSize(OperatorConfig(model="none", input="text", output="size"))(table)
    assert _messages(words) == [
        "input column 'text' holds str, not encoded audio bytes",
        "input column 'text' holds str, not encoded audio bytes",
    ]


def test_dotted_names_read_struct_fields() -> None:
    inner = pa.array([{"text": "hi", "meta": {"lang": "en"}}, None, {"text": None, "meta": None}])
    table = pa.table({"transcript": inner})
    assert column_values(table, "transcript.text") == ["hi", None, None]
    assert column_values(table, "transcript.meta.lang") == ["en", None, None]
