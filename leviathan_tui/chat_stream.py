"""Reading an OpenAI-style chat completion as the engines really send it.

The shapes handled, each read from the engine's source:

- KTransformers v0.4.1 (`ktransformers/server/api/openai/endpoints/chat.py`, `inner()`): content
  deltas with no role chunk; then a usage chunk whose `choices` is `[]` (with `prefill_time` and
  `decode_time` only when the request sets KT's own `"return_speed": true`); then a closing chunk
  `{"delta": {}, "finish_reason": "stop"}` that still carries the usage; then `data: [DONE]`.
- llama.cpp `llama-server` (`tools/server/server-task.cpp`, `to_json_oaicompat_chat_stream`): a
  first delta `{"role": "assistant", "content": null}`; content or `reasoning_content` deltas; a
  closing chunk with an empty delta; with `stream_options.include_usage` a usage chunk with
  `choices: []`; `timings` on the last chunk; `: ` comment pings; `data: [DONE]`; errors as
  `data: {"error": {...}}`.
- vLLM (`vllm/entrypoints/openai/chat_completion/serving.py`,
  `chat_completion_stream_generator`): a first delta `{"role": "assistant", "content": ""}`, content
  or `reasoning` deltas, `finish_reason` on the last content chunk, with `include_usage` a usage
  chunk with `choices: []`, errors as `data: {"error": {...}}`, then `data: [DONE]`.

Anything else in a chunk (a delta that is not an object, content that is not a string, a chunk that
is not JSON) is a protocol error. A reply with no text is the caller's to judge (never healthy).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

MAX_TEXT_CHARS = 64 << 10
ERROR_BODY_BYTES = 64 << 10


class ChatProtocolError(Exception):
    """The server answered, but not with a chat completion."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ChatHttpError(Exception):
    """The completion request got an HTTP error status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class ChatEngineError(Exception):
    """The engine reported an error inside its answer (an `error` object)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prefill_s: float | None = None  # KTransformers `usage.prefill_time` (with return_speed)
    decode_s: float | None = None  # KTransformers `usage.decode_time`


@dataclass(frozen=True)
class LlamaTimings:
    """llama-server's own measurements (`server_slot_stats::to_json`, tools/server/server-common.cpp)."""

    prompt_n: int  # prompt tokens processed (not those reused from the prompt cache)
    prompt_ms: float
    predicted_n: int
    predicted_ms: float
    cache_n: int | None = None


@dataclass(frozen=True)
class ChatReply:
    text: str  # the content, as sent
    reasoning: str  # reasoning_content / reasoning, when the engine splits it out
    finish_reason: str | None
    ttft_s: float  # request sent -> first text
    total_s: float  # request sent -> end of the answer
    streamed: bool
    text_chunks: int  # chunks that carried text (a token count when the engine reports none)
    usage: Usage | None
    timings: LlamaTimings | None
    done: bool  # `data: [DONE]` was seen

    @property
    def reply(self) -> str:
        """What the model said: the content, or its reasoning when it sent only that."""
        return self.text.strip() or self.reasoning.strip()


def chat_request(model: str, prompt: str, max_tokens: int, stream: bool = True) -> dict[str, Any]:
    """The body every engine accepts: KTransformers requires `model` (FastAPI answers 422 without
    it) and reads `return_speed`; llama.cpp and vLLM read `stream_options.include_usage`; each one
    ignores the fields it does not know."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
        body["return_speed"] = True
    return body


def excerpt(text: str | bytes, limit: int = 120) -> str:
    """A short, single-line, printable rendering of what the server sent."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    cut = text[:limit]
    return repr(cut) + ("..." if len(text) > limit else "")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ChatProtocolError(f"not JSON: {excerpt(text)}") from None


