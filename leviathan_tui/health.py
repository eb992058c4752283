"""The health check: is the engine up, and does it really answer a completion?

One deadline covers every liveness path, every attempt and the completion. KTransformers has no
/health (it answers 404 on a healthy server) and, like vLLM, opens its port only once the model is
loaded; llama.cpp answers 503 on every path while it loads. So /health is tried first, /v1/models
second, and only one real chat completion with text in it proves health.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leviathan_tui.backends.http import (
    BadUrl,
    Deadline,
    HttpBackend,
    HttpFailure,
    normalize_base_url,
)
from leviathan_tui.chat_stream import (
    ChatEngineError,
    ChatHttpError,
    ChatProtocolError,
    ChatReply,
    chat_request,
    excerpt,
)
from leviathan_tui.errors import Cancelled, StepError

PROMPT = "Reply with one short sentence: are you ready?"
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}

HINT_LOADING = (
    "the model is still loading (the full model takes many minutes): "
    "raise the timeout (deploy.health_timeout_s or --timeout), or read the pod's log"
)
HINT_REFUSED = (
    "nothing accepts connections there: check the URL's host and port (the Service's NodePort), "
    "and that the engine pod is Running and Ready (`kubectl get pods -o wide`); "
    "KTransformers and vLLM open their port only once the model is loaded"
)
HINT_UNREACHABLE = (
    "this machine has no route to that address: check the node's IP, the network or VPN "
    "between here and the node, and its firewall"
)
HINT_NO_ANSWER = (
    "packets go unanswered: a firewall may drop them, or the address is not the node's; "
    "check the URL and the node's firewall"
)
HINT_DNS = "the host name does not resolve: use the node's IP address or fix DNS"
HINT_PROTOCOL = (
    "something answers there, but not an OpenAI-compatible inference engine: check the URL "
    "and port, and read the pod's log"
)
HINT_SLOW = "the server is up but too slow to answer within the deadline: raise --timeout or deploy.health_timeout_s, and read the pod's log"
HINT_BAD_URL = "pass --url http://NODE:30000 or set deploy.health_url"

_HINTS = {
    "refused": HINT_REFUSED,
    "unreachable": HINT_UNREACHABLE,
    "connect_timeout": HINT_NO_ANSWER,
    "dns": HINT_DNS,
    "protocol": HINT_PROTOCOL,
    "too_large": HINT_PROTOCOL,
    "tls": "the TLS handshake failed: use http:// for a plain NodePort, or fix the certificate",
    "deadline": HINT_SLOW,
    "reset": "the server closed the connection: it may have crashed or restarted; read the pod's log",
}


_SHORT = {
    "refused": "connection refused",
    "unreachable": "no route to host",
    "connect_timeout": "no answer",
    "deadline": "no answer in time",
    "reset": "connection closed",
    "dns": "name not resolved",
}


@dataclass(frozen=True)
class HealthResult:
    base_url: str
    liveness_path: str
    model: str
    reply: str
    ttft_s: float
    total_s: float
    waited_s: float
    completion: ChatReply | None = None  # the full reading when the real HTTP backend was used


def model_ids(payload: Any) -> list[str]:
    """Every shape seen: OpenAI's {"object": "list", "data": [...]} (KTransformers v0.4.1, vLLM,
    llama.cpp), KTransformers' bare list (before v0.2.3, commit b2ba795c)."""
    items = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise ValueError("neither a list of models nor an object with 'data'")
    ids = []
    for item in items:
        if isinstance(item, dict):
            name = item.get("id") or item.get("name")
            if isinstance(name, str) and name:
                ids.append(name)
    return ids


def hint_for(kind: str) -> str:
    return _HINTS.get(kind, "read the pod's log")


def _failure_kind(result: Any) -> str:
    kind = getattr(result, "kind", "")
    if kind:
        return kind
    return "refused" if "refused" in (getattr(result, "error", "") or "") else "io"


