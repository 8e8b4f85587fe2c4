"""Where a run's logs go: a file per run (path shown at the start), the console only for what a user reads.

Unless a run is verbose, the libraries' own output — Ray's start-up messages, Ray Data's progress blocks,
transformers' weight-loading bars — stays off the console: driver-side records go to the run's log file, and the
workers' output stays in Ray's session logs. The file lives under the output's state,
``OUTPUT/_lakelabel/logs/<run id>.log``: written there directly for a local output, or written locally and copied
there when the run ends for an object-store output.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fsspec.implementations.local import LocalFileSystem

from lakelabel.jobs.output.layout import STATE

if TYPE_CHECKING:
    import fsspec

__all__ = ["LIBRARY_LOGGERS", "PROGRESS_LOGGER", "RunLog", "console_filter", "quiet_worker", "route_logs"]

LIBRARY_LOGGERS = ("ray", "ray.data", "transformers", "huggingface_hub", "py.warnings")
"""Loggers whose records go to the run's log file, and to the console only when the run is verbose."""
PROGRESS_LOGGER = "lakelabel.progress"
"""Where the progress lines are logged for the file (the display writes them to the console itself)."""

log = logging.getLogger("lakelabel")


@dataclass(frozen=True)
class RunLog:
    """A run's log file: ``local`` is written during the run; ``remote`` (object stores) receives it at the end."""

    local: Path
    remote: str | None
    fs: fsspec.AbstractFileSystem

    @classmethod
    def for_run(cls, fs: fsspec.AbstractFileSystem, root: str, run_id: str, job: str) -> RunLog:
        """The log file of run ``run_id`` of the output under ``root``."""
        name = f"{root}/{STATE}/logs/{run_id}.log"
        if isinstance(fs, LocalFileSystem):
            return cls(local=Path(name), remote=None, fs=fs)
        local = Path(tempfile.gettempdir()) / "lakelabel" / job / f"{run_id}.log"
        return cls(local=local, remote=name, fs=fs)

    @property
    def shown(self) -> str:
        """What the start line names."""
        where = str(self.local)
        return f"{where} (copied to {self.fs.unstrip_protocol(self.remote)} at the end)" if self.remote else where

    def publish(self) -> None:
        """Copy the file to the output (object stores); a failure is logged, never raised."""
        if self.remote is None or not self.local.exists():
            return
        try:
            self.fs.put_file(str(self.local), self.remote)
        except OSError as exc:
            log.warning("could not copy the run's log to %s: %s (it stays at %s)", self.remote, exc, self.local)


@contextmanager
def route_logs(path: str | Path, *, verbose: bool) -> Iterator[Path]:
    """Send ``lakelabel``'s and the libraries' log records to ``path``; quiet the libraries' console output.

    Unless ``verbose``, the console handlers of the libraries' loggers (Ray's own, which do not propagate) show only
    errors while the run lasts: their start-up messages and Ray Data's progress blocks land in the file. Everything
    is restored afterwards.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(target, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in ("lakelabel", *LIBRARY_LOGGERS)]
    for logger in loggers:
        logger.addHandler(handler)
    lakelabel, progress = logging.getLogger("lakelabel"), logging.getLogger(PROGRESS_LOGGER)
    saved = lakelabel.level, progress.level, progress.propagate
    if lakelabel.getEffectiveLevel() > logging.INFO:
        lakelabel.setLevel(logging.INFO)
    progress.addHandler(handler)  # the progress lines, to the file only: the console has them from the display
    progress.setLevel(logging.INFO)
    progress.propagate = False
    levels: dict[logging.Handler, int] = {}
    if not verbose:
        for logger in loggers[1:]:
            for console in logger.handlers:
                if console is not handler and not isinstance(console, logging.FileHandler):
                    levels[console] = console.level
                    console.setLevel(max(console.level, logging.ERROR))
    try:
        yield target
    finally:
        for console, level in levels.items():
            console.setLevel(level)
        for logger in (*loggers, progress):
            logger.removeHandler(handler)
        lakelabel.setLevel(saved[0])
        progress.setLevel(saved[1])
        progress.propagate = saved[2]
        handler.close()


class _ConsoleLevel(logging.Filter):
    """``lakelabel``'s INFO records reach the console when the run is verbose or the record asks for it."""

    def __init__(self, *, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return False
        return self.verbose or record.levelno >= logging.WARNING or getattr(record, "console", False)


def console_filter(*, verbose: bool) -> logging.Filter:
    """The filter of a console handler: warnings always, INFO with ``extra={"console": True}`` or when verbose."""
    return _ConsoleLevel(verbose=verbose)


def quiet_worker(*, verbose: bool) -> None:
    """In a model or decoding worker: no weight-loading or download bars unless the run is verbose."""
    if verbose:
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        from transformers.utils import logging as transformers_logging  # noqa: PLC0415 - the worker loads it anyway
    except ImportError:  # pragma: no cover - transformers is a dependency
        return
    transformers_logging.disable_progress_bar()
