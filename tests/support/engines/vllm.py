"""A vLLM OpenAI-compatible server, as its source says it answers.

Read in github.com/vllm-project/vllm (main, commit 006c49d485f9ca479bf4989cbb694d0ac02f44b5 of
`vllm/entrypoints/openai/chat_completion/serving.py`, the image tag Leviathan renders is `latest`):

- `vllm/entrypoints/openai/api_server.py` `setup_server()`: the socket is bound before the engine
  loads but only listened on by uvicorn afterwards: connections are refused while it loads.
- `vllm/entrypoints/serve/instrumentator/health.py`: `GET /health` answers 200 with an empty body
  (503 once the engine is dead).
- `ModelList` / `ModelCard` (`vllm/entrypoints/openai/protocol.py`, later `models/protocol.py`):
  `{"object": "list", "data": [{"id", "object": "model", "created", "owned_by": "vllm", "root",
  "parent", "max_model_len", "permission": [...]}]}`.
- `chat_completion/serving.py` `chat_completion_stream_generator`: the first chunk's delta is
  `{"role": "assistant", "content": ""}` (`model_dump_json(exclude_unset=True)`); content deltas
  (`reasoning` with a reasoning parser) follow; the chunk of the last token carries
  `finish_reason` and `stop_reason`; with `stream_options.include_usage`
  (`serve/utils/api_utils.py` `should_include_usage`) a final chunk with `choices: []` and
  `usage` (`exclude_none`); errors as `data: {"error": {...}}`; then `data: [DONE]`.
- `engine/serving.py` `_check_model`: an unknown `model` is a 404 `{"error": {"message": "The
  model `X` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}}`; `model`
  may be left out (the served model is used).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from tests.support.engines.base import StandInEngine, _Handler, compact_json, parse_body


@dataclass
class VllmStandIn(StandInEngine):
    slots: int = 256  # --max-num-seqs
    max_model_len: int = 8192

    flavour = "vllm"
    listens_while_loading = False

    def handle_get(self, http: _Handler) -> None:
        if http.route == "/health":
            http.send_body(200, b"", None)
        elif http.route == "/v1/models":
            if self.garbage:
                http.send_body(200, b"<html>not json</html>", "text/html")
                return
            card = {
                "id": self.model,
                "object": "model",
                "created": int(time.time()),
                "owned_by": "vllm",
                "root": "/models/gguf/model.gguf",
                "parent": None,
                "max_model_len": self.max_model_len,
                "permission": [
                    {"id": "modelperm-" + secrets.token_hex(16), "object": "model_permission"}
                ],
            }
            http.send_json(200, {"object": "list", "data": [card]})
        else:
            http.send_json(404, {"detail": "Not Found"})

    def _error(
        self, http: _Handler, code: int, kind: str, message: str, param: str | None = None
    ) -> None:
        http.send_json(
            code, {"error": {"message": message, "type": kind, "param": param, "code": code}}
        )

    def handle_post(self, http: _Handler, raw: bytes) -> None:
        if http.route != "/v1/chat/completions":
            http.send_json(404, {"detail": "Not Found"})
            return
        body = parse_body(raw)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._error(http, 400, "BadRequestError", "messages: Field required")
            return
        model = body.get("model") or self.model
        if model != self.model:
            self._error(http, 404, "NotFoundError", f"The model `{model}` does not exist.", "model")
            return
        self.chats.append(body)
        gen = self.script(
            body["messages"], body.get("max_completion_tokens") or body.get("max_tokens")
        )
        completion_id = "chatcmpl-" + secrets.token_hex(16)
        created = int(time.time())
        usage = {
            "prompt_tokens": len(gen.prompt_tokens),
            "total_tokens": len(gen.prompt_tokens) + len(gen.tokens),
            "completion_tokens": len(gen.tokens),
        }
        if not body.get("stream"):
            self.run(gen, lambda token, index: None)
            http.send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": gen.text,
                                "reasoning": None,
                                "tool_calls": [],
                            },
                            "logprobs": None,
                            "finish_reason": gen.finish_reason,
                            "stop_reason": None,
                        }
                    ],
                    "usage": {**usage, "prompt_tokens_details": None},
                    "prompt_logprobs": None,
                },
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        http.begin_stream("text/event-stream; charset=utf-8")

        def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
            http.write_chunk(f"data: {compact_json(payload)}\n\n")

        send(
            [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            prompt_token_ids=None,
        )
        last = len(gen.tokens) - 1

        def emit(token: str, index: int) -> None:
            choice: dict[str, Any] = {"index": 0, "delta": {"content": token}, "logprobs": None}
            if index == last:
                choice.update(finish_reason=gen.finish_reason, stop_reason=None)
            else:
                choice.update(finish_reason=None)
            send([choice])

        self.run(gen, emit)
        if not gen.tokens:
            send(
                [
                    {
                        "index": 0,
                        "delta": {"content": ""},
                        "logprobs": None,
                        "finish_reason": "stop",
                        "stop_reason": None,
                    }
                ]
            )
        if include_usage:
            send([], usage=usage)
        http.write_chunk("data: [DONE]\n\n")
        http.end_stream()
