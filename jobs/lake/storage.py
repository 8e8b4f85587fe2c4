"""Filesystems for job URIs: local paths and ``s3://`` through fsspec, one code path for every endpoint.

The S3 endpoint and credentials come from the job's ``storage`` block when set, else from the standard AWS
variables and files (``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, instance
roles, ...), resolved by botocore. Credentials are never logged: an endpoint is shown without its user info.

Every S3 call lakelabel makes (listing, footers, reads, staging, commits, records, the manifest, the lease) has a
bounded retry budget, in three layers (docs/faults.md):

1. botocore's ``adaptive`` retry mode: ``storage.max_attempts`` attempts per call, exponential backoff with jitter,
   client-side rate limiting after ``503 SlowDown``; it retries throttling, 5xx answers and connection errors.
2. s3fs re-reads a body cut short (a connection reset half-way through a ``GET``): ``_BODY_RETRIES`` times.
3. lakelabel's own loop (:func:`retrying`) around each call: what botocore gave up on and is transient is retried
   with full-jitter backoff until ``storage.retry_seconds`` have passed since the call began; then the call raises
   :class:`StorageError`, naming the endpoint, the operation and the object.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import make_instance
from pyarrow.fs import FSSpecHandler, PyFileSystem
from s3fs import S3FileSystem
from s3fs.core import _error_wrapper
from typing_extensions import override

from lakelabel.jobs.console.redact import redact_url

if TYPE_CHECKING:
    from lakelabel.jobs.spec import StorageSpec

log = logging.getLogger("lakelabel")

_BODY_RETRIES = 3
_BACKOFF_BASE = 0.2  # seconds; doubled per attempt, capped, then a uniform draw below it ("full jitter")
_BACKOFF_CAP = 10.0
_TRANSIENT_ERRNOS = {errno.EBUSY, getattr(errno, "EREMOTEIO", 121), errno.ETIMEDOUT, errno.ECONNRESET}
_TRANSIENT_WORDS = ("SlowDown", "reduce your request rate", "InternalError", "ServiceUnavailable", "RequestTimeout",
                    "Throttl", "503", "500 ", "Connection was closed", "Could not connect", "timeout")  # fmt: skip

T = TypeVar("T")


_REQUESTS: collections.Counter[str] = collections.Counter()


def request_counts() -> dict[str, int]:
    """Object-store requests this process has sent so far, by operation (``GetObject``, ``PutObject``, ...).

    Counted as each HTTP request leaves botocore (``before-send``), so retries and listing pages count, and
    nothing is estimated. Subtract an earlier reading for the requests of a piece of work::

        before = request_counts()
        ...
        sent = requests_since(before)
    """
    return dict(_REQUESTS)


def requests_since(before: dict[str, int]) -> dict[str, int]:
    """Requests sent since ``before`` (a :func:`request_counts` reading), by operation; kinds with none left out."""
    return {kind: count - before.get(kind, 0) for kind, count in _REQUESTS.items() if count > before.get(kind, 0)}


def add_requests(total: dict[str, int], more: dict[str, int]) -> None:
    """Add the counts ``more`` into ``total``."""
    for kind, count in more.items():
        total[kind] = total.get(kind, 0) + count


def _count_request(event_name: str = "", **_: Any) -> None:
    _REQUESTS[event_name.rpartition(".")[2] or "unknown"] += 1


class StorageError(OSError):
    """An object-store operation still failing when its retry budget ran out."""


def transient(exc: BaseException) -> bool:
    """Whether an error from an S3 call may pass on its own (throttling, a 5xx, a reset, a timeout)."""
    if isinstance(exc, StorageError | FileNotFoundError | FileExistsError | PermissionError | IsADirectoryError):
        return False
    if isinstance(exc, TimeoutError | ConnectionError | asyncio.TimeoutError):
        return True
    module = type(exc).__module__ or ""
    if module.startswith(("botocore", "aiobotocore", "aiohttp")) and "ClientError" not in type(exc).__name__:
        return True  # connection, read-timeout and payload errors
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    text = str(exc)
    return any(word in text for word in _TRANSIENT_WORDS)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): full jitter under a capped exponential."""
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1)))  # noqa: S311 - not crypto


