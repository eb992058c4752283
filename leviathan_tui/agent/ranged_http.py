"""HTTP for the fetch agent: resolve a Hub file to its CDN location, then Range GETs read into
the caller's buffer.

Resolving mirrors huggingface_hub 2.4.0 (`get_hf_file_metadata` in
src/huggingface_hub/file_download.py and `_httpx2_follow_hub_redirects_with_backoff` in
src/huggingface_hub/utils/_http.py): a HEAD on `/resolve/`, following redirects only while they
stay on the same origin; a redirect to another origin (the CDN, a signed URL) is not followed: its
`Location` is where the bytes are, `X-Linked-Size` says how many, and the token is not sent there.

Bodies are read with `HTTPResponse.readinto` into one large buffer per connection: with a buffer
bigger than the socket file's own, CPython's BufferedReader receives straight into it
(`recv_into`), so each byte is copied once from the kernel and once to the page cache. Proxies come
from the usual environment variables (HTTPS_PROXY, HTTP_PROXY, NO_PROXY).
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

from leviathan_tui.agent.fetch_plan import FetchError

TIMEOUT_S = 30.0
MAX_REDIRECTS = 10
_TLS = ssl.create_default_context()


class RangeIgnored(Exception):
    """The server answered 200 to a Range request: it cannot serve segments."""


class LocationExpired(Exception):
    """The CDN refused a URL it served before (a signed URL past its expiry): resolve again."""


@dataclass(frozen=True)
class Location:
    url: str
    headers: dict[str, str]  # what to send there (no token when it is another origin)
    linked_size: int | None


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return (parts.scheme, (parts.hostname or "").lower(), parts.port or default)


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class Connection:
    """One keep-alive connection, reopened when the origin changes or a body was left unread."""

    def __init__(self) -> None:
        self._conn: http.client.HTTPConnection | None = None
        self._origin: tuple[str, str, int] | None = None
        self._response: http.client.HTTPResponse | None = None
        self._proxy_absolute = False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._response = None

    def abort(self) -> None:
        """From another thread: wake a read blocked on this connection (it then fails)."""
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def request(self, method: str, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        origin = _origin(url)
        reusable = (
            self._conn is not None
            and self._origin == origin
            and (self._response is None or self._response.isclosed())
        )
        if not reusable:
            self.close()
            self._conn, target_in_request = _connect(url)
            self._proxy_absolute = target_in_request
            self._origin = origin
        assert self._conn is not None
        parts = urlsplit(url)
        target = (
            url
            if self._proxy_absolute
            else (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        )
        try:
            self._conn.request(method, target, headers=headers)
            self._response = self._conn.getresponse()
        except BaseException:
            self.close()
            raise
        return self._response


def _connect(url: str) -> tuple[http.client.HTTPConnection, bool]:
    """A connection for the URL, through a proxy if the environment names one; True when the
    request line must carry the absolute URL (plain HTTP through a proxy)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    proxy = None
    if not urllib.request.proxy_bypass(host):
        proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy:
        if parts.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=TIMEOUT_S, context=_TLS), False
        return http.client.HTTPConnection(host, port, timeout=TIMEOUT_S), False
    proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    proxy_headers = {}
    if proxy_parts.username:
        userpass = f"{unquote(proxy_parts.username)}:{unquote(proxy_parts.password or '')}"
        proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(
            userpass.encode()
        ).decode("ascii")
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            proxy_parts.hostname or "", proxy_parts.port, timeout=TIMEOUT_S, context=_TLS
        )
        conn.set_tunnel(host, port, headers=proxy_headers)
        return conn, False
    conn = http.client.HTTPConnection(
        proxy_parts.hostname or "", proxy_parts.port, timeout=TIMEOUT_S
    )
    return conn, True


def resolve(conn: Connection, url: str, headers: dict[str, str]) -> Location:
    """Where the bytes of a Hub file are, and what to send there."""
    current = url
    for _ in range(MAX_REDIRECTS):
        response = conn.request("HEAD", current, headers)
        response.read()
        status = response.status
        linked = response.getheader("X-Linked-Size")
        linked_size = int(linked) if linked and linked.isdigit() else None
        if status in (301, 302, 303, 307, 308):
            target = urljoin(current, response.getheader("Location") or "")
            if _origin(target) != _origin(current):
                cdn_headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                return Location(target, cdn_headers, linked_size)
            current = target
            continue
        if status < 300:
            return Location(current, dict(headers), linked_size)
        if _retryable(status):
            raise ConnectionError(f"HTTP {status} from {current}")
        if status in (401, 403):
            raise FetchError(
                f"HTTP {status} for {url}: access denied (gated or private: set HF_TOKEN, accept the license)"
            )
        raise FetchError(f"HTTP {status} from {url}")
    raise FetchError(f"more than {MAX_REDIRECTS} redirects resolving {url}")


def get_range(
    conn: Connection, location: Location, start: int, end: int, size: int
) -> http.client.HTTPResponse:
    """GET bytes [start, end] (inclusive); the response is positioned at `start`. A server that
    ignores Range is accepted for a read from 0 (the caller stops where its segment ends)."""
    headers = dict(location.headers)
    headers["Range"] = f"bytes={start}-{end}"
    response = conn.request("GET", location.url, headers)
    status = response.status
    if status == 206:
        first, total = _content_range(response.getheader("Content-Range") or "")
        if total is not None and total != size:
            conn.close()
            raise FetchError(f"the server now has {total} bytes, the plan says {size}")
        if first != start:
            conn.close()
            raise ConnectionError(f"asked for bytes from {start}, got them from {first}")
        return response
    if status == 200:
        if start == 0:
            return response
        conn.close()
        raise RangeIgnored()
    response.read(1 << 16)
    conn.close()
    if _retryable(status):
        raise ConnectionError(f"HTTP {status}")
    if status == 416:
        raise FetchError(f"the server refused the range {start}-{end} (file changed?)")
    if status in (401, 403, 404, 410):
        raise LocationExpired(f"HTTP {status}")
    raise FetchError(f"HTTP {status} from {location.url.split('?')[0]}")


def _content_range(value: str) -> tuple[int, int | None]:
    """`bytes a-b/N` → (a, N); N is None when the server writes `*`."""
    try:
        unit, _, rest = value.partition(" ")
        span, _, total = rest.partition("/")
        return int(span.split("-")[0]), (int(total) if total.strip() != "*" else None)
    except ValueError:
        return -1, None
