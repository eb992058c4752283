"""HTTP for the health check and the serving benchmark, stdlib only.

Every exchange runs under one deadline that bounds all of it: name resolution, connect, the status
line, the headers and every byte of the body. Socket timeouts alone cannot do that (a server that
sends one byte every 0.5 s never trips a 3 s read timeout), so a watchdog shuts the socket down when
the deadline passes, and the readers check the deadline between reads. Bodies are capped. Every
failure is one `HttpFailure` (kind + one line), never a stdlib exception.

No proxy is used: the engine is reached directly on its node's address.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import json
import math
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 1 << 20  # a model list, a health answer or one completion is far smaller
MAX_STREAM_BYTES = 4 << 20  # a 32-token completion streams a few kB
MAX_STREAM_LINES = 100_000
MAX_LINE_BYTES = 256 << 10
_READ_SIZE = 64 << 10


class BadUrl(ValueError):
    """A URL that is not an http(s) base URL with a host and a valid port."""


class HttpFailure(Exception):
    """No usable HTTP answer. `kind` drives the operator's hint; `detail` is one line."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # dns refused unreachable connect_timeout reset deadline protocol too_large tls io bad_url
        self.detail = detail


@dataclass(frozen=True)
class Deadline:
    """One point in time (monotonic clock) that every path and attempt shares."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ValueError(
                f"a deadline must be a finite number of seconds above 0, not {seconds!r}"
            )
        return cls(time.monotonic() + float(seconds), float(seconds))

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # without brackets for IPv6
    port: int
    path: str  # "" or "/prefix" (no trailing slash)

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, path: str = "") -> str:
        return f"{self.origin}{self.path}{path}"


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$"
)


def parse_url(text: Any, *, base: bool = False) -> Target:
    """Validate an http(s) URL: scheme, host, numeric port in range, no spaces or credentials.

    With `base`, the URL names a server (an optional path prefix, no query or fragment)."""
    if not isinstance(text, str) or not text:
        raise BadUrl("the URL is empty")
    shown = text if len(text) <= 120 else text[:117] + "..."
    if any(ch.isspace() for ch in text):
        raise BadUrl(f"{shown!r} contains a space: write it as http://HOST:PORT")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise BadUrl(f"{shown!r} contains a control character")
    if "://" not in text:
        raise BadUrl(f"{shown!r} has no scheme: write it as http://HOST:PORT")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
        host = parts.hostname
    except ValueError as err:
        raise BadUrl(f"{shown!r} is not a valid URL: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadUrl(f"{shown!r}: only http:// and https:// URLs can be checked, not {scheme}://")
    if "@" in parts.netloc:
        raise BadUrl(f"{shown!r}: credentials in the URL are not supported")
    if not host:
        raise BadUrl(f"{shown!r} has no host")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise BadUrl(f"{shown!r}: {host!r} is not an IPv6 address") from None
    elif not _HOSTNAME.match(host):
        raise BadUrl(f"{shown!r}: {host!r} is not a valid host name")
    if port is None:
        if parts.netloc.endswith(":"):
            raise BadUrl(f"{shown!r} has an empty port")
        port = 443 if scheme == "https" else 80
    if not 1 <= port <= 65535:
        raise BadUrl(f"{shown!r}: port {port} is out of range (1-65535)")
    if base and (parts.query or parts.fragment or "?" in text or "#" in text):
        raise BadUrl(f"{shown!r}: a base URL has no ?query or #fragment")
    path = parts.path.rstrip("/") if base else parts.path
    return Target(scheme, host, port, path)


def normalize_base_url(text: Any) -> str:
    """The base URL as used everywhere else: validated, no trailing slash."""
    target = parse_url(text, base=True)
    return text.rstrip("/") if isinstance(text, str) else target.url()


@dataclass(frozen=True)
class HttpResult:
    status: int  # 0 when no HTTP answer came (refused, timeout, reset, garbage)
    body: bytes
    error: str = ""
    elapsed_s: float = 0.0
    kind: str = ""  # the HttpFailure kind when status is 0

    def json(self) -> Any:
        return json.loads(self.body)


# --- one exchange under a deadline ---------------------------------------------------------------


def _resolve(host: str, port: int, deadline: Deadline) -> list[tuple[int, tuple[Any, ...]]]:
    """Addresses for host:port; a name lookup that outlives the deadline is abandoned."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [(family, (host, port))]
    except ValueError:
        pass
    box: dict[str, Any] = {}

    def lookup() -> None:
        try:
            box["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            box["error"] = err

    worker = threading.Thread(target=lookup, daemon=True, name="leviathan-resolve")
    worker.start()
    worker.join(max(0.0, deadline.remaining()))
    if worker.is_alive():
        raise HttpFailure("deadline", f"resolving {host} took longer than the deadline")
    if "error" in box:
        err = box["error"]
        raise HttpFailure("dns", f"cannot resolve {host}: {getattr(err, 'strerror', None) or err}")
    return [(family, sockaddr) for family, _, _, _, sockaddr in box["infos"]]


_UNREACHABLE = {
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EHOSTDOWN,
    errno.ENETDOWN,
    errno.EADDRNOTAVAIL,
}


def classify_os_error(err: BaseException, where: str) -> HttpFailure:
    """One kind and one line for a socket-level failure."""
    if isinstance(err, HttpFailure):
        return err
    if isinstance(err, ConnectionRefusedError):
        return HttpFailure("refused", f"connection refused by {where}")
    if isinstance(err, OSError) and err.errno in _UNREACHABLE:
        return HttpFailure("unreachable", f"no route to {where} ({err.strerror or err})")
    if isinstance(err, TimeoutError | socket.timeout):
        return HttpFailure("connect_timeout", f"no answer from {where} (connect timed out)")
    if isinstance(err, ssl.SSLError):
        return HttpFailure("tls", f"TLS with {where} failed: {err.reason or err}")
    if isinstance(err, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return HttpFailure("reset", f"{where} closed the connection")
    if isinstance(err, OSError):
        return HttpFailure("io", f"{where}: {err.strerror or err}")
    return HttpFailure("io", f"{where}: {type(err).__name__}: {err}")


class _Watchdog:
    """Shuts the socket down when the deadline passes, waking any blocked read or write."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.fired = False
        self.sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline.remaining()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self.sock = sock
            if self.fired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self.sock is not None:
                _shutdown(self.sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class Response:
    """A response being read under the deadline: capped body or capped lines."""

    def __init__(
        self, raw: http.client.HTTPResponse, deadline: Deadline, watchdog: _Watchdog, where: str
    ) -> None:
        self.raw = raw
        self.status = raw.status
        self.content_type = (raw.getheader("Content-Type") or "").lower()
        self.deadline = deadline
        self._watchdog = watchdog
        self.where = where

    def _check(self) -> None:
        if self._watchdog.fired or self.deadline.expired:
            raise HttpFailure(
                "deadline", f"{self.where} did not finish its answer within the deadline"
            )

    def read_body(self, limit: int = MAX_BODY_BYTES) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            self._check()
            try:
                chunk = self.raw.read1(_READ_SIZE)
            except (http.client.HTTPException, OSError, ValueError) as err:
                self._check()
                raise _read_failure(err, self.where) from None
            if not chunk:
                self._check()
                self._check_truncation()
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise HttpFailure("too_large", f"{self.where} sent more than {_size(limit)}")
            chunks.append(chunk)

    def lines(
        self,
        max_bytes: int = MAX_STREAM_BYTES,
        max_lines: int = MAX_STREAM_LINES,
        max_line: int = MAX_LINE_BYTES,
    ) -> Iterator[str]:
        """Lines without their end of line, decoded as UTF-8 (bad bytes replaced)."""
        size = 0
        count = 0
        while True:
            self._check()
            try:
                raw = self.raw.readline(max_line + 1)
            except (http.client.HTTPException, OSError, ValueError) as err:
                self._check()
                raise _read_failure(err, self.where) from None
            if not raw:
                self._check()
                return
            if len(raw) > max_line and not raw.endswith(b"\n"):
                raise HttpFailure(
                    "too_large", f"{self.where} sent a line longer than {_size(max_line)}"
                )
            size += len(raw)
            count += 1
            if size > max_bytes:
                raise HttpFailure(
                    "too_large", f"{self.where} streamed more than {_size(max_bytes)}"
                )
            if count > max_lines:
                raise HttpFailure("too_large", f"{self.where} streamed more than {max_lines} lines")
            yield raw.rstrip(b"\r\n").decode("utf-8", errors="replace")

    def _check_truncation(self) -> None:
        length = self.raw.getheader("Content-Length")
        if length is not None and self.raw.length not in (None, 0):
            raise HttpFailure(
                "reset", f"{self.where} closed the connection before the end of its answer"
            )


def _read_failure(err: BaseException, where: str) -> HttpFailure:
    if isinstance(err, http.client.IncompleteRead):
        return HttpFailure("reset", f"{where} closed the connection before the end of its answer")
    if isinstance(err, http.client.HTTPException | ValueError):
        return HttpFailure("protocol", f"{where} sent a malformed answer ({_describe(err)})")
    return classify_os_error(err, where)


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())[:100]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


@contextmanager
def exchange(
    method: str,
    url: str,
    deadline: Deadline,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Iterator[Response]:
    """Send one request and yield its response; the deadline bounds everything until exit."""
    target = parse_url(url)
    where = f"{target.host}:{target.port}"
    shown = f"{method} {target.path or '/'}"
    watchdog = _Watchdog(deadline)
    conn = http.client.HTTPConnection(target.host, target.port, timeout=None)
    try:
        sock = _connect(target, deadline, where)
        watchdog.watch(sock)
        conn.sock = sock
        try:
            conn.request(method, _request_path(url, target), body=body, headers=headers or {})
            raw = conn.getresponse()
        except (http.client.HTTPException, OSError, ValueError) as err:
            if watchdog.fired or deadline.expired:
                raise HttpFailure(
                    "deadline", f"{where} did not answer {shown} within the deadline"
                ) from None
            if isinstance(err, http.client.RemoteDisconnected):
                raise HttpFailure(
                    "reset", f"{where} closed the connection without answering {shown}"
                ) from None
            if isinstance(err, http.client.HTTPException):
                raise HttpFailure(
                    "protocol", f"{where} did not answer {shown} with HTTP ({_describe(err)})"
                ) from None
            raise classify_os_error(err, where) from None
        yield Response(raw, deadline, watchdog, f"{where} ({shown})")
    finally:
        watchdog.cancel()
        conn.close()


def _request_path(url: str, target: Target) -> str:
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def _connect(target: Target, deadline: Deadline, where: str) -> socket.socket:
    last: BaseException | None = None
    for family, sockaddr in _resolve(target.host, target.port, deadline):
        remaining = deadline.remaining()
        if remaining <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(remaining)
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.scheme == "https":
                sock.settimeout(max(0.01, deadline.remaining()))
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
            sock.settimeout(None)  # the watchdog bounds every later read and write
            return sock
        except (OSError, ssl.SSLError) as err:
            sock.close()
            last = err
    if last is None or deadline.expired:
        raise HttpFailure("deadline", f"could not connect to {where} within the deadline")
    raise classify_os_error(last, where)


# --- the backend the steps use --------------------------------------------------------------------


class HttpBackend:
    def request(
        self, method: str, url: str, payload: Any = None, timeout: float = 10.0
    ) -> HttpResult:
        """One request; the answer body is capped at MAX_BODY_BYTES; `timeout` bounds the whole
        exchange (callers pass what is left of their deadline)."""
        start = time.monotonic()
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            return HttpResult(0, b"", "no time left before the deadline", 0.0, "deadline")
        limit = Deadline.after(timeout)
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json", "Connection": "close"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            with exchange(method, url, limit, body=data, headers=headers) as response:
                body = response.read_body(MAX_BODY_BYTES)
                return HttpResult(response.status, body, "", time.monotonic() - start)
        except BadUrl as err:
            return HttpResult(0, b"", str(err), time.monotonic() - start, "bad_url")
        except HttpFailure as err:
            return HttpResult(0, b"", err.detail, time.monotonic() - start, err.kind)

    def chat(self, base: str, model: str, timeout_s: float) -> tuple[str, float, float]:
        from leviathan_tui.health import chat_completion

        return chat_completion(base, model, timeout_s)

    def complete(self, base: str, body: dict[str, Any], deadline: Deadline) -> Any:
        """POST one chat completion and read it (streamed or not): a `ChatReply`.

        Raises HttpFailure, ChatHttpError or ChatProtocolError (leviathan_tui.chat_stream)."""
        from leviathan_tui.chat_stream import read_chat_response

        url = base.rstrip("/") + "/v1/chat/completions"
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream, application/json",
            "Connection": "close",
        }
        start = time.monotonic()
        with exchange(
            "POST", url, deadline, body=json.dumps(body).encode(), headers=headers
        ) as response:
            return read_chat_response(response, start)
