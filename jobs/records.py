"""What ``lake/`` and ``output/`` share: the row tags a read adds, a part's completion record, and the resume rule.

Rows read from a unit carry their part's index (``SHARD_COLUMN``) and their row number in the part (``ROW_COLUMN``);
a committed part has a ``ShardRecord``. :func:`done_parts` is the one place that says which parts a run skips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

SHARD_COLUMN = "__lakelabel_shard__"
ROW_COLUMN = "__lakelabel_row__"


@dataclass
class ShardRecord:
    """The completion record of one part (a whole input file, or a row-group range of one).

    Written after its data, in its unit's record object; read back by resume, status and the manifest.
    """

    key: str
    input: str
    input_bytes: int
    spec_hash: str
    run_id: str
    rows_in: int
    rows_out: int = 0
    row_errors: int = 0
    files: list[str] = field(default_factory=list)
    first_row_at: float | None = None
    committed_at: float = 0.0
    commit_seconds: float = 0.0
    unit: str | None = None
    """The commit unit the part was committed in (its record object's name)."""
    row_groups: list[int] | None = None
    """``[first, end)`` row groups of the input file, for a part of a big file; None for a whole file."""
    first_row: int = 0
    """The input file's row number of the part's first row."""

    def to_json(self) -> dict[str, Any]:
        """As a JSON object."""
        return asdict(self)


def done_parts(
    sizes: Mapping[str, int], records: Iterable[Mapping[str, Any]], digest: str
) -> dict[str, Mapping[str, Any]]:
    """The resume rule: the parts (by key) a run skips, with their records.

    A part is done when a record of it was written by a run of the same spec (``digest``) and its input file still
    has the size it had then; ``sizes`` maps each part's key to its input file's size now.

    Example::

        done_parts({"a": 100}, [{"key": "a", "spec_hash": "h", "input_bytes": 100}], "h")  # {"a": {...}}
    """
    return {
        record["key"]: record
        for record in records
        if record["spec_hash"] == digest and sizes.get(record["key"]) == record["input_bytes"]
    }
