"""The serving benchmark against the engine stand-ins, whose prefill and decode speeds are set."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leviathan_tui.backends.http import HttpBackend
from leviathan_tui.config import Config
from leviathan_tui.serving_bench import (
    SOURCE_KTRANSFORMERS,
    SOURCE_LLAMACPP,
    SOURCE_WALL_CLOCK,
    bench_rows,
    render_bench,
    run_bench,
)
from tests.conftest import leviathan_cmd, run_env
from tests.support.engine_standin import EngineStandIn
from tests.support.engines.base import StandInEngine
from tests.support.llama_cpp import BUILD_TIMEOUT_S, LlamaServer

PREFILL_TPS = 4000.0
DECODE_TPS = 80.0
TOKENS = 12


@pytest.fixture
def engine() -> Iterator:
    servers: list[StandInEngine] = []

    def make(flavour: str, **kwargs) -> tuple[StandInEngine, str]:
        options = {
            "prefill_tps": PREFILL_TPS,
            "decode_tps": DECODE_TPS,
            "reply_tokens": TOKENS,
            **kwargs,
        }
        server = EngineStandIn(flavour, **options)
        url = server.start()
        servers.append(server)
        return server, url

    yield make
    for server in servers:
        server.stop()


def near(value: float | None, expected: float, tolerance: float) -> bool:
    return value is not None and abs(value - expected) <= tolerance * expected


@pytest.mark.parametrize(
    ("flavour", "source"),
    [
        ("llamacpp", SOURCE_LLAMACPP),
        ("ktransformers", SOURCE_KTRANSFORMERS),
        ("vllm", SOURCE_WALL_CLOCK),
    ],
)
def test_bench_reports_each_engines_speeds_at_1_and_at_the_batch_size(
    engine, flavour: str, source: str
) -> None:
    server, url = engine(flavour, slots=4)
    result = run_bench(
        HttpBackend(), url, "DeepSeek-V3", max_batch_size=3, timeout_s=60, warmup_requests=2
    )
    assert result.sources == (source,)
    assert [level.concurrency for level in result.levels] == [1, 3]
    assert [level.requests for level in result.levels] == [2, 6]
    assert len(server.chats) == 2 + 2 + 6
    single, batch = result.levels
    for level in result.levels:
        # every stream decodes at the stand-in's speed: slots are free, batching is ideal
        assert near(level.decode_tps, DECODE_TPS, 0.35), (flavour, level)
        assert 0 < level.ttft_s < 1
    if source != SOURCE_WALL_CLOCK:
        assert near(single.prefill_tps, PREFILL_TPS, 0.5), single
    else:  # the wall clock adds the round trip: a lower bound
        assert single.prefill_tps is not None and single.prefill_tps < PREFILL_TPS * 1.2
    assert server.max_in_flight == 3
    assert batch.total_decode_tps is not None and single.total_decode_tps is not None
    assert batch.total_decode_tps > 1.8 * single.total_decode_tps  # three streams at once
    table = render_bench(result)
    assert source in table and len(table.splitlines()) == 5
    rows = dict(bench_rows(result))
    assert rows["rates from"] == source and rows["3 streams: decode per stream"].endswith(" tok/s")
    assert rows["1 stream: time to first token (median)"] == f"{single.ttft_s:.2f} s"


def test_streams_beyond_the_slots_wait_and_their_first_token_comes_later(engine) -> None:
    server, url = engine("llamacpp", slots=1)
    result = run_bench(
        HttpBackend(), url, "DeepSeek-V3", max_batch_size=3, timeout_s=60, warmup_requests=0
    )
    single, batch = result.levels
    assert server.max_in_flight == 1
    assert batch.ttft_s > single.ttft_s + 0.5 * TOKENS / DECODE_TPS  # queued behind a whole reply
    assert batch.total_decode_tps is not None and single.total_decode_tps is not None
    assert batch.total_decode_tps < 1.3 * single.total_decode_tps


def test_every_prompt_is_new_to_the_prompt_cache(engine) -> None:
    server, url = engine("llamacpp", slots=1)
    result = run_bench(
        HttpBackend(), url, "DeepSeek-V3", max_batch_size=1, timeout_s=60, warmup_requests=2
    )
    prompts = [chat["messages"][0]["content"] for chat in server.chats]
    assert len(set(prompts)) == len(prompts) == 4
    for sample in result.levels[0].samples:
        assert (
            sample.prompt_tokens is not None and sample.prompt_tokens > 100
        )  # not served from cache


def test_health_bench_prints_the_table(engine, tmp_path: Path) -> None:
    _, url = engine("llamacpp")
    done = subprocess.run(
        leviathan_cmd()
        + ["health", "--bench", "--url", url, "--timeout", "60", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("HEALTHY ") and lines[2].startswith("serving benchmark: ")
    rows = [line.split() for line in lines if re.match(r"^\s+\d+\s+\d+\s", line)]
    assert [row[0] for row in rows] == ["1", "4"]  # deploy.max_batch_size defaults to 4
    assert "bench: warm-up request" in done.stderr


def test_bench_that_runs_out_of_time_fails_within_the_deadline(engine, tmp_path: Path) -> None:
    _, url = engine("vllm", decode_tps=20.0, reply_tokens=10)  # 0.5 s per request
    start = time.monotonic()  # the interpreter's start-up on this machine, now
    subprocess.run(leviathan_cmd() + ["--version"], capture_output=True, env=run_env(), timeout=60)
    startup = time.monotonic() - start
    start = time.monotonic()
    done = subprocess.run(
        leviathan_cmd()
        + ["health", "--bench", "--url", url, "--timeout", "2.5", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=60,
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("HEALTHY ") and "BENCH FAILED" in done.stdout
    assert "Traceback" not in done.stderr
    assert elapsed < 2.5 + 2 * startup + 1.0, (elapsed, startup)  # the deadline, plus start-up


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_bench_against_the_real_llama_server(
    rendered_llama_server: tuple[Config, LlamaServer],
) -> None:
    """llama-server (b11434, CPU) with the rendered llamacpp arguments: --parallel 4 slots."""
    config, server = rendered_llama_server
    server.wait_healthy(300)
    result = run_bench(
        HttpBackend(),
        server.url,
        "DeepSeek-V3",
        max_batch_size=config.deploy.max_batch_size,
        timeout_s=300,
    )
    assert result.sources == (SOURCE_LLAMACPP,)  # every rate from llama.cpp's own timings
    assert [level.concurrency for level in result.levels] == [1, 4]
    for level in result.levels:
        assert level.prefill_tps and level.prefill_tps > 0, level
        assert level.decode_tps and level.decode_tps > 0, level
        assert level.total_decode_tps and level.total_decode_tps > 0, level
        for s in level.samples:
            assert s.source == SOURCE_LLAMACPP
            assert s.prompt_tokens and s.prompt_tokens > 100  # no prompt served from the cache
            assert s.completion_tokens and 0 < s.completion_tokens <= result.max_tokens
    table = render_bench(result)
    lines = table.splitlines()
    assert (
        len(lines) == 5
        and lines[3].split()[:2] == ["1", "2"]
        and lines[4].split()[:2] == ["4", "8"]
    )
    rows = dict(bench_rows(result))
    assert rows["rates from"] == SOURCE_LLAMACPP
    print("\n" + table)
