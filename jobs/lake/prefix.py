"""Parquet under a prefix (a local directory, a glob or ``s3://bucket/prefix``): today's input and output."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakelabel.jobs.lake.base import Sink, Source
from lakelabel.jobs.lake.shards import ShardError, list_shards, shard_root
from lakelabel.jobs.lake.storage import filesystem
from lakelabel.jobs.output.layout import Layout

if TYPE_CHECKING:
    from lakelabel.jobs.spec import StorageSpec


class PrefixSource(Source):
    """Every ``*.parquet`` under the prefix (names starting with ``_`` or ``.`` skipped) is a shard."""

    def __init__(self, uri: str, storage: StorageSpec) -> None:
        self.fs, self.path = filesystem(uri, storage)
        self.label = uri
        self.root = shard_root(self.fs, self.path)
        self.listed: dict[str, int] = {}

    def shard_paths(self) -> list[str]:
        """The prefix's Parquet files; none is an error naming ``input.uri``."""
        paths = list_shards(self.fs, self.path, sizes=self.listed)
        if not paths:
            raise ShardError(f"input.uri: no Parquet shards (*.parquet) found at {self.label}")
        return paths

    def sizes(self) -> dict[str, int]:
        """Sizes from the listing."""
        return self.listed


class PrefixSink(Sink):
    """Annotated shards under the output prefix, named after their input shards; nothing more to commit."""

    def __init__(self, uri: str, storage: StorageSpec, input_root: str) -> None:
        fs, path = filesystem(uri, storage)
        self.label = uri
        self.layout = Layout(fs=fs, root=path, input_root=input_root)
