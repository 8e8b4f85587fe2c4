"""The contract every input and output format implements: a ``Source`` and a ``Sink`` (see ``lakelabel.jobs.lake``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from lakelabel.jobs.lake.shards import ShardError

if TYPE_CHECKING:
    import fsspec

    from lakelabel.jobs.output.layout import Layout
    from lakelabel.jobs.output.state import RunState
    from lakelabel.jobs.records import ShardRecord

__all__ = ["Sink", "Source", "TableChangeError"]


class TableChangeError(ShardError):
    """The input table changed since the last run in a way an incremental run must not paper over."""


class Source(ABC):
    """The input: Parquet files to process, and the table position they were listed at."""

    fs: fsspec.AbstractFileSystem
    root: str
    """Shard keys (and so output file names) are shard paths relative to this."""
    label: str
    """For messages and the plan: the prefix URI, or the table."""

    @abstractmethod
    def shard_paths(self) -> list[str]:
        """Paths (in ``fs``) of the Parquet files this run reads, sorted."""

    def sizes(self) -> dict[str, int]:
        """Sizes of the files :meth:`shard_paths` listed, where the listing gave them (spares a request each)."""
        return {}

    def position(self) -> dict[str, Any] | None:
        """Where in the table's history the shards were listed (recorded with the run); None for a prefix."""
        return None

    def check_since(self, previous: dict[str, Any] | None) -> list[str]:  # noqa: ARG002 - a prefix has no history
        """Refuse (``TableChangeError``) a change since ``previous`` other than appends; describe the range."""
        return []


class Sink(ABC):
    """The output: where shard files and records go, and what happens when shards have committed."""

    layout: Layout
    label: str
    table_format: str = "parquet"

    def begin(self, state: RunState) -> None:  # noqa: B027 - optional hook
        """Called once the run's state is known, before any shard is processed."""

    def shard_committed(self, record: ShardRecord) -> None:  # noqa: B027 - optional hook
        """Called on the driver each time a shard's file and record are committed."""

    def finish(self) -> dict[str, Any] | None:
        """Called at the end of the run; returns what the table commit did (None for a prefix)."""
        return None

    def status_lines(self, digest: str | None = None) -> list[str]:  # noqa: ARG002 - a prefix has no table
        """Extra lines for ``lakelabel status``: the table and what it holds of spec ``digest``."""
        return []