async def retrying(call: Callable[[], Awaitable[T]], *, what: str, endpoint: str, budget: float) -> T:
    """Await ``call()``; retry transient errors with backoff until ``budget`` seconds have passed, then raise."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except Exception as exc:
            if not transient(exc):
                raise
            elapsed = time.monotonic() - started
            if elapsed >= budget:
                raise StorageError(
                    f"storage endpoint {endpoint}: {what} still failing after {attempt} attempt(s) over "
                    f"{elapsed:.1f}s (storage.retry_seconds: {budget:g}): {_short(exc)}"
                ) from None
            wait = min(backoff(attempt), max(0.0, budget - elapsed))
            log.info("storage: %s failed (%s); retry %d in %.2fs", what, _short(exc), attempt, wait)
            await asyncio.sleep(wait)


def _short(exc: BaseException) -> str:
    return redact_url(f"{type(exc).__name__}: {exc}".strip().rstrip(":"))


class RetryingS3FileSystem(S3FileSystem):
    """``s3fs`` with lakelabel's bounded retry loop around every call, and errors that name the endpoint."""

    def __init__(
        self, *args: Any, retry_seconds: float = 120.0, body_retries: int = _BODY_RETRIES, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.retry_seconds = retry_seconds
        self.retries = body_retries  # s3fs's own loop: a body cut short is read again

    @override
    def __reduce__(self) -> tuple[Any, ...]:
        # fsspec drops skip_instance_cache from the options it pickles, so every copy unpickled in a worker process
        # would be that process's one cached instance, whose listing cache outlives the task (and the run, on a
        # long-lived Ray) and can miss files other processes wrote since. Each unpickled copy is its own instance.
        return make_instance, (type(self), self.storage_args, {**self.storage_options, "skip_instance_cache": True})

    @override
    async def set_session(self, refresh: bool = False, kwargs: dict[str, Any] | None = None) -> Any:
        """s3fs's session set-up; every client it makes counts the requests it sends (:func:`request_counts`)."""
        client = await super().set_session(refresh=refresh, kwargs=kwargs or {})
        if not getattr(client, "_lakelabel_counted", False):
            client.meta.events.register("before-send.s3", _count_request)
            client._lakelabel_counted = True
        return client

    async def _call_s3(self, method: str, *args: Any, **kwargs: Any) -> Any:
        # s3fs's own _call_s3 with lakelabel's loop in place of s3fs's fixed-count one (which stays for bodies).
        await self.set_session()
        client = await self.get_s3(kwargs.get("Bucket"))
        operation = getattr(client, method)
        arguments = self._get_s3_method_kwargs(operation, *args, **kwargs)
        target = "/".join(str(kwargs[key]) for key in ("Bucket", "Key", "Prefix") if kwargs.get(key))
        endpoint = redact_url(self.client_kwargs.get("endpoint_url") or self.endpoint_url or "AWS S3")

        def once() -> Awaitable[Any]:
            return _error_wrapper(operation, kwargs=arguments, retries=1)  # one call, its error translated

        return await retrying(once, what=f"{method} {target}".strip(), endpoint=endpoint, budget=self.retry_seconds)

    async def _iterdir(self, bucket: str, *args: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        # Listings page through botocore's paginator, not _call_s3: a failed listing is restarted whole.
        parent = super()._iterdir

        async def listing() -> list[dict[str, Any]]:
            return [item async for item in parent(bucket, *args, **kwargs)]

        prefix = kwargs.get("prefix") or ""
        endpoint = redact_url(self.client_kwargs.get("endpoint_url") or self.endpoint_url or "AWS S3")
        what = f"list_objects_v2 {bucket}/{prefix}".rstrip("/")
        for item in await retrying(listing, what=what, endpoint=endpoint, budget=self.retry_seconds):
            yield item


def whole_kwargs(fs: fsspec.AbstractFileSystem) -> dict[str, Any]:
    """Keyword arguments of ``cat``/``cat_file`` fetching small objects whole in one ``GetObject`` each.

    s3fs otherwise asks each object's size first (a ``HeadObject``) to decide whether to fetch it in parallel parts.
    """
    return {"max_concurrency": 1} if isinstance(fs, S3FileSystem) else {}


def without_userinfo(url: str) -> str:
    """``http://user:secret@host:9000`` -> ``http://host:9000``."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (``s3``, ``bucket/key``); a plain path -> (``file``, absolute path)."""
    protocol, sep, rest = uri.partition("://")
    if not sep:
        return "file", os.path.abspath(os.path.expanduser(uri))  # noqa: PTH100, PTH111 - keeps globs intact
    if protocol in {"s3", "s3a"}:
        return "s3", rest
    if protocol == "file":
        return "file", rest
    return protocol, rest


def filesystem(uri: str, storage: StorageSpec) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem serving ``uri`` and the path inside it."""
    protocol, path = split_uri(uri)
    if protocol == "file":
        return LocalFileSystem(), path
    if protocol == "s3":
        endpoint = storage.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and redact_url(endpoint) != endpoint:
            # S3 requests are signed with the AWS credentials; user info in the URL is never sent (nor shown).
            log.warning("storage.endpoint_url: user info in %s is ignored", redact_url(endpoint))
            endpoint = without_userinfo(endpoint)
        client_kwargs = {"region_name": storage.region} if storage.region else {}
        fs = RetryingS3FileSystem(
            endpoint_url=endpoint,
            profile=storage.profile,
            anon=storage.anon,
            client_kwargs=client_kwargs,
            skip_instance_cache=True,
            retry_seconds=storage.retry_seconds,
            config_kwargs={
                "retries": {"total_max_attempts": storage.max_attempts, "mode": "adaptive"},
                "connect_timeout": storage.timeout_seconds,
                "read_timeout": storage.timeout_seconds,
            },
        )
        return fs, path.rstrip("/")
    return fsspec.filesystem(protocol), path


def arrow_filesystem(fs: fsspec.AbstractFileSystem) -> PyFileSystem:
    """Wrap an fsspec filesystem for pyarrow and Ray Data readers and writers."""
    return PyFileSystem(FSSpecHandler(fs))
