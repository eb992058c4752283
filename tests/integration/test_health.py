"""The health check against local servers that behave like the engines."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from leviathan_tui.backends.http import HttpBackend
from leviathan_tui.errors import StepError
from leviathan_tui.health import check_health, model_ids
from tests.conftest import leviathan_cmd, run_env
from tests.support.engine_standin import EngineStandIn


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
        poll_s=0.3,
    )


@pytest.fixture
def engine():
    servers: list[EngineStandIn] = []

    def make(**kwargs) -> tuple[EngineStandIn, str]:
        server = EngineStandIn(**kwargs)
        url = server.start()
        servers.append(server)
        return server, url

    yield make
    for s in servers:
        s.stop()


def test_llamacpp_like_503_then_200(engine) -> None:
    server, url = engine(flavour="llamacpp", loading_s=1.0)
    attempts: list[str] = []
    result = check(url, 20, attempts=attempts)
    assert result.liveness_path == "/health"
    assert any("loading" in a and "503" in a for a in attempts)
    assert result.reply == "Ready and listening." and result.ttft_s <= result.total_s
    assert server.chats[0]["model"] == "DeepSeek-V3" and server.chats[0]["max_tokens"] > 0


def test_ktransformers_like_404_health_then_models_then_real_chat(engine) -> None:
    server, url = engine(flavour="ktransformers", loading_s=0.8)
    result = check(url, 20)
    assert result.liveness_path == "/v1/models"
    assert ("GET", "/health") in server.requests  # probed first, 404 is not a failure
    assert result.reply == "Ready and listening."
    assert result.model == "DeepSeek-V3"


def test_connection_refused_is_loading_until_timeout(engine) -> None:
    start = time.monotonic()
    attempts: list[str] = []
    with pytest.raises(StepError) as err:
        check("http://127.0.0.1:9", 1.5, attempts=attempts)
    assert time.monotonic() - start < 5
    assert "not serving after" in err.value.message and "connection refused" in err.value.message
    assert attempts and "loading" in attempts[0]


def test_hanging_server_honours_the_timeout(engine) -> None:
    _, url = engine(hang=True)
    start = time.monotonic()
    with pytest.raises(StepError, match="not serving"):
        check(url, 2.0)
    assert time.monotonic() - start < 15


def test_garbage_json_is_a_clear_error(engine) -> None:
    _, url = engine(flavour="ktransformers", garbage=True)
    with pytest.raises(StepError, match="not a model list"):
        check(url, 5)


def test_both_model_list_shapes() -> None:
    assert model_ids([{"id": "a", "name": "a"}]) == ["a"]
    assert model_ids({"object": "list", "data": [{"id": "b"}]}) == ["b"]
    with pytest.raises(ValueError):
        model_ids({"models": []})


def test_health_command_exit_codes(engine) -> None:
    _, url = engine(flavour="ktransformers")
    ok = subprocess.run(
        leviathan_cmd() + ["health", "--url", url, "--timeout", "10"],
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "HEALTHY" in ok.stdout and "time to first token" in ok.stdout
    bad = subprocess.run(
        leviathan_cmd() + ["health", "--url", "http://127.0.0.1:9", "--timeout", "1"],
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=60,
    )
    assert bad.returncode == 1 and "UNHEALTHY" in bad.stdout
