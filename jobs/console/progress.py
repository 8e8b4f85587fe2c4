"""What a running job shows: one live display in a terminal, one concise line at a steady interval elsewhere.

The runner hands a :class:`ProgressDisplay` a ``poll`` callable that returns a :class:`Snapshot` (the steps'
counters, shards committed); the display asks for one every ``interval`` seconds on a thread of its own and draws
it. Nothing here knows Ray: the runner owns the counters, this module only formats and writes them.

Libraries' own chatter goes to the run's log file instead (``jobs/console/runlog.py``).

Example::

    display = ProgressDisplay(poll, stream=sys.stderr)
    with display:
        ...  # run the pipeline; a line like this appears every 10 s outside a terminal:
    # progress 0:42  topic 480/1000 rows 11.4 rows/s ETA 0:45 | embedding 400/1000 ... | shards 4/10 | 1 row error
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from lakelabel.jobs.console.runlog import PROGRESS_LOGGER, console_filter

if TYPE_CHECKING:
    from types import TracebackType

    from lakelabel.jobs.console.summary import StepStats

__all__ = ["ProgressDisplay", "Snapshot", "render_block", "render_line"]

LINE_SECONDS = 10.0
"""Interval between two progress lines outside a terminal."""
LIVE_SECONDS = 0.5
"""Refresh interval of the live display in a terminal."""


@dataclass(frozen=True)
class Snapshot:
    """The figures of a run at one moment."""

    elapsed: float
    steps: list[StepStats]
    rows_total: int
    shards_done: int
    shards_total: int


def clock(seconds: float) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def step_rate(step: StepStats, elapsed: float) -> float:
    """Rows/s of a step: between its first and its latest finished batch, else over the run so far."""
    span = step.last_batch_at - step.first_batch_at
    if step.batches > 1 and span > 0:
        return (step.rows - step.first_batch_rows) / span
    return step.rows / elapsed if elapsed > 0 else 0.0


def _step_figures(step: StepStats, snapshot: Snapshot, *, named: bool = True) -> str:
    rate = step_rate(step, snapshot.elapsed)
    left = max(0, snapshot.rows_total - step.rows)
    eta = "done" if not left else f"ETA {clock(left / rate)}" if rate > 0 else "ETA -"
    errors = f", {step.row_errors} err" if step.row_errors else ""
    figures = f"{step.rows}/{snapshot.rows_total} rows {rate:.1f} rows/s {eta}{errors}"
    return f"{step.name} {figures}" if named else figures


def _errors(snapshot: Snapshot) -> str:
    errors = max((step.row_errors for step in snapshot.steps), default=0)
    return f"{errors} row error{'s' if errors != 1 else ''}"


def render_line(snapshot: Snapshot) -> str:
    """One line for logs: elapsed time, each step's rows done / total, rows/s and ETA, shards, row errors.

    Row errors are the most any one step has seen: a row whose input is bad fails in every later step too.
    """
    steps = " | ".join(_step_figures(step, snapshot) for step in snapshot.steps) or "starting"
    return (
        f"progress {clock(snapshot.elapsed)}  {steps} | shards {snapshot.shards_done}/{snapshot.shards_total} "
        f"committed | {_errors(snapshot)}"
    )


def render_block(snapshot: Snapshot) -> list[str]:
    """The live display: one line per step, then shards and row errors."""
    width = max((len(step.name) for step in snapshot.steps), default=0)
    lines = []
    for step in snapshot.steps:
        done = step.rows / snapshot.rows_total if snapshot.rows_total else 1.0
        bar = "#" * int(20 * min(done, 1.0))
        lines.append(f"  {step.name:<{width}} [{bar:<20}] {_step_figures(step, snapshot, named=False)}")
    lines.append(
        f"  {clock(snapshot.elapsed)} elapsed, shards {snapshot.shards_done}/{snapshot.shards_total} committed, "
        f"{_errors(snapshot)}"
    )
    return lines


class ProgressDisplay:
    """Draws ``poll()``'s snapshots on ``stream`` from a thread until stopped; the last one is drawn at the end.

    ``live`` (default: whether ``stream`` is a terminal) redraws a block in place; otherwise a line is written
    every ``interval`` seconds. While a live display runs, the ``lakelabel`` logger writes above it.
    """

    def __init__(
        self,
        poll: Callable[[], Snapshot],
        *,
        stream: TextIO | None = None,
        live: bool | None = None,
        interval: float | None = None,
        log: logging.Logger | None = None,
        verbose: bool = False,
    ) -> None:
        self.poll = poll
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval = interval if interval is not None else LIVE_SECONDS if self.live else LINE_SECONDS
        self.log = log if log is not None else logging.getLogger("lakelabel")
        self._drawn = 0
        self._block = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handler = _AboveDisplay(self)
        self._handler.addFilter(console_filter(verbose=verbose))

    def tick(self) -> str:
        """Poll once and draw; returns what was drawn."""
        snapshot = self.poll()
        line = render_line(snapshot)
        if self.live:
            with self._lock:
                self._block = "\n".join(render_block(snapshot))
                self._clear()
                self._draw_block()
                self.stream.flush()
        else:
            self.write(line)
        logging.getLogger(PROGRESS_LOGGER).info("%s", line)
        return self._block if self.live else line

    def write(self, text: str) -> None:
        """Write a line (above the live block, if one is drawn)."""
        with self._lock:
            self._clear()
            self.stream.write(text + "\n")
            self._draw_block()
            self.stream.flush()

    def _draw_block(self) -> None:
        if self.live and self._block:
            self.stream.write(self._block + "\n")
            self._drawn = self._block.count("\n") + 1

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - a failed poll must not stop the job
                self.log.info("progress poll failed: %s", exc)

    def start(self) -> None:
        """Start drawing."""
        if self.live:
            self.log.addHandler(self._handler)
            self._handler.previous, self.log.propagate = self.log.propagate, False
        self._thread = threading.Thread(target=self._loop, name="lakelabel-progress", daemon=True)
        self._thread.start()

    def stop(self, *, final: bool = True) -> None:
        """Stop drawing; draw the last snapshot once more when ``final``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if final:
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the run's result matters more than its last progress line
                self.log.info("progress poll failed: %s", exc)
        if self.live:
            self.log.removeHandler(self._handler)
            self.log.propagate = self._handler.previous

    def __enter__(self) -> ProgressDisplay:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop(final=kind is None)


class _AboveDisplay(logging.Handler):
    """Writes ``lakelabel`` log records above the live block instead of through it."""

    def __init__(self, display: ProgressDisplay) -> None:
        super().__init__(level=logging.INFO)
        self.display = display
        self.previous = True
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.display.write(self.format(record))
