"""`leviathan health` against bad input and misbehaving servers (issue 13): one line and the right
exit code, never a traceback, never a false HEALTHY, never past its deadline."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leviathan_tui.cli import main
from tests.conftest import leviathan_cmd, run_env
from tests.support.hostile_http import (
    RawServer,
    chunk_event,
    engine_with_stream,
    head,
    send_json,
    trickle,
)

SLACK_S = 2.0  # the deadline plus this much, at most


@pytest.fixture
def raw() -> Iterator:
    servers: list[RawServer] = []

    def make(respond) -> RawServer:
        server = RawServer(respond)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def health(capsys, tmp_path: Path, *args: str) -> tuple[int, str, str, float]:
    start = time.monotonic()
    code = main(["health", "--state-dir", str(tmp_path / "state"), *args])
    out, err = capsys.readouterr()
    return code, out, err, time.monotonic() - start


def assert_one_unhealthy_line(out: str, err: str) -> str:
    assert "Traceback" not in err and "Traceback" not in out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("UNHEALTHY "), out
    return lines[0]


def assert_usage_error(code: int, out: str, err: str) -> str:
    assert code == 2, (out, err)
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("leviathan: "), err
    return lines[0]


# --- the URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://127.0.0.1:abc", "not a valid URL"),
        ("http://127.0.0.1:99999", "not a valid URL"),
        ("http://127.0.0.1:0", "out of range"),
        ("http://127.0.0.1 :8000", "contains a space"),
        ("http://127.0.0.1:8000/v1 x", "contains a space"),
        ("127.0.0.1:18109", "has no scheme"),
        ("http://", "has no host"),
        ("http://user:secret@127.0.0.1:8000", "credentials"),
        ("file:///etc/passwd", "only http:// and https://"),
    ],
)
def test_malformed_urls_are_usage_errors(capsys, tmp_path: Path, url: str, why: str) -> None:
    code, out, err, _ = health(capsys, tmp_path, "--url", url, "--timeout", "5")
    line = assert_usage_error(code, out, err)
    assert why in line


@pytest.mark.parametrize("scheme", ["gopher", "ftp", "file"])
def test_other_schemes_are_refused_without_a_connection(
    capsys, tmp_path: Path, raw, scheme: str
) -> None:
    server = raw(lambda method, path, body, sock: send_json(sock, {"status": "ok"}))
    code, out, err, _ = health(
        capsys, tmp_path, "--url", f"{scheme}://127.0.0.1:{server.port}/", "--timeout", "5"
    )
    assert "only http:// and https://" in assert_usage_error(code, out, err)
    assert server.connections == 0


def test_a_url_without_scheme_is_not_tried(capsys, tmp_path: Path, raw) -> None:
    server = raw(lambda method, path, body, sock: send_json(sock, {"status": "ok"}))
    code, out, err, _ = health(
        capsys, tmp_path, "--url", f"127.0.0.1:{server.port}", "--timeout", "5"
    )
    assert "has no scheme" in assert_usage_error(code, out, err)
    assert server.connections == 0


# --- the timeout -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "abc", ""])
def test_timeout_must_be_finite_and_positive(capsys, tmp_path: Path, value: str) -> None:
    code, out, err, elapsed = health(
        capsys, tmp_path, "--url", "http://127.0.0.1:9", f"--timeout={value}"
    )
    assert "--timeout must be a finite number of seconds above 0" in assert_usage_error(
        code, out, err
    )
    assert elapsed < 2


def test_one_deadline_covers_every_path_and_attempt(capsys, tmp_path: Path, raw) -> None:
    """Each path answers 503 only after 1.5 s: per-request timeouts would run far past 2 s."""

    def slow_503(method: str, path: str, body: bytes, sock: socket.socket) -> None:
        time.sleep(1.5)
        send_json(sock, {"error": {"message": "Loading model"}}, 503)

    raw(slow_503)
    server = raw(slow_503)
    code, out, err, elapsed = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "2"
    )
    assert code == 1 and elapsed < 2 + SLACK_S
    assert "not serving after" in assert_one_unhealthy_line(out, err)


def test_a_server_that_never_answers_ends_at_the_deadline(capsys, tmp_path: Path, raw) -> None:
    server = raw(lambda method, path, body, sock: time.sleep(30))
    code, out, err, elapsed = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "2"
    )
    assert code == 1 and elapsed < 2 + SLACK_S
    assert_one_unhealthy_line(out, err)


def test_a_body_trickled_one_byte_per_half_second_ends_at_the_deadline(
    capsys, tmp_path: Path, raw
) -> None:
    def dribble(method: str, path: str, body: bytes, sock: socket.socket) -> None:
        payload = json.dumps({"status": "ok", "pad": "x" * 200}).encode()
        sock.sendall(head(200, length=len(payload)))
        trickle(sock, payload, 0.5)

    server = raw(dribble)
    code, out, err, elapsed = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "3"
    )
    assert code == 1 and elapsed < 3 + SLACK_S
    assert_one_unhealthy_line(out, err)


def test_a_stream_trickled_one_byte_per_half_second_ends_at_the_deadline(
    capsys, tmp_path: Path, raw
) -> None:
    def respond(method: str, path: str, body: bytes, sock: socket.socket) -> None:
        if method == "GET":
            send_json(sock, {"status": "ok"})
            return
        sock.sendall(head(200, "text/event-stream"))
        trickle(
            sock,
            chunk_event({"content": "Ready and listening, one byte at a time."}).encode() * 50,
            0.5,
        )

    server = raw(respond)
    code, out, err, elapsed = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "3"
    )
    assert code == 1 and elapsed < 3 + SLACK_S
    assert "within the deadline" in assert_one_unhealthy_line(out, err)


# --- what the server sends -------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"GARBAGE\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"\x00\xff\x13binary\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    ],
)
def test_garbage_status_lines_and_headers_are_unhealthy(
    capsys, tmp_path: Path, raw, garbage: bytes
) -> None:
    server = raw(lambda method, path, body, sock: sock.sendall(garbage))
    code, out, err, elapsed = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "5"
    )
    assert code == 1 and elapsed < 5
    assert "not answer" in assert_one_unhealthy_line(out, err) and "with HTTP" in out


def test_an_endless_body_is_capped(capsys, tmp_path: Path, raw) -> None:
    def endless(method: str, path: str, body: bytes, sock: socket.socket) -> None:
        sock.sendall(head(200))
        block = b"[" * 65536
        while True:
            sock.sendall(block)

    server = raw(endless)
    code, out, err, elapsed = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "10"
    )
    assert code == 1 and elapsed < 10
    assert "more than 1 MiB" in assert_one_unhealthy_line(out, err)


def test_an_endless_stream_is_capped(capsys, tmp_path: Path, raw) -> None:
    def events() -> Iterator[str]:
        while True:
            yield chunk_event({"content": "more "}) * 100

    server = raw(engine_with_stream(events))
    code, out, err, elapsed = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "20"
    )
    assert code == 1 and elapsed < 20
    assert "streamed more than 4 MiB" in assert_one_unhealthy_line(out, err)


@pytest.mark.parametrize(
    ("events", "why"),
    [
        ([chunk_event({"content": 5}), "data: [DONE]\n\n"], "content is a number, not a string"),
        ([chunk_event({"content": ["a"]}), "data: [DONE]\n\n"], "content is a list, not a string"),
        (
            [chunk_event({"content": {"text": "a"}}), "data: [DONE]\n\n"],
            "content is a object, not a string",
        ),
        ([chunk_event("Ready"), "data: [DONE]\n\n"], "delta is a string, not an object"),
        ([chunk_event(["Ready"]), "data: [DONE]\n\n"], "delta is a list, not an object"),
        ([chunk_event(7), "data: [DONE]\n\n"], "delta is a number, not an object"),
        (['data: {"choices": "all"}\n\n'], "choices is a string, not a list"),
        (['data: {"choices": [3]}\n\n'], "choice is a number, not an object"),
        (["data: 42\n\n"], "a JSON number, not a chunk object"),
        (["data: {not json\n\n"], "not JSON"),
        (["data: " + "[" * 100_000 + "\n\n"], "not JSON"),
        ([chunk_event({"content": "Rea"}), "data: "], "ended before the completion finished"),
        (
            [chunk_event({"content": "x"}, finish=7), "data: [DONE]\n\n"],
            "finish_reason is a number",
        ),
    ],
)
def test_malformed_stream_chunks_are_unhealthy(
    capsys, tmp_path: Path, raw, events: list[str], why: str
) -> None:
    server = raw(engine_with_stream(lambda: events))
    code, out, err, _ = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "5"
    )
    assert code == 1
    assert why in assert_one_unhealthy_line(out, err)


@pytest.mark.parametrize(
    "events",
    [
        [chunk_event({"content": None}, "stop"), "data: [DONE]\n\n"],
        [chunk_event({"content": ""}, "stop"), "data: [DONE]\n\n"],
        [chunk_event({"role": "assistant"}), chunk_event({}, "stop"), "data: [DONE]\n\n"],
        [chunk_event({"content": "   \n "}, "stop"), "data: [DONE]\n\n"],
        ['data: {"choices": []}\n\n', "data: [DONE]\n\n"],
        ["data: [DONE]\n\n"],
    ],
)
def test_a_null_or_empty_reply_is_unhealthy(capsys, tmp_path: Path, raw, events: list[str]) -> None:
    server = raw(engine_with_stream(lambda: events))
    code, out, err, _ = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "5"
    )
    assert code == 1
    assert "returned no text" in assert_one_unhealthy_line(out, err)


@pytest.mark.parametrize("content", [None, ""])
def test_a_non_streamed_null_or_empty_reply_is_unhealthy(
    capsys, tmp_path: Path, raw, content
) -> None:
    def respond(method: str, path: str, body: bytes, sock: socket.socket) -> None:
        if method == "GET":
            send_json(sock, {"status": "ok"})
        else:
            send_json(
                sock,
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]},
            )

    server = raw(respond)
    code, out, err, _ = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "5"
    )
    assert code == 1
    assert "returned no text" in assert_one_unhealthy_line(out, err)


def test_an_error_event_in_the_stream_is_unhealthy(capsys, tmp_path: Path, raw) -> None:
    events = [
        'data: {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}}\n\n',
        "data: [DONE]\n\n",
    ]
    server = raw(engine_with_stream(lambda: events))
    code, out, err, _ = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "5"
    )
    assert code == 1
    assert "CUDA out of memory" in assert_one_unhealthy_line(out, err)


def test_a_healthy_stream_with_comments_and_no_space_after_data(
    capsys, tmp_path: Path, raw
) -> None:
    events = [
        ":\n\n",  # llama-server's ping
        'data:{"choices":[{"index":0,"delta":{"content":"Ready"}}]}\n\n',  # KT's legacy endpoint writes no space
        "event: message\n" + chunk_event({"content": " and set."}, "stop"),
        "data: [DONE]\n\n",
    ]
    server = raw(engine_with_stream(lambda: events))
    code, out, err, _ = health(
        capsys, tmp_path, "--url", f"http://127.0.0.1:{server.port}", "--timeout", "5"
    )
    assert code == 0, out + err
    assert out.startswith("HEALTHY ") and "reply: Ready and set." in out


# --- where the connection fails --------------------------------------------------------------


def test_connection_refused_is_not_called_loading(capsys, tmp_path: Path) -> None:
    code, out, err, elapsed = health(
        capsys, tmp_path, "--url", "http://127.0.0.1:9", "--timeout", "1"
    )
    assert code == 1 and elapsed < 1 + SLACK_S
    assert "connection refused" in assert_one_unhealthy_line(out, err)
    assert (
        "nothing accepts connections" in err
        and "loading (" not in err
        and "still loading" not in err
    )


def test_no_route_to_host_has_its_own_hint(capsys, tmp_path: Path, monkeypatch) -> None:
    def unreachable(self: socket.socket, address: object) -> None:
        raise OSError(errno.EHOSTUNREACH, "No route to host")

    monkeypatch.setattr(socket.socket, "connect", unreachable)
    code, out, err, _ = health(capsys, tmp_path, "--url", "http://127.0.0.1:9", "--timeout", "1")
    assert code == 1
    assert "no route to host" in assert_one_unhealthy_line(out, err)
    assert "no route to that address" in err and "loading" not in err


def test_dry_run_health_never_touches_the_network(tmp_path: Path, raw) -> None:
    """The simulated engine of the kept dry-run world answers; the URL's server sees nothing."""
    from leviathan_tui.dryrun.world import World

    world, _ = World.open(tmp_path / "dry-run" / "world", None)
    with world.edit() as data:
        data["deployment_applied_at"] = time.time() - 60  # the simulated pod has loaded
    server = raw(lambda method, path, body, sock: send_json(sock, {"status": "ok"}))
    done = subprocess.run(
        leviathan_cmd()
        + [
            "--dry-run",
            "health",
            "--url",
            f"http://127.0.0.1:{server.port}",
            "--timeout",
            "10",
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=run_env(LEVIATHAN_DRY_RUN_SPEED="20"),
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("HEALTHY ") and "dry run" in done.stdout
    assert server.connections == 0


def test_dry_run_health_without_a_simulated_deployment_says_so(capsys, tmp_path: Path, raw) -> None:
    server = raw(lambda method, path, body, sock: send_json(sock, {"status": "ok"}))
    start = time.monotonic()
    code = main(
        [
            "--dry-run",
            "health",
            "--url",
            f"http://127.0.0.1:{server.port}",
            "--state-dir",
            str(tmp_path),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1 and time.monotonic() - start < 5
    assert "no simulated engine has been deployed" in assert_one_unhealthy_line(out, err)
    assert "leviathan --dry-run" in err and server.connections == 0


def test_exit_codes_from_a_separate_process(tmp_path: Path) -> None:
    """The same verdicts from the installed entry point: 0 healthy, 1 unhealthy, 2 bad usage."""
    from tests.support.engine_standin import EngineStandIn

    engine = EngineStandIn("ktransformers")
    url = engine.start()
    try:

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                leviathan_cmd() + ["health", "--state-dir", str(tmp_path), *args],
                capture_output=True,
                text=True,
                env=run_env(),
                timeout=60,
            )

        ok = run("--url", url, "--timeout", "10")
        assert ok.returncode == 0, ok.stderr
        assert "HEALTHY" in ok.stdout and "time to first token" in ok.stdout
        bad = run("--url", "http://127.0.0.1:9", "--timeout", "1")
        assert bad.returncode == 1 and bad.stdout.startswith("UNHEALTHY")
        usage = run("--url", "gopher://127.0.0.1:70", "--timeout", "1")
        assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1
    finally:
        engine.stop()
