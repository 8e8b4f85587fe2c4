"""Finding the rows that kill their worker: split a batch whose worker died, until the killers are known.

A row can take its whole process down (a native decoder crash, an out-of-memory kill): no ``except`` sees it. Ray
restarts the actor and retries the same batch, which would die again. So each attempt is written to a
:class:`Journal` that outlives the process (the runner keeps it in an actor on the driver's node) before it runs, and
crossed out when it returns. An attempt that finds its own entry still there knows the previous try died on it and
splits the rows in two halves, each attempted in turn; a single row that died alone is the killer and gets a null
and the row error ``worker died: ...``. A batch of ``n`` rows with ``k`` killers costs at most
``k * (ceil(log2 n) + 1)`` deaths, and the rest of its rows get their annotations. Whatever the deaths' causes, each
split of a batch is attempted whole at most once, so a batch can cost no more than ``2n - 1`` deaths: Ray's actor
restarts (unbounded by default in Ray Data) always come to an end.

Nothing here knows Ray; ``jobs/ray_adapter.py`` wires it to the actors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol

import pyarrow as pa

from lakelabel.jobs.records import ROW_COLUMN, SHARD_COLUMN
from lakelabel.operators.core.base import prepared_column
from lakelabel.operators.core.columns import add_errors, set_column

DIED = "worker died: its process exited or was killed on this row alone (a native crash, or out of memory)"


class Journal(Protocol):
    """Attempts begun and not ended, kept outside the worker process."""

    def begin(self, key: str) -> bool:
        """Record that ``key`` starts; True when an earlier attempt of ``key`` began and never ended."""
        ...

    def end(self, key: str) -> None:
        """``key`` returned."""
        ...

    def forget(self, prefix: str) -> None:
        """Drop every entry under ``prefix`` (its batch is done)."""
        ...


class CallJournal:
    """A :class:`Journal` kept elsewhere: ``call(method, key)`` runs the method there and returns its result."""

    def __init__(self, call: Callable[[str, str], object]) -> None:
        self.call = call

    def begin(self, key: str) -> bool:
        """See :meth:`Journal.begin`."""
        return bool(self.call("begin", key))

    def end(self, key: str) -> None:
        """See :meth:`Journal.end`."""
        self.call("end", key)

    def forget(self, prefix: str) -> None:
        """See :meth:`Journal.forget`."""
        self.call("forget", prefix)


def batch_key(batch: pa.Table) -> str:
    """A batch's identity across retries: its first row (shard and row number) and its size.

    A batch without the run's row tags (a user's own dataset, ``lakelabel.annotate``) is known by a digest of its
    contents instead: a retry of it gives the same key.
    """
    if batch.num_rows == 0:
        return "empty-0"
    if SHARD_COLUMN not in batch.column_names:
        rows = batch.take(pa.array(range(batch.num_rows))).combine_chunks()  # fresh buffers: the values alone
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        return f"rows-{hashlib.blake2b(sink.getvalue(), digest_size=12).hexdigest()}+{batch.num_rows}"
    return f"{batch.column(SHARD_COLUMN)[0].as_py()}:{batch.column(ROW_COLUMN)[0].as_py()}+{batch.num_rows}"


def died(batch: pa.Table, *, step: str, output_type: pa.DataType) -> pa.Table:
    """``batch`` as the step returns it for rows whose worker died: nulls and a ``worker died`` row error."""
    prepared = prepared_column(step)
    if prepared in batch.column_names:
        batch = batch.drop_columns([prepared])
    batch = set_column(batch, step, pa.nulls(batch.num_rows, output_type))
    return add_errors(batch, step, dict.fromkeys(range(batch.num_rows), DIED))


def run_isolating(
    batch: pa.Table,
    call: Callable[[pa.Table], pa.Table],
    journal: Journal,
    *,
    stage: str,
    on_death: Callable[[pa.Table], pa.Table],
) -> pa.Table:
    """``call(batch)``, splitting the rows a previous attempt died on until each killer row is alone."""
    root = f"{stage}|{batch_key(batch)}"

    def attempt(rows: pa.Table, key: str) -> pa.Table:
        if not journal.begin(key):
            result = call(rows)
            journal.end(key)
            return result
        if rows.num_rows <= 1:
            return on_death(rows)
        half = rows.num_rows // 2
        parts = [attempt(rows.slice(0, half), f"{key}/0"), attempt(rows.slice(half), f"{key}/1")]
        return pa.concat_tables(parts, promote_options="default")

    result = attempt(batch, root)
    journal.forget(root)
    return result


def died_preparing(batch: pa.Table, *, step: str) -> pa.Table:
    """``batch`` as the step's prepare stage returns it for rows whose worker died: no prepared value, a row error."""
    batch = set_column(batch, prepared_column(step), pa.nulls(batch.num_rows, pa.large_binary()))
    return add_errors(batch, step, dict.fromkeys(range(batch.num_rows), DIED))
