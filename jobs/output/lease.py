"""One run per output at a time: a lease object under the output prefix, created atomically and kept alive.

``_lakelabel/lease.json`` names its holder (host, process, start) and when it expires. It is created only if absent:
an S3 conditional ``PUT`` with ``If-None-Match: *`` (a second creator gets ``412 Precondition Failed``), ``O_EXCL``
on a local disk. While the run lives a thread rewrites it every third of ``output.lease_seconds`` with a later
expiry; the run removes it when it ends. A run killed with ``SIGKILL`` leaves it behind, and the next run takes it
over once it has expired, or at once when the holder ran on the same machine and its process is gone. A run that
ended while the store was unreachable leaves its lease behind too: a later run in the same process (a scheduler that
calls :func:`lakelabel.jobs.runner.run_job` in a loop) takes it over at once, since that process knows its own live
leases. A second run meanwhile refuses, naming the holder, or waits for it (``--wait``).

Example::

    with hold(layout, seconds=60, wait=0):
        ...  # prepare, process, commit
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fsspec.implementations.local import LocalFileSystem

from lakelabel.jobs.output.layout import STATE, write_atomic

if TYPE_CHECKING:
    from lakelabel.jobs.output.layout import Layout

log = logging.getLogger("lakelabel")
LEASE = f"{STATE}/lease.json"
_LIVE: set[str] = set()  # tokens of the leases this process holds now


class LeaseHeldError(RuntimeError):
    """Another live run holds the output's lease."""


def lease_path(root: str) -> str:
    """Where the lease of the output prefix ``root`` lives."""
    return f"{root}/{LEASE}"


def read_lease(layout: Layout) -> dict[str, Any] | None:
    """The lease as written, or None when there is none; an unreadable one expires ``lease_seconds`` after its write."""
    path = lease_path(layout.root)
    try:
        raw = layout.fs.cat_file(path)
    except FileNotFoundError:
        return None
    try:
        return json.loads(raw)
    except ValueError:  # a local lease caught half-written
        return {"holder": "unknown (lease being written)", "token": "", "expires_at": time.time() + 5}


def describe(lease: dict[str, Any]) -> str:
    """``run 20261201T... on host (pid 123), started ..., lease expires in 42s``."""
    left = lease.get("expires_at", 0) - time.time()
    return f"{lease.get('holder', 'unknown')}, lease expires in {max(0, left):.0f}s"


def _create(layout: Layout, path: str, data: bytes) -> None:
    """Create ``path`` holding ``data`` only if it does not exist; ``FileExistsError`` otherwise."""
    if isinstance(layout.fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)  # noqa: PTH103, PTH120 - fsspec paths are strings
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        return
    layout.fs.pipe_file(path, data, mode="create")


class Lease:
    """A held lease; :meth:`release` (or leaving :func:`hold`) stops its renewal and removes it."""

    def __init__(self, layout: Layout, seconds: float, holder: str) -> None:
        self.layout = layout
        self.path = lease_path(layout.root)
        self.seconds = seconds
        self.holder = holder
        self.token = uuid.uuid4().hex
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lakelabel-lease", daemon=True)

    def body(self) -> bytes:
        """The lease's JSON with an expiry ``seconds`` from now."""
        now = time.time()
        return json.dumps({"holder": self.holder, "token": self.token, "renewed_at": now, "host": socket.gethostname(),
                           "pid": os.getpid(), "expires_at": now + self.seconds,
                           "lease_seconds": self.seconds}).encode()  # fmt: skip

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                current = read_lease(self.layout)
                if current is not None and current.get("token") != self.token:
                    self.lost = True
                    log.error("the output's lease was taken over by %s", describe(current), extra={"console": True})
                    return
                write_atomic(self.layout.fs, self.path, self.body())
            except Exception as exc:  # noqa: BLE001 - the next renewal tries again; storage errors are logged
                log.warning("could not renew the output's lease: %s", exc)

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still this run's."""
        _LIVE.discard(self.token)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            current = read_lease(self.layout)
            if current is not None and current.get("token") == self.token:
                self.layout.fs.rm(self.path)
        except Exception as exc:  # noqa: BLE001 - an unremoved lease expires by itself
            log.warning("could not remove the output's lease (it expires in %gs): %s", self.seconds, exc)


def _dead_here(lease: dict[str, Any]) -> bool:
    """Whether the lease's holder ran on this machine and is gone.

    Gone means its process ended, or it was a run of this process that ended without removing its lease (the store
    was unreachable then).
    """
    pid = lease.get("pid")
    if lease.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return lease.get("token") not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # another user's live process
    return False


def acquire(layout: Layout, *, uri: str, seconds: float, wait: float = 0.0) -> Lease:
    """Take the output's lease, taking over an expired one; wait up to ``wait`` seconds for a live holder."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lease = Lease(layout, seconds, f"lakelabel run on {socket.gethostname()} (pid {os.getpid()}), started {started}")
    deadline = time.monotonic() + wait
    while True:
        try:
            _create(layout, lease.path, lease.body())
            break
        except FileExistsError:
            current = read_lease(layout)
            if current is None:
                continue  # released in between
            if current.get("token") == lease.token:
                break  # a retried create whose first attempt had landed
            gone = _dead_here(current)
            if gone or current.get("expires_at", 0) < time.time():
                why = "its run is gone" if gone else "expired"
                log.warning("taking over the lease of %s: %s", current.get("holder"), why, extra={"console": True})
                layout.fs.rm(lease.path)
                continue
            if time.monotonic() >= deadline:
                raise LeaseHeldError(
                    f"output.uri: {uri} is in use by another run: {describe(current)}; "
                    "run again once it ends, or pass --wait SECONDS to wait for it"
                ) from None
            time.sleep(min(1.0, seconds / 3, max(0.05, deadline - time.monotonic())))
    _LIVE.add(lease.token)
    lease._thread.start()
    return lease


@contextmanager
def hold(layout: Layout, *, uri: str, seconds: float, wait: float = 0.0) -> Iterator[Lease]:
    """Hold the output's lease for the ``with`` block."""
    lease = acquire(layout, uri=uri, seconds=seconds, wait=wait)
    try:
        yield lease
    finally:
        lease.release()
