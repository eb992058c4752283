"""What the engine stand-ins share: an HTTP/1.1 server on 127.0.0.1, a scripted model with a clock
for prefill and decode, slots that queue requests, and chunked streaming.

What goes on the wire is each engine's own module's business (ktransformers.py, llamacpp.py,
vllm.py), each derived from that engine's source and citing it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]")


def tokens_of(text: str) -> list[str]:
    """A stand-in tokenizer: words and punctuation, each with the space before it."""
    return TOKEN.findall(text)


@dataclass
class Generation:
    prompt_tokens: list[str]
    tokens: list[str]
    finish_reason: str  # "stop" (the reply ended) or "length" (max tokens reached)
    cached: int = 0  # prompt tokens a prompt cache served (llama.cpp)

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass
class Timing:
    prefill_s: float = 0.0
    decode_s: float = 0.0


@dataclass
class StandInEngine:
    """Subclasses set `flavour` and `listens_while_loading` and answer requests."""

    model: str = "DeepSeek-V3"
    loading_s: float = 0.0
    port: int = 0
    reply: str = "Ready and listening."
    reply_tokens: int | None = None  # generate this many tokens instead of `reply`
    prefill_tps: float = 20_000.0  # prompt tokens per second
    decode_tps: float = 400.0  # tokens per second per stream
    slots: int = 4  # requests served at once; more wait for a free slot
    hang: bool = False  # GET requests never answer
    garbage: bool = False  # the model list is HTML
    requests: list[tuple[str, str]] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)
    on_request: Callable[[str], None] | None = None

    flavour = "engine"
    listens_while_loading = True

    def __post_init__(self) -> None:
        self.server: ThreadingHTTPServer | None = None
        self.started: float | None = time.monotonic()
        self._serving = False
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._slot_gate = threading.Semaphore(self.slots)
        self.max_in_flight = 0
        self._in_flight = 0

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> str:
        self._bind()
        return f"http://127.0.0.1:{self.port}"

    def _bind(self) -> None:
        handler = type("Handler", (_Handler,), {"engine": self})
        server = ThreadingHTTPServer(("127.0.0.1", self.port), handler, bind_and_activate=False)
        server.daemon_threads = True
        server.allow_reuse_address = True
        server.server_bind()  # the port is taken, but nothing is accepted before listen()
        self.port = server.server_address[1]
        self.server = server
        self.started = time.monotonic()
        if self.listens_while_loading or self.loading_s <= 0:
            self._listen()
        else:
            self._timer = threading.Timer(self.loading_s, self._listen)
            self._timer.daemon = True
            self._timer.start()

    def _listen(self) -> None:
        with self._lock:
            if self.server is None or self._serving:
                return
            self.server.server_activate()
            self._serving = True
            threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            if self._timer:
                self._timer.cancel()
            if self.server is not None:
                if self._serving:
                    self.server.shutdown()
                self.server.server_close()
            self.server = None
            self._serving = False

    def reload(self) -> None:
        """The engine restarts and loads the model again."""
        if self.listens_while_loading:
            self.started = time.monotonic()
            return
        self.stop()
        self._bind()

    @property
    def loading(self) -> bool:
        if self.started is None:
            self.started = time.monotonic()
        return time.monotonic() - self.started < self.loading_s

    # --- the scripted model -------------------------------------------------------------------

    def prompt_tokens(self, messages: list[Any]) -> list[str]:
        """A DeepSeek-V3-like chat template around the messages, tokenized."""
        text = "<｜begin▁of▁sentence｜>"
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            role = message.get("role") if isinstance(message, dict) else None
            text += ("<｜Assistant｜>" if role == "assistant" else "<｜User｜>") + str(
                content or ""
            )
        return tokens_of(text + "<｜Assistant｜>")

    def script(self, messages: list[Any], max_tokens: int | None) -> Generation:
        if self.reply_tokens is not None:
            words = tokens_of(" ".join(["word"] * self.reply_tokens))
        else:
            words = tokens_of(self.reply)
        limit = len(words) if max_tokens is None else max(0, max_tokens)
        finish = "stop" if len(words) <= limit else "length"
        return Generation(self.prompt_tokens(messages), words[:limit], finish)

    def run(self, gen: Generation, emit: Callable[[str, int], None]) -> Timing:
        """Prefill, then one token at a time, holding a slot; `emit(token, index)` sends it."""
        timing = Timing()
        slot = self.acquire(gen)
        try:
            with self._lock:
                self._in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                begin = time.monotonic()
                time.sleep(max(1, len(gen.prompt_tokens) - gen.cached) / self.prefill_tps)
                timing.prefill_s = time.monotonic() - begin
                begin = time.monotonic()
                for index, token in enumerate(gen.tokens):
                    if index:
                        time.sleep(1 / self.decode_tps)
                    emit(token, index)
                timing.decode_s = time.monotonic() - begin
            finally:
                with self._lock:
                    self._in_flight -= 1
        finally:
            self.release(gen, slot)
        return timing

    def acquire(self, gen: Generation) -> Any:
        """Wait for a free slot (and say which one); held while the request runs."""
        self._slot_gate.acquire()
        return None

    def release(self, gen: Generation, slot: Any) -> None:
        self._slot_gate.release()

    # --- what each engine answers -------------------------------------------------------------

    def handle_get(self, http: _Handler) -> None:
        raise NotImplementedError

    def handle_post(self, http: _Handler, raw: bytes) -> None:
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    engine: StandInEngine
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    @property
    def route(self) -> str:
        return self.path.split("?", 1)[0]

    def send_json(self, code: int, payload: Any, ctype: str = "application/json") -> None:
        self.send_body(code, json.dumps(payload).encode(), ctype)

    def send_body(self, code: int, body: bytes, ctype: str | None = "application/json") -> None:
        self.send_response(code)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def begin_stream(self, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: str | bytes) -> None:
        payload = data.encode() if isinstance(data, str) else data
        if payload:
            self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            self.wfile.flush()

    def end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass  # the client stopped reading at [DONE]
        self.close_connection = True

    def do_GET(self) -> None:
        self.engine.requests.append(("GET", self.route))
        if self.engine.on_request:
            self.engine.on_request(self.route)
        if self.engine.hang:
            time.sleep(30)
            return
        self.engine.handle_get(self)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 1 << 20))
        self.engine.requests.append(("POST", self.route))
        if self.engine.on_request:
            self.engine.on_request(self.route)
        try:
            self.engine.handle_post(self, raw)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def compact_json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def parse_body(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None
