"""How a run ends when it cannot finish, and the message a user sees for an error wrapped by the engine."""

from __future__ import annotations

from lakelabel.jobs.lake.shards import ShardError
from lakelabel.jobs.lake.storage import StorageError
from lakelabel.jobs.output.commit import CommitError, RowErrorStopError

__all__ = ["JobFailedError", "reason"]


class JobFailedError(RuntimeError):
    """The run stopped (``on_error: raise``, or a failure the engine could not retry); committed shards stay valid."""

    def __init__(self, message: str, *, job: str) -> None:
        super().__init__(message)
        self.job = job


_STOPS = (ShardError, RowErrorStopError, CommitError, StorageError)


def reason(exc: BaseException) -> str:
    """The message of the lakelabel error inside an engine's wrappers, else the outermost message."""
    seen = exc
    for _ in range(10):
        if isinstance(seen, _STOPS):
            cause = getattr(seen, "cause", None)  # Ray's wrapper prints the remote traceback; the cause does not
            return str(cause if isinstance(cause, _STOPS) else seen)
        nested = getattr(seen, "cause", None) or seen.__cause__ or seen.__context__
        if not isinstance(nested, BaseException):
            break
        seen = nested
    return f"{type(exc).__name__}: {exc}"