def _loading_note(body: bytes) -> str:
    """llama-server's 503 says why: {"error": {"message": "Loading model", ...}}."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    if isinstance(payload, dict):
        error = payload.get("error")
        message = error.get("message") if isinstance(error, dict) else payload.get("status")
        if isinstance(message, str):
            return " ".join(message.split())[:40]
    return ""


def wait_alive(
    http: Any,
    base: str,
    paths: tuple[str, ...],
    timeout_s: float,
    on_attempt: Callable[[str], None],
    cancelled: threading.Event,
    poll_s: float = 5.0,
    *,
    deadline: Deadline | None = None,
) -> tuple[str, list[str]]:
    """Poll until one liveness path answers 200. Returns (path, model ids if known)."""
    deadline = deadline or _deadline(timeout_s)
    start = time.monotonic()
    last_states: list[str] = []
    last_kinds: list[str] = []
    while True:
        states: list[str] = []
        kinds: list[str] = []
        not_found = 0
        for path in paths:
            remaining = deadline.remaining()
            if remaining <= 0:
                break
            result = http.request("GET", base + path, timeout=min(10.0, remaining))
            if result.status == 200:
                if path.endswith("/models"):
                    try:
                        ids = model_ids(json.loads(result.body))
                    except (ValueError, RecursionError) as err:
                        raise StepError(
                            f"{base}{path} answered 200 with something that is not a model list: {err}: {excerpt(result.body)}",
                            HINT_PROTOCOL,
                        ) from None
                    return path, ids
                return path, []
            if result.status == 404:
                not_found += 1
                states.append(f"{path} 404")
                continue  # this engine does not have the path: try the next one
            if result.status == 0:
                kind = _failure_kind(result)
                if kind in ("protocol", "too_large", "tls", "bad_url"):
                    raise StepError(f"GET {base}{path}: {result.error}", hint_for(kind))
                kinds.append(kind)
                states.append(f"{path} {_SHORT.get(kind) or result.error}")
                continue
            note = _loading_note(result.body) if result.status == 503 else ""
            states.append(f"{path} {result.status}" + (f" {note}" if note else ""))
            kinds.append("loading" if result.status == 503 else "status")
            if result.status not in RETRYABLE_STATUS:
                raise StepError(
                    f"GET {base}{path} answered HTTP {result.status}: {excerpt(result.body)}",
                    "the server answers but refuses the liveness check (an API key? another service on that port?); read the pod's log",
                )
        elapsed = time.monotonic() - start
        if paths and not_found == len(paths):
            raise StepError(
                f"{base} answers 404 on every liveness path ({', '.join(paths)})",
                "something answers there, but not the inference engine: check the URL and port",
            )
        if states:
            on_attempt(f"waiting ({', '.join(states)}) after {elapsed:.0f} s")
            last_states, last_kinds = states, kinds
        if not deadline.expired and cancelled.wait(
            min(max(0.05, poll_s), max(0.0, deadline.remaining()))
        ):
            raise Cancelled()
        if deadline.expired:
            elapsed = time.monotonic() - start
            raise StepError(
                f"{base} not serving after {elapsed:.0f} s ({', '.join(last_states) or 'no answer'})",
                _wait_hint(last_kinds),
            )


def _wait_hint(kinds: list[str]) -> str:
    if "loading" in kinds:
        return HINT_LOADING
    for kind in ("unreachable", "dns", "connect_timeout", "refused", "reset", "deadline"):
        if kind in kinds:
            return hint_for(kind)
    return "read the pod's log"


def _deadline(timeout_s: float) -> Deadline:
    try:
        return Deadline.after(timeout_s)
    except ValueError as err:
        raise StepError(f"the health check's timeout is not usable: {err}", HINT_SLOW) from None


def complete(
    http: HttpBackend,
    base: str,
    model: str,
    deadline: Deadline,
    *,
    prompt: str = PROMPT,
    max_tokens: int = 32,
) -> ChatReply:
    """One streamed chat completion, read whole; a failure is one StepError line with its fix."""
    what = f"the chat completion ({base}/v1/chat/completions, model {model})"
    if deadline.expired:
        raise StepError(f"no time left for {what}", HINT_SLOW)
    try:
        reply = http.complete(base, chat_request(model, prompt, max_tokens), deadline)
    except HttpFailure as err:
        raise StepError(f"{what} did not complete: {err.detail}", hint_for(err.kind)) from None
    except ChatHttpError as err:
        hint = (
            HINT_LOADING
            if err.status == 503
            else "the server is up but refuses the completion; read the pod's log"
        )
        raise StepError(f"{what} failed: HTTP {err.status}: {err.detail}", hint) from None
    except ChatEngineError as err:
        raise StepError(
            f"{what}: the engine reported an error: {err.detail}", "read the pod's log"
        ) from None
    except ChatProtocolError as err:
        raise StepError(f"{what} is not a chat completion: {err.detail}", HINT_PROTOCOL) from None
    if not reply.reply:
        raise StepError(
            f"{what} returned no text (the content was null or empty)",
            "the server answers but generates nothing; read the pod's log",
        )
    return reply


def chat_completion(
    base: str, model: str, timeout_s: float, max_tokens: int = 32
) -> tuple[str, float, float]:
    """One streamed chat completion: (reply, time to first token, total time)."""
    reply = complete(HttpBackend(), base, model, _deadline(timeout_s), max_tokens=max_tokens)
    return reply.reply, reply.ttft_s, reply.total_s


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
    """Liveness, then one real completion, all within `timeout_s` from now."""
    deadline = _deadline(timeout_s)
    try:
        base = normalize_base_url(base)
    except BadUrl as err:
        raise StepError(f"the health URL is not usable: {err}", HINT_BAD_URL) from None
    start = time.monotonic()
    path, ids = wait_alive(
        http,
        base,
        paths,
        timeout_s,
        on_attempt,
        cancelled or threading.Event(),
        poll_s,
        deadline=deadline,
    )
    waited = time.monotonic() - start
    model = model_name if (not ids or model_name in ids) else ids[0]
    on_attempt(f"{path} answers; sending one chat completion to model {model}")
    if isinstance(http, HttpBackend):
        reply = complete(http, base, model, deadline)
        return HealthResult(
            base, path, model, reply.reply, reply.ttft_s, reply.total_s, waited, reply
        )
    remaining = deadline.remaining()
    if remaining <= 0:
        raise StepError(f"no time left for the chat completion ({base})", HINT_SLOW)
    text, ttft, total = http.chat(base, model, remaining)
    if not (isinstance(text, str) and text.strip()):
        raise StepError(f"the chat completion ({base}) returned no text", "read the pod's log")
    return HealthResult(base, path, model, text.strip(), ttft, total, waited)
