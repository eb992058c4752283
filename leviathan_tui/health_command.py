"""`leviathan health [--bench]`: the check (and the benchmark) from the command line.

Exit 0 healthy, 1 unhealthy (one UNHEALTHY line on stdout, its fix on stderr), 2 bad usage (one
line on stderr). `--timeout` is one deadline for everything the command does. A dry run answers
from the simulated engine and never touches the network.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leviathan_tui.backends.http import BadUrl, HttpBackend, normalize_base_url
from leviathan_tui.errors import StepError, UsageError


def seconds_option(text: str, option: str) -> float:
    """A finite number of seconds above 0 (nan, inf, 0 and negatives are refused)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{option} must be a finite number of seconds above 0, not {text!r}")
    return value


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _saved_url(directory: Path, node_port: int) -> str | None:
    """The URL the last health check used, else the node's address (the state is only read)."""
    from leviathan_tui.records import Health, NodeFacts
    from leviathan_tui.state import State

    state = State.load(directory, read_only=True)
    health, facts = state.get(Health), state.get(NodeFacts)
    if health is not None and health.base_url:
        return health.base_url
    return f"http://{facts.internal_ip}:{node_port}" if facts and facts.internal_ip else None


def _dry_http(config: Any, directory: Path) -> Any:
    """The dry run's engine, over the simulated world earlier dry runs kept (never the network)."""
    from leviathan_tui.commands import dry_run_speed
    from leviathan_tui.dryrun.engine import DryHttp
    from leviathan_tui.dryrun.world import WORLD_FILE, World

    world_dir = directory / "world"
    if not (world_dir / WORLD_FILE).is_file():
        return None
    return DryHttp(config, World(world_dir), [], dry_run_speed())


def run_health_command(
    args: argparse.Namespace, load_config: Callable[[], Any], directory: Path
) -> int:
    from leviathan_tui.health import check_health
    from leviathan_tui.inference import engine_spec

    start = time.monotonic()
    timeout = seconds_option(args.timeout, "--timeout")
    config = load_config()
    url = args.url or config.deploy.health_url or _saved_url(directory, config.deploy.node_port)
    if not url:
        raise UsageError("no URL: pass --url http://NODE:30000 or set deploy.health_url")
    try:
        url = normalize_base_url(url)
    except BadUrl as err:
        raise UsageError(f"--url: {err}") from None
    http: Any = HttpBackend()
    if args.dry_run:
        http = _dry_http(config, directory)
        if http is None:
            print(f"UNHEALTHY {url}: dry run: no simulated engine has been deployed yet")
            sys.stderr.write(
                "  fix: run `leviathan --dry-run` first; a dry run never touches the network\n"
            )
            return 1
    try:
        result = check_health(
            http,
            url,
            paths=engine_spec(config).health_paths,
            timeout_s=timeout,
            model_name=config.deploy.model_name,
            on_attempt=lambda text: sys.stderr.write(f"  {one_line(text)}\n"),
            cancelled=threading.Event(),
            poll_s=min(5.0, max(0.5, timeout / 10)),
        )
    except StepError as err:
        return _failed("UNHEALTHY", url, err)
    dry = " (dry run: simulated engine, no network)" if args.dry_run else ""
    print(
        f"HEALTHY {url} ({result.liveness_path}); model {result.model}; "
        f"time to first token {result.ttft_s:.2f} s{dry}"
    )
    print(f"reply: {one_line(result.reply)[:300]}")
    if not getattr(args, "bench", False):
        return 0
    if args.dry_run:
        print(f"dry run: the serving benchmark would now stream requests to {url}")
        return 0
    from leviathan_tui.serving_bench import render_bench, run_bench

    try:
        bench = run_bench(
            http,
            url,
            result.model,
            max_batch_size=config.deploy.max_batch_size,
            timeout_s=max(0.001, timeout - (time.monotonic() - start)),
            on_progress=lambda text: sys.stderr.write(f"  bench: {text}\n"),
        )
    except StepError as err:
        return _failed("BENCH FAILED", url, err)
    print(render_bench(bench))
    return 0


def _failed(verdict: str, url: str, err: StepError) -> int:
    print(f"{verdict} {url}: {one_line(err.message)}")
    if err.hint:
        sys.stderr.write(f"  fix: {one_line(err.hint)}\n")
    return 1