def _kind(value: Any) -> str:
    return {
        dict: "object",
        list: "list",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _text(delta: dict[str, Any], key: str) -> str:
    value = delta.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ChatProtocolError(
            f"a chunk's {key} is a {_kind(value)}, not a string: {excerpt(json.dumps(delta))}"
        )
    return value


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _amount(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    return Usage(
        _count(value.get("prompt_tokens")),
        _count(value.get("completion_tokens")),
        _amount(value.get("prefill_time")),
        _amount(value.get("decode_time")),
    )


def _timings(value: Any) -> LlamaTimings | None:
    if not isinstance(value, dict):
        return None
    prompt_n, predicted_n = _count(value.get("prompt_n")), _count(value.get("predicted_n"))
    prompt_ms, predicted_ms = _amount(value.get("prompt_ms")), _amount(value.get("predicted_ms"))
    if prompt_n is None or predicted_n is None or prompt_ms is None or predicted_ms is None:
        return None
    return LlamaTimings(
        prompt_n, prompt_ms, predicted_n, predicted_ms, _count(value.get("cache_n"))
    )


def _raise_engine_error(payload: dict[str, Any]) -> None:
    error = payload.get("error")
    if not error:
        return
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str):
        message = json.dumps(error)[:200]
    raise ChatEngineError(" ".join(message.split())[:300])


class ChatStream:
    """Server-sent events in, one ChatReply out. Feed it lines without their line ends."""

    def __init__(self, start: float, clock: Any = time.monotonic) -> None:
        self.start = start
        self.clock = clock
        self._data: list[str] = []
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._chars = 0
        self.ttft: float | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.timings: LlamaTimings | None = None
        self.text_chunks = 0
        self.done = False

    def feed(self, line: str) -> bool:
        """One line of the stream; True once `[DONE]` has come."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return False  # a comment (llama-server pings with ":")
        name, colon, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return False  # event:, id:, retry: and unknown fields do not change a chat stream

    def _dispatch(self) -> bool:
        if not self._data:
            return False
        data = "\n".join(self._data)
        self._data = []
        if not data.strip():
            return False  # an event with empty data is not dispatched (SSE)
        if data.strip() == "[DONE]":
            self.done = True
            return True
        chunk = _load_json(data)
        if not isinstance(chunk, dict):
            raise ChatProtocolError(
                f"a stream event is a JSON {_kind(chunk)}, not a chunk object: {excerpt(data)}"
            )
        self._chunk(chunk, data)
        return False

    def _chunk(self, chunk: dict[str, Any], data: str) -> None:
        _raise_engine_error(chunk)
        choices = chunk.get("choices")
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise ChatProtocolError(
                f"a chunk's choices is a {_kind(choices)}, not a list: {excerpt(data)}"
            )
        for choice in choices:
            if not isinstance(choice, dict):
                raise ChatProtocolError(
                    f"a chunk's choice is a {_kind(choice)}, not an object: {excerpt(data)}"
                )
            index = choice.get("index", 0)
            if index is not None and index != 0:
                continue  # one completion was asked for; other indices are not ours
            delta = choice["delta"] if "delta" in choice else choice.get("message")
            if delta is None:
                delta = {}
            if not isinstance(delta, dict):
                raise ChatProtocolError(
                    f"a chunk's delta is a {_kind(delta)}, not an object: {excerpt(data)}"
                )
            content = _text(delta, "content")
            reasoning = _text(delta, "reasoning_content") or _text(delta, "reasoning")
            if content or reasoning:
                if self.ttft is None:
                    self.ttft = self.clock() - self.start
                self.text_chunks += 1
                self._keep(self._text, content)
                self._keep(self._reasoning, reasoning)
            finish = choice.get("finish_reason")
            if finish is not None and not isinstance(finish, str):
                raise ChatProtocolError(
                    f"a chunk's finish_reason is a {_kind(finish)}, not a string: {excerpt(data)}"
                )
            if finish:
                self.finish_reason = finish
        self.usage = _usage(chunk.get("usage")) or self.usage
        self.timings = _timings(chunk.get("timings")) or self.timings

    def _keep(self, into: list[str], text: str) -> None:
        if text and self._chars < MAX_TEXT_CHARS:
            piece = text[: MAX_TEXT_CHARS - self._chars]
            into.append(piece)
            self._chars += len(piece)

    def close(self) -> ChatReply:
        """The stream ended: the reply, or why the stream was not a whole completion."""
        if self._data and not self.done:
            self._dispatch()  # a last event without its blank line
        if not self.done and self.finish_reason is None:
            raise ChatProtocolError(
                "the stream ended before the completion finished (no finish_reason, no [DONE])"
            )
        total = self.clock() - self.start
        return ChatReply(
            "".join(self._text),
            "".join(self._reasoning),
            self.finish_reason,
            self.ttft if self.ttft is not None else total,
            total,
            True,
            self.text_chunks,
            self.usage,
            self.timings,
            self.done,
        )


def parse_chat_body(body: bytes, start: float, clock: Any = time.monotonic) -> ChatReply:
    """A non-streamed chat completion (`{"choices": [{"message": {...}}], ...}`)."""
    payload = _load_json(body.decode("utf-8", errors="replace"))
    if not isinstance(payload, dict):
        raise ChatProtocolError(
            f"the answer is a JSON {_kind(payload)}, not a chat completion: {excerpt(body)}"
        )
    _raise_engine_error(payload)
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ChatProtocolError(f"the answer has no choices: {excerpt(body)}")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise ChatProtocolError(
            f"the answer's choice is a {_kind(choice)}, not an object: {excerpt(body)}"
        )
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ChatProtocolError(
            f"the answer's message is a {_kind(message)}, not an object: {excerpt(body)}"
        )
    text = _text(message, "content")[:MAX_TEXT_CHARS]
    reasoning = (_text(message, "reasoning_content") or _text(message, "reasoning"))[
        :MAX_TEXT_CHARS
    ]
    finish = choice.get("finish_reason")
    total = clock() - start
    return ChatReply(
        text,
        reasoning,
        finish if isinstance(finish, str) else None,
        total,
        total,
        False,
        1 if (text or reasoning) else 0,
        _usage(payload.get("usage")),
        _timings(payload.get("timings")),
        False,
    )


def read_chat_response(response: Any, start: float) -> ChatReply:
    """Read a `backends.http.Response` to the end (or to `[DONE]`)."""
    if response.status != 200:
        try:
            body = response.read_body(ERROR_BODY_BYTES)
        except Exception:  # the status is the news; a broken error body adds nothing
            body = b""
        raise ChatHttpError(response.status, _error_detail(body))
    if "text/event-stream" in response.content_type:
        stream = ChatStream(start)
        for line in response.lines():
            if stream.feed(line):
                break
        return stream.close()
    return parse_chat_body(response.read_body(), start)


def _error_detail(body: bytes) -> str:
    """The engine's own message when its error body has one (OpenAI, FastAPI or llama.cpp shape)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return excerpt(body) if body else "(no body)"
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return excerpt(error["message"], 200)
        detail = payload.get("detail")
        if isinstance(detail, str):
            return excerpt(detail, 200)
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            where = ".".join(str(p) for p in first.get("loc", []) if isinstance(p, str | int))
            return excerpt(f"{where}: {first.get('msg', '')}", 200)
    return excerpt(body)
