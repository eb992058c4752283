"""The serving benchmark: the figures an operator asks for once the health check passes.

A few short warm-up requests (the first ones after a load compile kernels and fill caches), then
time to first token, prefill tokens/s and decode tokens/s with 1 stream and with `max_batch_size`
concurrent streams. Rates come from the engine's own measurements where it sends them —
llama.cpp's `timings` (prompt_n, prompt_ms, predicted_n, predicted_ms), KTransformers'
`usage.prefill_time` / `decode_time` (sent when the request sets `return_speed`) — and from the
wall clock otherwise (vLLM: token counts from `stream_options.include_usage`). Every prompt starts
with its own nonce, so no engine can serve it from its prefix cache.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

from leviathan_tui.backends.http import Deadline, HttpBackend
from leviathan_tui.chat_stream import ChatReply
from leviathan_tui.errors import StepError
from leviathan_tui.health import HINT_SLOW, complete

SOURCE_LLAMACPP = "llama.cpp timings"
SOURCE_KTRANSFORMERS = "KTransformers usage"
SOURCE_WALL_CLOCK = "wall clock"

BENCH_TEXT = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, carrying a lamp, a "
    "notebook and a flask of tea. From the gallery he could see the harbour, the fishing boats "
    "coming home, the long breakwater and the dark line of the cliffs to the north. He wrote down "
    "the wind, the height of the waves, the ships that passed and the colour of the sky. In winter "
    "the storms came in from the west and the glass shook in its frame; in summer the evenings were "
    "long and quiet and the gulls slept on the rocks below. He had kept the light for thirty years "
    "and had never once let it go out."
)


@dataclass(frozen=True)
class StreamSample:
    """One request's figures."""

    concurrency: int
    ttft_s: float
    total_s: float
    prompt_tokens: int | None
    completion_tokens: int | None
    prefill_tps: float | None
    decode_tps: float | None
    source: str


@dataclass(frozen=True)
class LevelResult:
    """All requests run with `concurrency` streams in flight."""

    concurrency: int
    requests: int
    wall_s: float
    ttft_s: float  # median
    prefill_tps: float | None  # median per stream
    decode_tps: float | None  # median per stream
    total_decode_tps: float | None  # every stream's tokens over the level's wall time
    samples: tuple[StreamSample, ...]


@dataclass(frozen=True)
class BenchResult:
    base_url: str
    model: str
    warmup_requests: int
    max_tokens: int
    levels: tuple[LevelResult, ...]
    sources: tuple[str, ...]  # where the rates came from


def bench_prompt() -> str:
    return (
        f"Request {uuid.uuid4().hex[:12]}. Continue this story for a few sentences.\n\n{BENCH_TEXT}"
    )


def _rate(tokens: int | None, seconds: float | None) -> float | None:
    if not tokens or not seconds or seconds <= 0:
        return None
    return tokens / seconds


def sample(reply: ChatReply, concurrency: int) -> StreamSample:
    """The figures of one reply, from the engine's own timing fields when it sent them."""
    usage = reply.usage
    timings = reply.timings
    if timings is not None:
        return StreamSample(
            concurrency,
            reply.ttft_s,
            reply.total_s,
            timings.prompt_n,
            timings.predicted_n,
            _rate(timings.prompt_n, timings.prompt_ms / 1000),
            _rate(timings.predicted_n, timings.predicted_ms / 1000),
            SOURCE_LLAMACPP,
        )
    if usage is not None and usage.prefill_s is not None and usage.decode_s is not None:
        return StreamSample(
            concurrency,
            reply.ttft_s,
            reply.total_s,
            usage.prompt_tokens,
            usage.completion_tokens,
            _rate(usage.prompt_tokens, usage.prefill_s),
            _rate(usage.completion_tokens, usage.decode_s),
            SOURCE_KTRANSFORMERS,
        )
    prompt_tokens = usage.prompt_tokens if usage else None
    completion = usage.completion_tokens if usage and usage.completion_tokens else reply.text_chunks
    decode_s = reply.total_s - reply.ttft_s
    return StreamSample(
        concurrency,
        reply.ttft_s,
        reply.total_s,
        prompt_tokens,
        completion or None,
        _rate(prompt_tokens, reply.ttft_s),  # includes the trip and any queueing: a lower bound
        _rate(completion - 1, decode_s) if completion and completion > 1 else None,
        SOURCE_WALL_CLOCK,
    )


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def level_result(concurrency: int, samples: list[StreamSample], wall_s: float) -> LevelResult:
    tokens = sum(s.completion_tokens or 0 for s in samples)
    return LevelResult(
        concurrency,
        len(samples),
        wall_s,
        statistics.median(s.ttft_s for s in samples),
        _median([s.prefill_tps for s in samples]),
        _median([s.decode_tps for s in samples]),
        tokens / wall_s if tokens and wall_s > 0 else None,
        tuple(samples),
    )


