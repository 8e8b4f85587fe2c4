"""Commit units: how input Parquet files become units of reading and committing.

A *part* is what one output file and one completion record stand for: a whole input file, or, for a file larger
than ``input.split_bytes``, a range of its row groups. A *unit* is what one read task reads and one commit writes:

- a big file's row-group range, alone (so no worker ever holds more than about ``split_bytes`` of one file);
- a bundle of small whole files, up to ``input.bundle_bytes`` on storage and the rows of one model batch, so
  thousands of tiny files cost a few dozen read tasks and commits, and a unit that comes back in one batch
  commits straight away, without staging;
- any other file, alone.

Output names are deterministic and say where they came from::

    day=1/part-0.parquet                   a whole file (bundled or not)
    big.rg00000-00003.parquet              row groups 0 to 3 of big.parquet

Example::

    parts = split_parts(shards, layout.key, split_bytes=128 << 20)
    units = bundle(parts, bundle_bytes=32 << 20, bundle_rows=1024)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from lakelabel.jobs.lake.shards import Shard


@dataclass(frozen=True)
class Part:
    """A whole input file, or the row groups ``[first_group, end_group)`` of one; one output file and one record."""

    key: str
    shard: Shard
    first_group: int | None = None
    end_group: int | None = None
    first_row: int = 0
    rows: int = 0

    @property
    def path(self) -> str:
        """The input file."""
        return self.shard.path

    @property
    def whole(self) -> bool:
        """True for a whole file."""
        return self.first_group is None

    def row_groups(self) -> list[int] | None:
        """The row groups to read (None: all of them)."""
        if self.first_group is None or self.end_group is None:
            return None
        return list(range(self.first_group, self.end_group))


@dataclass(frozen=True)
class Unit:
    """Parts read by one read task and committed by one commit, named by ``key``."""

    key: str
    parts: tuple[Part, ...]

    @property
    def rows(self) -> int:
        """Rows over the unit's parts."""
        return sum(part.rows for part in self.parts)

    @property
    def bytes(self) -> int:
        """Bytes on storage the unit reads (a row-group range: its share of the file)."""
        return sum(_part_bytes(part) for part in self.parts)


def _part_bytes(part: Part) -> int:
    if part.whole or not part.shard.groups:
        return part.shard.bytes
    total = sum(size for _, size in part.shard.groups) or 1
    share = sum(size for _, size in part.shard.groups[part.first_group : part.end_group])
    return part.shard.bytes * share // total


def group_ranges(shard: Shard, split_bytes: int) -> list[tuple[int, int]]:
    """Consecutive row-group ranges ``[start, end)`` of at most ``split_bytes`` each (one group when larger)."""
    groups = shard.groups
    total = sum(size for _, size in groups) or 1
    ranges: list[tuple[int, int]] = []
    start, held = 0, 0
    for index, (_, size) in enumerate(groups):
        stored = shard.bytes * size // total  # the group's share of the file on storage
        if index > start and held + stored > split_bytes:
            ranges.append((start, index))
            start, held = index, 0
        held += stored
    if groups:
        ranges.append((start, len(groups)))
    return ranges


def split_parts(shards: list[Shard], key: Callable[[str], str], *, split_bytes: int) -> list[Part]:
    """The parts of ``shards`` in order: a file above ``split_bytes`` with several row groups becomes several."""
    parts: list[Part] = []
    for shard in shards:
        ranges = group_ranges(shard, split_bytes) if shard.bytes > split_bytes else []
        if len(ranges) < 2:
            parts.append(Part(key=key(shard.path), shard=shard, rows=shard.rows))
            continue
        first = 0
        for start, end in ranges:
            rows = sum(count for count, _ in shard.groups[start:end])
            name = f"{key(shard.path)}.rg{start:05d}-{end - 1:05d}"
            parts.append(Part(key=name, shard=shard, first_group=start, end_group=end, first_row=first, rows=rows))
            first += rows
    return parts


def bundle(parts: list[Part], *, bundle_bytes: int, bundle_rows: int) -> list[Unit]:
    """Units over ``parts``, in order: consecutive small whole files packed together, every other part alone.

    A bundle holds at most ``bundle_bytes`` on storage and ``bundle_rows`` rows (the first file always fits).
    """
    units: list[Unit] = []
    held: list[Part] = []

    def close() -> None:
        if held:
            units.append(_unit(held))
            held.clear()

    for part in parts:
        small = part.whole and part.shard.bytes < bundle_bytes and part.rows < bundle_rows
        if not small:
            close()
            units.append(Unit(key=part.key, parts=(part,)))
            continue
        if held and (
            sum(p.shard.bytes for p in held) + part.shard.bytes > bundle_bytes
            or sum(p.rows for p in held) + part.rows > bundle_rows
        ):
            close()
        held.append(part)
    close()
    return units


def _unit(parts: list[Part]) -> Unit:
    if len(parts) == 1:
        return Unit(key=parts[0].key, parts=(parts[0],))
    digest = hashlib.sha256("\n".join(part.key for part in parts).encode()).hexdigest()[:12]
    return Unit(key=f"{parts[0].key}.bundle-{digest}", parts=tuple(parts))
