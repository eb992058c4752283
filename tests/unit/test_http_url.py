"""URL validation and the deadline of the health check's HTTP client."""

from __future__ import annotations

import errno
import math

import pytest

from leviathan_tui.backends.http import BadUrl, Deadline, HttpBackend, classify_os_error, parse_url


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "path"),
    [
        ("http://127.0.0.1:30000", "http", "127.0.0.1", 30000, ""),
        ("http://127.0.0.1:30000/", "http", "127.0.0.1", 30000, ""),
        ("HTTPS://node-1.lan", "https", "node-1.lan", 443, ""),
        ("http://[::1]:8080/engine/", "http", "::1", 8080, "/engine"),
        ("http://localhost", "http", "localhost", 80, ""),
    ],
)
def test_good_base_urls(url: str, scheme: str, host: str, port: int, path: str) -> None:
    target = parse_url(url, base=True)
    assert (target.scheme, target.host, target.port, target.path) == (scheme, host, port, path)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://[::1",
        "http://[zz::1]:80",
        "http://127.0.0.1:abc",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:0",
        "http://127.0.0.1:",
        "http://127.0.0.1 :8000",
        "http://127.0.0.1:8000/\tx",
        "http://exa mple",
        "http://bad_host!:80",
        "127.0.0.1:18109",
        "localhost:8000",
        "gopher://127.0.0.1:70/",
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "http://",
        "http://user@127.0.0.1",
        "http://127.0.0.1:8000/?a=1",
        "http://127.0.0.1:8000/#top",
        "http://127.0.0.1\x00:80",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(BadUrl) as err:
        parse_url(url, base=True)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf, -math.inf, True, "5"])
def test_a_deadline_is_finite_and_positive(seconds: object) -> None:
    with pytest.raises(ValueError):
        Deadline.after(seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable"),
        (TimeoutError("timed out"), "connect_timeout"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "reset"),
        (OSError(errno.EMFILE, "Too many open files"), "io"),
    ],
)
def test_socket_errors_get_their_own_kind(error: OSError, kind: str) -> None:
    assert classify_os_error(error, "127.0.0.1:30000").kind == kind


def test_request_never_raises_on_a_bad_url_or_no_time() -> None:
    backend = HttpBackend()
    assert backend.request("GET", "gopher://127.0.0.1/").kind == "bad_url"
    assert backend.request("GET", "http://127.0.0.1:9/health", timeout=0).kind == "deadline"
    assert backend.request("GET", "http://127.0.0.1:9/health", timeout=math.nan).kind == "deadline"
