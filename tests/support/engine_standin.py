"""Local HTTP servers that behave like inference engines, with scripted behaviour."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class EngineStandIn:
    """flavour: 'ktransformers' (no /health, bare model list, SSE chat) or 'llamacpp' (/health 503→200)."""

    flavour: str = "ktransformers"
    model: str = "DeepSeek-V3"
    loading_s: float = 0.0
    hang: bool = False
    garbage: bool = False
    port: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    chats: list[dict] = field(default_factory=list)
    on_request: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.started: float | None = time.monotonic()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        handler = type("H", (_Handler,), {"engine": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.started = time.monotonic()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def reload(self) -> None:
        """Start loading the model again; the clock starts with the next request."""
        self.started = None

    @property
    def loading(self) -> bool:
        if self.started is None:
            self.started = time.monotonic()
        return time.monotonic() - self.started < self.loading_s


class _Handler(BaseHTTPRequestHandler):
    engine: EngineStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        e = self.engine
        e.requests.append(("GET", self.path))
        if e.hang:
            time.sleep(30)
            return
        if self.path == "/health" and e.flavour != "ktransformers":
            self._send(
                503 if e.loading else 200,
                json.dumps({"status": "loading model" if e.loading else "ok"}).encode(),
            )
            return
        if self.path == "/v1/models":
            if e.loading:
                self._send(503, b'{"detail": "loading"}')
            elif e.garbage:
                self._send(200, b"<html>not json</html>", "text/html")
            elif e.flavour == "ktransformers":
                self._send(200, json.dumps([{"id": e.model, "name": e.model}]).encode())
            else:
                self._send(
                    200,
                    json.dumps(
                        {"object": "list", "data": [{"id": e.model, "object": "model"}]}
                    ).encode(),
                )
            return
        self._send(404, b'{"detail":"Not Found"}')

    def do_POST(self) -> None:
        e = self.engine
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        e.requests.append(("POST", self.path))
        if self.path != "/v1/chat/completions":
            self._send(404, b'{"detail":"Not Found"}')
            return
        if e.flavour == "ktransformers" and "model" not in body:
            self._send(422, b'{"detail":[{"loc":["body","model"],"msg":"field required"}]}')
            return
        e.chats.append(body)
        words = ["Ready", " and", " listening", "."]
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for word in words:
                chunk = {"choices": [{"index": 0, "delta": {"content": word}}], "model": e.model}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.02)
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True
        else:
            self._send(
                200,
                json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": "".join(words)}}]}
                ).encode(),
            )