def run_bench(
    http: HttpBackend,
    base: str,
    model: str,
    *,
    max_batch_size: int,
    timeout_s: float,
    warmup_requests: int = 3,
    rounds: int = 2,
    max_tokens: int = 32,
    on_progress: Callable[[str], None] = lambda _: None,
) -> BenchResult:
    """Warm up, then measure at 1 and at `max_batch_size` streams; all within `timeout_s`."""
    try:
        deadline = Deadline.after(timeout_s)
    except ValueError as err:
        raise StepError(f"the benchmark's timeout is not usable: {err}", HINT_SLOW) from None
    base = base.rstrip("/")

    def one() -> ChatReply:
        return complete(http, base, model, deadline, prompt=bench_prompt(), max_tokens=max_tokens)

    for n in range(warmup_requests):
        on_progress(f"warm-up request {n + 1} of {warmup_requests}")
        one()
    levels = []
    for concurrency in sorted({1, max(1, max_batch_size)}):
        on_progress(f"{rounds * concurrency} requests with {concurrency} in flight")
        start = time.monotonic()
        replies = _concurrently(one, concurrency, rounds * concurrency)
        wall = time.monotonic() - start
        levels.append(level_result(concurrency, [sample(r, concurrency) for r in replies], wall))
    sources = tuple(sorted({s.source for level in levels for s in level.samples}))
    return BenchResult(base, model, warmup_requests, max_tokens, tuple(levels), sources)


def _concurrently(job: Callable[[], ChatReply], width: int, count: int) -> list[ChatReply]:
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="leviathan-bench") as pool:
        futures = [pool.submit(job) for _ in range(count)]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                for other in futures:
                    other.cancel()
                raise future.exception()  # type: ignore[misc]
        return [f.result() for f in futures]


def _figure(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def bench_rows(result: BenchResult) -> tuple[tuple[str, str], ...]:
    """The figures as (label, value) pairs: the shape `records.Health.bench` keeps."""
    rows = [
        ("warm-up requests", str(result.warmup_requests)),
        ("rates from", ", ".join(result.sources)),
    ]
    for level in result.levels:
        streams = f"{level.concurrency} stream" + ("s" if level.concurrency > 1 else "")
        rows += [
            (f"{streams}: time to first token (median)", f"{level.ttft_s:.2f} s"),
            (f"{streams}: prefill", f"{_figure(level.prefill_tps)} tok/s"),
            (f"{streams}: decode per stream", f"{_figure(level.decode_tps)} tok/s"),
            (f"{streams}: decode, all streams", f"{_figure(level.total_decode_tps)} tok/s"),
        ]
    return tuple(rows)


def render_bench(result: BenchResult) -> str:
    """A short table for a terminal."""
    lines = [
        f"serving benchmark: {result.base_url}, model {result.model}",
        f"  {result.warmup_requests} warm-up requests, then each row; {result.max_tokens} tokens asked per request; "
        f"rates from {', '.join(result.sources) or 'nothing'}",
        f"  {'streams':>7}  {'requests':>8}  {'TTFT median':>11}  {'prefill tok/s':>13}  "
        f"{'decode tok/s/stream':>19}  {'decode tok/s total':>18}",
    ]
    for level in result.levels:
        lines.append(
            f"  {level.concurrency:>7}  {level.requests:>8}  {level.ttft_s:>9.2f} s  "
            f"{_figure(level.prefill_tps):>13}  {_figure(level.decode_tps):>19}  "
            f"{_figure(level.total_decode_tps):>18}"
        )
    return "\n".join(lines)
