"""Reading chat completion streams: each engine's sequence of chunks, and any input at all."""

from __future__ import annotations

import json
import random

import pytest

from leviathan_tui.chat_stream import (
    ChatEngineError,
    ChatProtocolError,
    ChatStream,
    parse_chat_body,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


def read(lines: list[str]):
    stream = ChatStream(0.0, Clock())
    for line in lines:
        if stream.feed(line):
            break
    return stream.close()


def events(*payloads: object) -> list[str]:
    lines: list[str] = []
    for payload in payloads:
        lines += [payload if isinstance(payload, str) else "data: " + json.dumps(payload), ""]
    return lines


def test_ktransformers_usage_chunk_then_closing_chunk() -> None:
    """v0.4.1 chat.py inner(): content, usage with choices [], closing chunk carrying the usage."""
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 2,
        "total_tokens": 14,
        "prefill_time": 0.5,
        "decode_time": 0.25,
    }
    reply = read(
        events(
            {
                "id": "x",
                "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
                "usage": None,
            },
            {
                "id": "x",
                "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": None}],
                "usage": None,
            },
            {"id": "x", "choices": [], "usage": usage},
            {
                "id": "x",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": usage,
            },
            "data: [DONE]",
        )
    )
    assert reply.reply == "Hi there" and reply.done and reply.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prefill_s == 0.5 and reply.usage.decode_s == 0.25
    assert reply.text_chunks == 2 and 0 < reply.ttft_s < reply.total_s


def test_llamacpp_role_chunk_with_null_content_and_timings_on_the_usage_chunk() -> None:
    timings = {
        "cache_n": 3,
        "prompt_n": 40,
        "prompt_ms": 20.0,
        "predicted_n": 2,
        "predicted_ms": 10.0,
    }
    reply = read(
        events(
            {
                "choices": [
                    {
                        "finish_reason": None,
                        "index": 0,
                        "delta": {"role": "assistant", "content": None},
                    }
                ]
            },
            {"choices": [{"finish_reason": None, "index": 0, "delta": {"content": "Yes"}}]},
            ":",
            {
                "choices": [
                    {"finish_reason": None, "index": 0, "delta": {"reasoning_content": "hmm"}}
                ]
            },
            {"choices": [{"finish_reason": "length", "index": 0, "delta": {}}]},
            {
                "choices": [],
                "usage": {"completion_tokens": 2, "prompt_tokens": 43},
                "timings": timings,
            },
            "data: [DONE]",
        )
    )
    assert reply.text == "Yes" and reply.reasoning == "hmm" and reply.finish_reason == "length"
    assert reply.timings is not None and reply.timings.prompt_n == 40 and reply.timings.cache_n == 3


def test_vllm_first_chunk_has_empty_content_and_finish_on_the_last_token() -> None:
    reply = read(
        events(
            {
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None}
                ]
            },
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": "Ok"},
                        "finish_reason": "stop",
                        "stop_reason": None,
                    }
                ]
            },
            {
                "choices": [],
                "usage": {"prompt_tokens": 9, "total_tokens": 10, "completion_tokens": 1},
            },
            "data: [DONE]",
        )
    )
    assert reply.reply == "Ok" and reply.usage is not None and reply.usage.completion_tokens == 1


def test_reasoning_only_is_a_reply_and_other_indices_are_ignored() -> None:
    reply = read(
        events(
            {"choices": [{"index": 1, "delta": {"content": "not ours"}}]},
            {
                "choices": [
                    {"index": 0, "delta": {"reasoning": "thinking"}, "finish_reason": "stop"}
                ]
            },
            "data: [DONE]",
        )
    )
    assert reply.text == "" and reply.reply == "thinking"


def test_multi_line_data_and_other_fields() -> None:
    lines = [
        "id: 1",
        "event: chunk",
        'data: {"choices": [{"delta":',
        'data: {"content": "A"}}]}',
        "retry: 10",
        "",
    ]
    lines += ["data: [DONE]", ""]
    assert read(lines).reply == "A"


