"""A raw TCP server on 127.0.0.1 that answers HTTP requests however a test scripts it: garbage
status lines, bodies trickled a byte at a time, endless bodies, malformed stream chunks."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Respond = Callable[[str, str, bytes, socket.socket], None]


@dataclass
class Request:
    method: str
    path: str
    body: bytes


@dataclass
class RawServer:
    respond: Respond
    connections: int = 0
    requests: list[Request] = field(default_factory=list)

    def start(self) -> str:
        owner = self
        lock = threading.Lock()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with lock:
                    owner.connections += 1
                sock: socket.socket = self.request
                sock.settimeout(5)
                try:
                    method, path, body = _read_request(sock)
                except (OSError, ValueError):
                    return
                owner.requests.append(Request(method, path, body))
                try:
                    owner.respond(method, path, body, sock)
                except OSError:
                    pass  # the client gave up: that is what most tests want

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read_request(sock: socket.socket) -> tuple[str, str, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ValueError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return method, path, body


def head(status: int = 200, ctype: str = "application/json", length: int | None = None) -> bytes:
    text = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nConnection: close\r\n"
    if length is not None:
        text += f"Content-Length: {length}\r\n"
    return (text + "\r\n").encode()


def send_json(sock: socket.socket, payload: object, status: int = 200) -> None:
    body = json.dumps(payload).encode()
    sock.sendall(head(status, length=len(body)) + body)


def send_sse(sock: socket.socket, events: Iterable[str]) -> None:
    sock.sendall(head(200, "text/event-stream"))
    for event in events:
        sock.sendall(event.encode())


def chunk_event(delta: object, finish: str | None = None) -> str:
    return (
        "data: "
        + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        + "\n\n"
    )


def engine_with_stream(events: Callable[[], Iterable[str]]) -> Respond:
    """/health answers ok; the chat completion streams `events()`."""

    def respond(method: str, path: str, body: bytes, sock: socket.socket) -> None:
        if method == "GET" and path == "/health":
            send_json(sock, {"status": "ok"})
        elif method == "GET":
            send_json(sock, {"detail": "Not Found"}, 404)
        else:
            send_sse(sock, events())

    return respond


def trickle(sock: socket.socket, data: bytes, every_s: float) -> None:
    for i in range(len(data)):
        sock.sendall(data[i : i + 1])
        time.sleep(every_s)
