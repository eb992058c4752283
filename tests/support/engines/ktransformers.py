"""A KTransformers v0.4.1 server (balance_serve backend), as its source says it answers.

Read at github.com/kvcache-ai/ktransformers, tag v0.4.1 (commit e40ba6dfae17ab24212ddcc6ab4b32594258f04d):

- `ktransformers/server/main.py` `main()`: `create_interface()` loads the model before
  `uvicorn.run()`, so nothing listens while it loads: connections are refused.
- `ktransformers/server/api/openai/__init__.py`: the OpenAI routes live under `/v1`. There is no
  `/health` route: FastAPI answers 404 `{"detail": "Not Found"}`.
- `ktransformers/server/api/openai/endpoints/chat.py` `list_models()`:
  `{"data": [{"id": NAME, "name": NAME}], "object": "list"}`. Before v0.2.3 it was the bare list
  `[{"id": NAME, "name": NAME}]` (commit b2ba795c, "fix: list models API") — `bare_model_list`.
- `ktransformers/server/schemas/endpoints/chat.py` `ChatCompletionCreate`: `model` is required
  (FastAPI answers 422 without it, and the value is not checked: chunks carry the server's own
  `--model_name`); `max_tokens` / `max_completion_tokens` are optional and capped by the
  server's `--max_new_tokens` (`balance_serve.py` `get_params`); `return_speed` (default false)
  asks for `prefill_time` / `decode_time` in the usage; `stream_options` is accepted and ignored.
- `chat.py` `chat_completion()` 400s: negative max_tokens, temperature outside [0, 2], top_p
  outside (0, 1].
- `chat.py` `inner()` with `server/backend/interfaces/balance_serve.py` `inference()` and
  `server/schemas/assistants/streaming.py` `chat_stream_response()`: one `ChatCompletionChunk`
  object is reused for every event (`data: {model_dump_json()}\\n\\n`): content deltas
  `{"index": 0, "delta": {"content": TOKEN}, "finish_reason": null}` and no role chunk; the
  `("", "stop"|"length")` that ends `inference()` sends nothing (its token is empty); then the
  `RawUsage` becomes a chunk with `choices: []` and usage (`completion_tokens` counts the tokens
  after the first: the decode counter starts at 0 on the first token); then a closing chunk
  `{"delta": {}, "finish_reason": "stop"}` — always "stop" — that still carries the usage; then
  `data: [DONE]`. Media type `text/event-stream` (Starlette adds `; charset=utf-8`).
- Non-streamed: `{"id", "object": "chat.completion", "created", "model", "choices": [{"index": 0,
  "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"|"length"}],
  "usage": {...}, "system_fingerprint"}`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from tests.support.engines.base import StandInEngine, Timing, _Handler, compact_json, parse_body


@dataclass
class KTransformersStandIn(StandInEngine):
    max_new_tokens: int = 2000  # the server's --max_new_tokens
    bare_model_list: bool = False  # KTransformers before v0.2.3

    flavour = "ktransformers"
    listens_while_loading = False

    def handle_get(self, http: _Handler) -> None:
        if http.route == "/v1/models":
            if self.garbage:
                http.send_body(200, b"<html>not json</html>", "text/html; charset=utf-8")
                return
            item = {"id": self.model, "name": self.model}
            payload: Any = [item] if self.bare_model_list else {"data": [item], "object": "list"}
            http.send_json(200, payload)
            return
        http.send_json(404, {"detail": "Not Found"})

    def _unprocessable(self, http: _Handler, body: Any) -> bool:
        if not isinstance(body, dict):
            http.send_json(
                422,
                {
                    "detail": [
                        {"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}
                    ]
                },
            )
            return True
        for name in ("messages", "model"):
            if name not in body:
                http.send_json(
                    422,
                    {
                        "detail": [
                            {
                                "type": "missing",
                                "loc": ["body", name],
                                "msg": "Field required",
                                "input": body,
                            }
                        ]
                    },
                )
                return True
        return False

    def _bad_request(self, http: _Handler, body: dict[str, Any]) -> bool:
        def refuse(message: str) -> bool:
            http.send_json(
                400,
                {
                    "object": "error",
                    "message": message,
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                },
            )
            return True

        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens < 0:
            return refuse(f"max_tokens must be at least 0, got {max_tokens}.")
        temperature = body.get("temperature", 0.6)
        if isinstance(temperature, int | float) and not 0 <= temperature <= 2:
            return refuse(f"temperature must be in [0, 2], got {temperature}.")
        top_p = body.get("top_p", 0.95)
        if isinstance(top_p, int | float) and not 0 < top_p <= 1:
            return refuse(f"top_p must be in (0, 1], got {top_p}.")
        return False

    def handle_post(self, http: _Handler, raw: bytes) -> None:
        if http.route != "/v1/chat/completions":
            http.send_json(404, {"detail": "Not Found"})
            return
        body = parse_body(raw)
        if self._unprocessable(http, body) or self._bad_request(http, body):
            return
        self.chats.append(body)
        asked = (
            body.get("max_tokens")
            if body.get("max_tokens") is not None
            else body.get("max_completion_tokens")
        )
        limit = self.max_new_tokens if asked is None else min(self.max_new_tokens, asked)
        gen = self.script(body["messages"], limit)
        return_speed = bool(body.get("return_speed"))
        completion_id = uuid.uuid4().hex

        def usage(timing: Timing) -> dict[str, Any]:
            decoded = max(0, len(gen.tokens) - 1)  # the decode counter starts on the first token
            fields: dict[str, Any] = {
                "prompt_tokens": len(gen.prompt_tokens),
                "completion_tokens": decoded,
                "total_tokens": len(gen.prompt_tokens) + decoded,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            }
            if return_speed:
                fields["prefill_time"] = timing.prefill_s
                fields["decode_time"] = timing.decode_s
            return fields

        if not body.get("stream"):
            timing = self.run(gen, lambda token, index: None)
            http.send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": self.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": gen.text},
                            "finish_reason": gen.finish_reason,
                        }
                    ],
                    "usage": usage(timing),
                    "system_fingerprint": f"fp_{uuid.uuid4().hex[:12]}",
                },
            )
            return

        chunk: dict[str, Any] = {
            "id": completion_id,
            "choices": [],
            "created": int(time.time()),
            "model": self.model,
            "object": "chat.completion.chunk",
            "service_tier": None,
            "system_fingerprint": f"fp_{uuid.uuid4().hex[:12]}",
            "usage": None,
        }

        def send(event: dict[str, Any]) -> None:
            http.write_chunk(f"data: {compact_json(event)}\n\n")

        http.begin_stream("text/event-stream; charset=utf-8")

        def emit(token: str, index: int) -> None:
            chunk["choices"] = [{"index": 0, "delta": {"content": token}, "finish_reason": None}]
            send(chunk)

        timing = self.run(gen, emit)
        chunk["choices"] = []
        chunk["usage"] = usage(timing)
        send(chunk)
        chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
        send(chunk)  # the same object: the usage is still on it
        http.write_chunk("data: [DONE]\n\n")
        http.end_stream()
