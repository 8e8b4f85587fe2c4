"""Peak memory of a process and all its descendants (a job's driver, Ray's daemons and its workers), Linux only.

Memory is the sum of each process's PSS (proportional set size, ``/proc/PID/smaps_rollup``): pages shared between
processes, such as Ray's object store in shared memory, are split between them rather than counted once per process.
"""

from __future__ import annotations

import threading
from pathlib import Path

_PROC = Path("/proc")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in _PROC.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    tree = _children()
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(tree.get(current, []))
    return found


def _pss_bytes(pid: int) -> int:
    try:
        for line in (_PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def tree_pss(pid: int) -> int:
    """Bytes of PSS of ``pid`` and its descendants now."""
    return sum(tree_breakdown(pid).values())


def _name(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").rsplit("/", 1)[-1]
    except OSError:
        return "?"


def tree_breakdown(pid: int) -> dict[str, int]:
    """Bytes of PSS of ``pid`` and its descendants now, summed by process name (``ray::MapWorker(...)``, ...)."""
    found: dict[str, int] = {}
    for process in descendants(pid):
        name = _name(process)
        found[name] = found.get(name, 0) + _pss_bytes(process)
    return found


class PeakMemory:
    """Samples ``tree_pss(pid)`` in a background thread until stopped; ``peak`` is the largest sample.

    ``largest`` is the largest PSS one process of the tree had in any sample (``largest_name``: which), the figure
    that says whether any single worker grows with its input.
    """

    def __init__(self, pid: int, interval_s: float = 3.0) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self.at_peak: dict[str, int] = {}
        self.largest = 0
        self.largest_name = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            breakdown: dict[str, int] = {}
            for process in descendants(self.pid):
                name, pss = _name(process), _pss_bytes(process)
                breakdown[name] = breakdown.get(name, 0) + pss
                if pss > self.largest:
                    self.largest, self.largest_name = pss, name
            if sum(breakdown.values()) > self.peak:
                self.peak, self.at_peak = sum(breakdown.values()), breakdown
            self._stop.wait(self.interval_s)
