"""The health check: is the engine up, and does it really answer a completion?

KTransformers has no /health (it answers 404 on a healthy server), so /health is tried first
(llama.cpp and vLLM have it) and /v1/models second; only one real chat completion proves health.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leviathan_tui.errors import StepError

PROMPT = "Reply with one short sentence: are you ready?"


@dataclass
class HealthResult:
    base_url: str
    liveness_path: str
    model: str
    reply: str
    ttft_s: float
    total_s: float
    waited_s: float


def model_ids(payload: Any) -> list[str]:
    """Both shapes: KTransformers' bare list and OpenAI's {"object": "list", "data": [...]}."""
    items = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise ValueError("neither a list of models nor an object with 'data'")
    ids = []
    for item in items:
        if isinstance(item, dict) and (item.get("id") or item.get("name")):
            ids.append(str(item.get("id") or item.get("name")))
    return ids


def wait_alive(
    http: Any,
    base: str,
    paths: tuple[str, ...],
    timeout_s: float,
    on_attempt: Callable[[str], None],
    cancelled: threading.Event,
    poll_s: float = 5.0,
) -> tuple[str, list[str]]:
    """Poll until one liveness path answers 200. Returns (path, model ids if known)."""
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        states = []
        for path in paths:
            result = http.request("GET", base + path, timeout=min(10.0, max(1.0, timeout_s)))
            if result.status == 200:
                if path.endswith("/models"):
                    try:
                        ids = model_ids(json.loads(result.body))
                    except ValueError as err:
                        raise StepError(
                            f"{base}{path} answered 200 with something that is not a model list: {err}: {result.body[:120]!r}"
                        ) from None
                    return path, ids
                return path, []
            if result.status == 404:
                states.append(f"{path} 404")
                continue  # this engine does not have the path: try the next one
            states.append(f"{path} {result.status or result.error}")
        on_attempt(f"loading ({', '.join(states)}) after {elapsed:.0f} s")
        if elapsed >= timeout_s:
            raise StepError(
                f"{base} not serving after {elapsed:.0f} s ({', '.join(states)})",
                "the model may still be loading (404 GB takes many minutes): raise deploy.health_timeout_s, or read the pod's log",
            )
        if cancelled.wait(min(poll_s, max(0.1, timeout_s - elapsed))):
            from leviathan_tui.errors import Cancelled

            raise Cancelled()


def chat_completion(
    base: str, model: str, timeout_s: float, max_tokens: int = 32
) -> tuple[str, float, float]:
    """One streamed chat completion: (reply, time to first token, total time)."""
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": max_tokens,
            "stream": True,
        }
    ).encode()
    request = urllib.request.Request(
        base + "/v1/chat/completions",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "text/event-stream, application/json",
        },
    )
    start = time.monotonic()
    ttft: float | None = None
    pieces: list[str] = []
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            ctype = response.headers.get("Content-Type", "")
            if "text/event-stream" not in ctype:
                raw = response.read()
                ttft = time.monotonic() - start
                try:
                    payload = json.loads(raw)
                    text = payload["choices"][0]["message"]["content"]
                except (ValueError, KeyError, IndexError, TypeError):
                    raise StepError(
                        f"the chat completion answered with something that is not a completion: {raw[:160]!r}"
                    ) from None
                return str(text), ttft, time.monotonic() - start
            for raw_line in response:
                line = raw_line.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                    delta = (
                        chunk["choices"][0].get("delta") or chunk["choices"][0].get("message") or {}
                    )
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    raise StepError(
                        f"the completion stream sent something that is not JSON: {data[:160]!r}"
                    ) from None
                content = delta.get("content") or ""
                if content and ttft is None:
                    ttft = time.monotonic() - start
                pieces.append(content)
    except urllib.error.HTTPError as err:
        detail = err.read()[:300].decode(errors="replace")
        raise StepError(
            f"the chat completion failed: HTTP {err.code}: {detail}",
            "the server is up but cannot answer; read the pod's log",
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise StepError(
            f"the chat completion did not complete: {getattr(err, 'reason', err)}",
            "the server may be overloaded or still warming up; run `leviathan health` again",
        ) from None
    reply = "".join(pieces).strip()
    if not reply:
        raise StepError(
            "the chat completion returned no text",
            "the server answers but generates nothing; read the pod's log",
        )
    return reply, ttft if ttft is not None else time.monotonic() - start, time.monotonic() - start


def check_health(
    http: Any,
    base: str,
    *,
    paths: tuple[str, ...] = ("/health", "/v1/models"),
    timeout_s: float,
    model_name: str,
    on_attempt: Callable[[str], None],
    cancelled: threading.Event | None = None,
    poll_s: float = 5.0,
) -> HealthResult:
    base = base.rstrip("/")
    start = time.monotonic()
    path, ids = wait_alive(
        http, base, paths, timeout_s, on_attempt, cancelled or threading.Event(), poll_s
    )
    waited = time.monotonic() - start
    model = model_name if (not ids or model_name in ids) else ids[0]
    on_attempt(f"{path} answers; sending one chat completion to model {model}")
    remaining = max(30.0, timeout_s - waited)
    reply, ttft, total = http.chat(base, model, remaining)
    return HealthResult(base, path, model, reply, ttft, total, waited)