def test_an_error_object_is_the_engines_error() -> None:
    with pytest.raises(ChatEngineError, match="out of memory"):
        read(events({"error": {"message": "out of memory", "code": 500}}, "data: [DONE]"))
    with pytest.raises(ChatEngineError, match="boom"):
        read(events({"error": "boom"}))


def test_a_stream_cut_short_is_not_a_completion() -> None:
    with pytest.raises(ChatProtocolError, match="ended before"):
        read(events({"choices": [{"index": 0, "delta": {"content": "Hal"}}]}))


def test_usage_fields_of_the_wrong_type_are_ignored_not_fatal() -> None:
    reply = read(
        events(
            {
                "choices": [{"delta": {"content": "x"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": True, "prefill_time": "fast"},
            },
            {
                "choices": [],
                "timings": {"prompt_n": -1, "prompt_ms": float("nan")},
                "usage": "none",
            },
            "data: [DONE]",
        )
    )
    assert (
        reply.usage is not None
        and reply.usage.prompt_tokens is None
        and reply.usage.prefill_s is None
    )
    assert reply.timings is None


def test_text_kept_is_capped() -> None:
    chunk = {"choices": [{"delta": {"content": "x" * 10_000}}]}
    reply = read(events(*([chunk] * 20), "data: [DONE]"))
    assert len(reply.text) == 64 << 10


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (
            b'{"choices": [{"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]}',
            "Hi",
        ),
        (b'{"choices": [{"message": {"content": null, "reasoning_content": "r"}}]}', "r"),
        (b'{"choices": []}', None),
        (b'{"choices": [{"message": "Hi"}]}', None),
        (b'{"choices": [{"message": {"content": 3}}]}', None),
        (b"[1, 2]", None),
        (b"<html>", None),
        (b"[" * 50_000, None),
    ],
)
def test_non_streamed_bodies(body: bytes, ok: str | None) -> None:
    if ok is None:
        with pytest.raises(ChatProtocolError):
            parse_chat_body(body, 0.0)
    else:
        assert parse_chat_body(body, 0.0).reply == ok


def _random_value(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 7, 2**70, 1.5, float("inf")])
    if choice == 3:
        return rng.choice(["", "stop", "Hi", "[DONE]", "\u0000", "é"])
    if choice == 4:
        return rng.choice(["content", "delta", "choices", "usage"])
    if choice == 5:
        return 0
    if choice == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    keys = [
        "choices",
        "delta",
        "content",
        "message",
        "usage",
        "timings",
        "error",
        "finish_reason",
        "index",
        "reasoning",
    ]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _random_line(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return ""
    if kind == 1:
        return rng.choice(
            [":", ": ping", "event: x", "id: 3", "data: [DONE]", "data:", "data", "garbage"]
        )
    if kind == 2:
        return "data: " + "".join(rng.choice('{}[]",:0aé\\') for _ in range(rng.randrange(20)))
    value = _random_value(rng)
    if kind > 4:
        value = {
            "choices": [
                {"index": 0, "delta": _random_value(rng), "finish_reason": _random_value(rng)}
            ]
        }
    return "data: " + json.dumps(value)


def test_any_line_sequence_is_a_reply_or_one_protocol_error() -> None:
    """Seeded fuzzing: the reader never raises anything but its own errors."""
    rng = random.Random(20240613)
    outcomes = {"reply": 0, "protocol": 0, "engine": 0}
    for _ in range(3000):
        lines = [_random_line(rng) for _ in range(rng.randrange(1, 12))]
        try:
            read(lines)
            outcomes["reply"] += 1
        except ChatProtocolError as err:
            assert "\n" not in err.detail
            outcomes["protocol"] += 1
        except ChatEngineError as err:
            assert "\n" not in err.detail
            outcomes["engine"] += 1
    assert all(outcomes.values()), outcomes  # the generator reaches every outcome
