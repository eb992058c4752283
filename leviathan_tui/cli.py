"""Command line: argument parsing and wiring only. Heavy libraries load later, in the code that
needs them, so `leviathan --help` stays fast."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from leviathan_tui import __version__

EPILOG = """\
exit codes: 0 done; 1 a step failed; 2 bad usage, config or replay file, or the session is
locked; 3 a question the replay file does not answer, or an answer that was refused;
130 interrupted (state saved: run the same command to resume).
"""


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config", type=Path, metavar="FILE", default=default, help="settings (YAML)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        default=default,
        help="where the session is saved (default: ~/.local/state/leviathan)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        default=default if suppress else False,
        help="simulate every backend: no cluster, no SSH, no network",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leviathan",
        description="From a bare Talos GPU node to a DeepSeek-V3 GGUF inference service on port 30000.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"leviathan {__version__}")
    _common(parser, suppress=False)
    parser.add_argument(
        "--machine",
        type=Path,
        metavar="FILE",
        help="with --dry-run: the simulated node's `lsblk -J -b -o ...` output",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="headless: answer from this replay file, print one line per event",
    )
    parser.add_argument(
        "--only",
        metavar="PHASE[,PHASE]",
        help="run just these phases (preflight, storage, download, build, deploy)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    render = sub.add_parser(
        "render", help="write every manifest and the Dockerfile for the current config"
    )
    _common(render, suppress=True)
    render.add_argument("--out", type=Path, required=True, metavar="DIR")
    status = sub.add_parser("status", help="show the saved session's steps")
    _common(status, suppress=True)
    reset = sub.add_parser("reset", help="forget the saved session")
    _common(reset, suppress=True)
    reset.add_argument("--yes", action="store_true", help="do not ask")
    reset.add_argument(
        "--disk",
        action="store_true",
        help="forget only the recorded data disk, to choose a disk again (nothing is formatted)",
    )
    health = sub.add_parser(
        "health", help="check the running service: liveness, then one real completion"
    )
    _common(health, suppress=True)
    health.add_argument("--url", help="base URL (default: from the saved session or config)")
    health.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from leviathan_tui import commands
    from leviathan_tui.errors import EXIT_INTERRUPTED, LeviathanError

    try:
        if args.command == "render":
            return commands.cmd_render(args)
        if args.command == "status":
            return commands.cmd_status(args)
        if args.command == "reset":
            return commands.cmd_reset(args)
        if args.command == "health":
            return cmd_health(args)
        return commands.cmd_run(args)
    except LeviathanError as err:
        sys.stderr.write(f"leviathan: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("leviathan: interrupted\n")
        return EXIT_INTERRUPTED


def cmd_health(args: argparse.Namespace) -> int:
    import threading

    from leviathan_tui.backends.http import HttpBackend
    from leviathan_tui.commands import load_settings, state_dir
    from leviathan_tui.errors import StepError
    from leviathan_tui.health import check_health
    from leviathan_tui.inference import engine_spec
    from leviathan_tui.records import Health, NodeFacts
    from leviathan_tui.state import State

    config, _ = load_settings(args)
    url = args.url or config.deploy.health_url
    if not url:
        state = State.load(state_dir(args), read_only=True)
        health, facts = state.get(Health), state.get(NodeFacts)
        url = health.base_url if health else None
        if not url and facts and facts.internal_ip:
            url = f"http://{facts.internal_ip}:{config.deploy.node_port}"
    if not url:
        sys.stderr.write(
            "leviathan: no URL: pass --url http://NODE:30000 or set deploy.health_url\n"
        )
        return 2
    spec = engine_spec(config)
    try:
        result = check_health(
            HttpBackend(),
            url,
            paths=spec.health_paths,
            timeout_s=args.timeout,
            model_name=config.deploy.model_name,
            on_attempt=lambda text: sys.stderr.write(f"  {text}\n"),
            cancelled=threading.Event(),
            poll_s=min(5.0, max(0.5, args.timeout / 10)),
        )
    except StepError as err:
        print(f"UNHEALTHY {url}: {err.message}")
        if err.hint:
            sys.stderr.write(f"  fix: {err.hint}\n")
        return 1
    print(
        f"HEALTHY {url} ({result.liveness_path}); model {result.model}; time to first token {result.ttft_s:.2f} s"
    )
    print(f"reply: {result.reply}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
