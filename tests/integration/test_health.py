"""The health check against stand-ins that speak each engine's real wire format (tests/support/engines/,
each derived from the engine's source), and against servers that misbehave."""

from __future__ import annotations

import json
import threading
import time

import pytest

from leviathan_tui.backends.http import Deadline, HttpBackend
from leviathan_tui.chat_stream import ChatHttpError
from leviathan_tui.errors import StepError
from leviathan_tui.health import HINT_LOADING, HINT_REFUSED, check_health, model_ids
from tests.support.engine_standin import EngineStandIn
from tests.support.engines.base import StandInEngine


def check(
    url: str, timeout: float, paths=("/health", "/v1/models"), attempts: list[str] | None = None
):
    return check_health(
        HttpBackend(),
        url,
        paths=paths,
        timeout_s=timeout,
        model_name="DeepSeek-V3",
        on_attempt=(attempts if attempts is not None else []).append,
        cancelled=threading.Event(),
        poll_s=0.2,
    )


@pytest.fixture
def engine():
    servers: list[StandInEngine] = []

    def make(flavour: str, **kwargs) -> tuple[StandInEngine, str]:
        server = EngineStandIn(flavour, **kwargs)
        url = server.start()
        servers.append(server)
        return server, url

    yield make
    for s in servers:
        s.stop()


# --- each engine's real shapes -----------------------------------------------------------------


def test_ktransformers_refuses_while_loading_has_no_health_and_ends_with_a_usage_chunk(
    engine,
) -> None:
    server, url = engine("ktransformers", loading_s=0.8)
    attempts: list[str] = []
    result = check(url, 20, attempts=attempts)
    assert any("refused" in a for a in attempts)  # v0.4.1 listens only once the model is loaded
    assert result.liveness_path == "/v1/models"
    assert ("GET", "/health") in server.requests  # probed first; its 404 is not a failure
    assert result.reply == "Ready and listening." and result.model == "DeepSeek-V3"
    reply = result.completion
    assert reply is not None and reply.done and reply.finish_reason == "stop"
    # the usage chunk (choices: []) was read: KT counts the tokens after the first one
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    assert reply.usage.prefill_s is not None and reply.usage.decode_s is not None
    sent = server.chats[0]
    assert sent["model"] == "DeepSeek-V3" and sent["return_speed"] is True
    assert sent["stream"] is True and sent["max_tokens"] > 0


def test_ktransformers_before_v023_bare_model_list(engine) -> None:
    _, url = engine("ktransformers", bare_model_list=True, model="DeepSeek-V3-0324")
    result = check(url, 10)
    assert result.model == "DeepSeek-V3-0324"  # taken from the list: the configured name is absent


def test_ktransformers_answers_422_without_model(engine) -> None:
    _, url = engine("ktransformers")
    with pytest.raises(ChatHttpError) as err:
        HttpBackend().complete(
            url,
            {"messages": [{"role": "user", "content": "hi"}], "stream": True},
            Deadline.after(5),
        )
    assert err.value.status == 422 and "model" in err.value.detail


def test_llamacpp_503_loading_then_200_and_timings(engine) -> None:
    server, url = engine("llamacpp", loading_s=0.8)
    attempts: list[str] = []
    result = check(url, 20, attempts=attempts)
    assert result.liveness_path == "/health"
    assert any("503 Loading model" in a for a in attempts)
    assert result.reply == "Ready and listening." and result.ttft_s <= result.total_s
    reply = result.completion
    assert reply is not None and reply.timings is not None
    assert reply.timings.predicted_n == 4 and reply.timings.prompt_n > 0
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    assert server.chats[0]["stream_options"] == {"include_usage": True}


def test_vllm_refuses_while_loading_then_empty_health_and_include_usage(engine) -> None:
    server, url = engine("vllm", loading_s=0.8)
    attempts: list[str] = []
    result = check(url, 20, attempts=attempts)
    assert any("refused" in a for a in attempts)
    assert result.liveness_path == "/health"
    assert result.reply == "Ready and listening."
    reply = result.completion
    assert reply is not None and reply.usage is not None
    assert reply.usage.prompt_tokens and reply.usage.completion_tokens == 4
    assert reply.timings is None


@pytest.mark.parametrize("flavour", ["ktransformers", "llamacpp", "vllm"])
def test_an_empty_reply_is_unhealthy_on_every_engine(engine, flavour: str) -> None:
    _, url = engine(flavour, reply="")
    with pytest.raises(StepError, match="returned no text"):
        check(url, 10)


@pytest.mark.parametrize("flavour", ["ktransformers", "llamacpp", "vllm"])
def test_a_non_streamed_answer_is_read_on_every_engine(engine, flavour: str) -> None:
    _, url = engine(flavour)
    body = {
        "model": "DeepSeek-V3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }
    reply = HttpBackend().complete(url, body, Deadline.after(5))
    assert reply.reply == "Ready and listening." and not reply.streamed


def test_a_model_list_that_is_html_is_a_clear_error(engine) -> None:
    _, url = engine("ktransformers", garbage=True)
    with pytest.raises(StepError, match="not a model list"):
        check(url, 5)


def test_hanging_server_ends_at_the_deadline(engine) -> None:
    _, url = engine("llamacpp", hang=True)
    start = time.monotonic()
    with pytest.raises(StepError, match="not serving"):
        check(url, 2.0)
    assert time.monotonic() - start < 2.0 + 1.5


def test_connection_refused_has_its_own_hint() -> None:
    start = time.monotonic()
    attempts: list[str] = []
    with pytest.raises(StepError) as err:
        check("http://127.0.0.1:9", 1.5, attempts=attempts)
    assert time.monotonic() - start < 3.5
    assert "not serving after" in err.value.message and "connection refused" in err.value.message
    assert err.value.hint == HINT_REFUSED and "loading" not in attempts[0]


def test_503_gets_the_loading_hint(engine) -> None:
    _, url = engine("llamacpp", loading_s=60)
    with pytest.raises(StepError) as err:
        check(url, 1.0)
    assert err.value.hint == HINT_LOADING


def test_model_list_shapes() -> None:
    assert model_ids([{"id": "a", "name": "a"}]) == ["a"]
    assert model_ids({"data": [{"id": "b", "name": "b"}], "object": "list"}) == ["b"]
    assert model_ids({"models": [{"name": "x"}], "object": "list", "data": [{"id": "c"}]}) == ["c"]
    assert model_ids({"data": [{"id": 5}, "x", {"name": "d"}]}) == ["d"]
    with pytest.raises(ValueError):
        model_ids({"models": []})
    with pytest.raises(ValueError):
        model_ids(json.loads("null"))
