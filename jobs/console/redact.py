"""Credentials out of every message: endpoint user info and the AWS secrets of the environment.

``redact(text)`` is applied to lakelabel's log records (a record factory, so Ray's, botocore's and the models'
records too once installed by :func:`install`), to the errors a run ends with and to the files a run writes.

Example::

    >>> redact_url("http://key:secret@minio.internal:9000/bucket")
    'http://***@minio.internal:9000/bucket'
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/@\s\"']+)@")
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")
_MIN_SECRET = 6  # shorter values (test placeholders like "testing" are longer) would mask ordinary words
_installed = False


def redact_url(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://***@host``, wherever it appears in ``text``."""
    return _USERINFO.sub(lambda match: f"{match['scheme']}{MASK}@", text)


def secrets() -> list[str]:
    """Credential values of this process's environment (the AWS variables, user info of endpoint variables)."""
    found = [os.environ[name] for name in _SECRET_VARIABLES if os.environ.get(name)]
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        found += userinfo(os.environ.get(name) or "")
    return sorted({value for value in found if len(value) >= _MIN_SECRET}, key=len, reverse=True)


def userinfo(url: str) -> list[str]:
    """The user and password of a URL (raw and percent-decoded), or none."""
    parts = urllib.parse.urlsplit(url)
    values = [parts.username or "", parts.password or ""]
    return [v for value in values if value for v in {value, urllib.parse.unquote(value)}]


def redact(text: str, extra: list[str] | None = None) -> str:
    """``text`` with endpoint user info and every known credential value masked."""
    text = redact_url(text)
    for value in [*(extra or []), *secrets()]:
        if value and len(value) >= _MIN_SECRET:
            text = text.replace(value, MASK)
    return text


def install() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    global _installed  # noqa: PLW0603 - one record factory per process
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is left to logging's own error handling
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return record

    logging.setLogRecordFactory(factory)
