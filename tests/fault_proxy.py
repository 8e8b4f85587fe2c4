"""A fault-injecting HTTP proxy on loopback in front of the moto S3 server, for the fault suite.

Jobs point ``storage.endpoint_url`` at :attr:`FaultProxy.url`; every request is forwarded to the real endpoint
unless a scheduled :class:`Fault` matches it first. A fault answers ``503 SlowDown`` or ``500 InternalError`` (as
S3 does), resets the connection before answering or half-way through the body, stalls for some seconds before
forwarding, or (an outage) stops answering for a while: the connection stays open and silent until the outage ends.

Example::

    with FaultProxy(s3_endpoint) as proxy:
        proxy.add(Fault("slowdown", times=3, method="GET"))
        proxy.outage(seconds=4.0)
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("slowdown", "error500", "reset", "reset_body", "stall", "outage")
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}
_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


@dataclass
class Fault:
    """``times`` matching requests (after skipping ``skip`` of them) get ``kind`` instead of a plain answer.

    ``method`` and ``path`` (a substring of the request path) narrow which requests match; ``query`` a substring of
    the query string (``list-type`` for listings, ``uploadId`` for multipart parts). ``seconds`` is a stall's length,
    or an outage's: kind ``outage`` starts one at the first matching request (which is not answered either).
    """

    kind: str
    times: int = 1
    method: str | None = None
    path: str | None = None
    query: str | None = None
    skip: int = 0
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r}: one of {KINDS}")

    def matches(self, method: str, path: str, query: str) -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.path is None or self.path in urllib.parse.unquote(path))
            and (self.query is None or self.query in query)
        )


class FaultProxy:
    """The proxy server; a context manager that serves on ``127.0.0.1`` on a free port."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.faults: list[Fault] = []
        self.injected: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.retries = 0  # requests repeating one that got a fault
        self._faulted: set[tuple[str, str]] = set()
        self.requests = 0
        self.by_method: dict[str, int] = {}
        self.outage_until = 0.0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                proxy.handle(self)

            do_PUT = do_POST = do_DELETE = do_HEAD = do_GET  # noqa: N815 - http.server's method names

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.outage_until = 0.0
        self.server.shutdown()
        self.server.server_close()

    def add(self, fault: Fault) -> None:
        """Schedule a fault."""
        with self.lock:
            self.faults.append(fault)

    def outage(self, seconds: float) -> None:
        """From now on, for ``seconds``, no request is answered."""
        self.outage_until = time.monotonic() + seconds

    def clear(self) -> None:
        """Drop every fault still scheduled and end an outage."""
        with self.lock:
            self.faults.clear()
        self.outage_until = 0.0

    @property
    def total_injected(self) -> int:
        """Faults injected so far, outage requests included."""
        return sum(self.injected.values())

    def _pick(self, method: str, path: str, query: str) -> Fault | None:
        with self.lock:
            self.requests += 1
            self.by_method[method] = self.by_method.get(method, 0) + 1
            if (method, path) in self._faulted:
                self._faulted.discard((method, path))
                self.retries += 1
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path, query):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.times -= 1
                    self.injected[fault.kind] += 1
                    self._faulted.add((method, path))
                    if fault.kind == "outage":
                        self.outage_until = time.monotonic() + fault.seconds
                    return fault
            return None

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one request: a fault, silence during an outage, or the upstream's answer."""
        body = _read_body(request)
        path, _, query = request.path.partition("?")
        fault = None if time.monotonic() < self.outage_until else self._pick(request.command, path, query)
        if time.monotonic() < self.outage_until:
            with self.lock:
                self.injected["outage"] += fault is None
                self._faulted.add((request.command, path))
            while time.monotonic() < self.outage_until:
                time.sleep(0.05)
            _reset(request)
            return
        kind = fault.kind if fault else None
        if kind == "slowdown":
            _answer(request, 503, _SLOWDOWN)
            return
        if kind == "error500":
            _answer(request, 500, _INTERNAL)
            return
        if kind == "reset":
            _reset(request)
            return
        if kind == "stall" and fault is not None:
            time.sleep(fault.seconds)
        status, headers, payload = self._forward(request, body)
        if kind == "reset_body" and len(payload) > 1:
            request.send_response(status)
            for name, value in headers:
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload[: len(payload) // 2])
            request.wfile.flush()
            _reset(request)
            return
        request.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length" or request.command == "HEAD":
                request.send_header(name, value)
        if request.command != "HEAD":
            request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(payload)

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP and k.lower() != "expect"}
            headers["Content-Length"] = str(len(body))
            connection.request(request.command, request.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP]
            return response.status, kept, payload
        finally:
            connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        return  # a client that gave up on a stalled answer closed its end: expected here


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(request.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while request.rfile.readline() not in {b"\r\n", b"\n", b""}:
                    pass
                return b"".join(chunks)
            chunks.append(request.rfile.read(size))
            request.rfile.readline()
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


def _answer(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    request.send_response(status)
    request.send_header("Content-Type", "application/xml")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(body)


def _reset(request: BaseHTTPRequestHandler) -> None:
    """Close the client's connection with a TCP reset."""
    request.close_connection = True
    try:
        request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.connection.close()
    except OSError:
        pass


def figures_report(rows: list[dict], bound: float) -> list[str]:
    """The fault suite's table: one line per case, then the totals."""
    lines = ["", "fault suite: case | faults injected | retries | runs | rows lost | rows duplicated | longest run"]
    lines += [
        f"  {row['case']:<22} {row['injected']:>4} {row['retries']:>4} {row['runs']:>2} "
        f"{row['lost']:>3} {row['duplicated']:>3} {row['longest']:>7.1f}s  {row['outcome']}"
        for row in rows
    ]
    lines.append(
        f"  total: {len(rows)} cases, {sum(r['injected'] for r in rows)} faults injected, "
        f"{sum(r['retries'] for r in rows)} retries, rows lost {sum(r['lost'] for r in rows)}, "
        f"rows duplicated {sum(r['duplicated'] for r in rows)}, longest run {max(r['longest'] for r in rows):.1f}s "
        f"(bound {bound:g}s)"
    )
    return lines
