"""Filesystems for job URIs: local paths and ``s3://`` through fsspec, one code path for every endpoint.

The S3 endpoint and credentials come from the job's ``storage`` block when set, else from the standard AWS
variables and files (``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, instance
roles, ...), resolved by botocore. Credentials are never logged.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pyarrow.fs import FSSpecHandler, PyFileSystem

if TYPE_CHECKING:
    from jobs.spec import StorageSpec


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
        client_kwargs = {"region_name": storage.region} if storage.region else {}
        fs = fsspec.filesystem(
            "s3",
            endpoint_url=endpoint,
            profile=storage.profile,
            anon=storage.anon,
            client_kwargs=client_kwargs,
            skip_instance_cache=True,
        )
        return fs, path.rstrip("/")
    return fsspec.filesystem(protocol), path


def arrow_filesystem(fs: fsspec.AbstractFileSystem) -> PyFileSystem:
    """Wrap an fsspec filesystem for pyarrow and Ray Data readers and writers."""
    return PyFileSystem(FSSpecHandler(fs))
