"""Command line: argument parsing and wiring only. Heavy libraries load later, in the code that
needs them, so `leviathan --help` stays fast."""

from __future__ import annotations

import argparse
import os
import signal
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
    health = sub.add_parser(
        "health", help="check the running service: liveness, then one real completion"
    )
    _common(health, suppress=True)
    health.add_argument("--url", help="base URL (default: from the saved session or config)")
    health.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS")
    return parser


def state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir:
        base = args.state_dir.expanduser()
    else:
        from platformdirs import user_state_dir

        base = Path(user_state_dir("leviathan", appauthor=False))
    return base / "dry-run" if args.dry_run else base


def _setup_logging(directory: Path) -> None:
    import logging

    directory.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(directory / "leviathan.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("leviathan")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from leviathan_tui.errors import EXIT_INTERRUPTED, LeviathanError

    try:
        if args.command == "render":
            return cmd_render(args)
        if args.command == "status":
            return cmd_status(args)
        if args.command == "reset":
            return cmd_reset(args)
        if args.command == "health":
            return cmd_health(args)
        return cmd_run(args)
    except LeviathanError as err:
        sys.stderr.write(f"leviathan: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("leviathan: interrupted\n")
        return EXIT_INTERRUPTED


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """(config, replay file or None) — both validated before anything is touched."""
    from leviathan_tui.config import load_config
    from leviathan_tui.errors import LeviathanError
    from leviathan_tui.replay import ReplayFile

    replay = ReplayFile.load(args.replay) if getattr(args, "replay", None) else None
    base = replay.config if replay else None
    if base is None and not getattr(args, "replay", None):
        saved = state_dir(args) / "replay.yaml"
        if args.config is None and saved.exists():
            try:
                base = ReplayFile.load(saved).config
            except LeviathanError:
                base = None
    return load_config(args.config, base), replay


def _machine(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.machine:
        return None
    from leviathan_tui.agent.lsblk import parse_lsblk
    from leviathan_tui.errors import UsageError

    if not args.dry_run:
        raise UsageError("--machine only makes sense with --dry-run")
    import json

    try:
        data = json.loads(args.machine.read_text(encoding="utf-8"))
        parse_lsblk(data)
    except OSError as err:
        raise UsageError(f"{args.machine}: cannot read: {err.strerror}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{args.machine}: not `lsblk -J -b` output: {err}") from None
    return data


def cmd_run(args: argparse.Namespace) -> int:
    import queue

    from leviathan_tui.backends import dry_backends, real_backends
    from leviathan_tui.engine import Engine
    from leviathan_tui.errors import UsageError
    from leviathan_tui.events import LogLine
    from leviathan_tui.phases import PHASES, all_steps
    from leviathan_tui.state import SessionLock, State

    config, replay = _load(args)
    machine = _machine(args)
    only = [p.strip() for p in args.only.split(",")] if args.only else None
    if only:
        unknown = [p for p in only if p not in PHASES]
        if unknown:
            raise UsageError(
                f"--only: unknown phase {', '.join(unknown)}; phases are {', '.join(PHASES)}"
            )
    directory = state_dir(args)
    lock = SessionLock(directory)
    lock.acquire()
    try:
        _setup_logging(directory)
        state = State.load(directory)
        for notice in state.notices:
            sys.stderr.write(f"leviathan: {notice}\n")
        events: queue.Queue[Any] = queue.Queue()
        if args.dry_run:
            backends = dry_backends(
                config, machine, speed=float(os.environ.get("LEVIATHAN_DRY_RUN_SPEED", "1"))
            )
        else:
            backends = real_backends(
                config, on_retry=lambda msg: events.put(LogLine("", msg, "warn"))
            )
        if replay is not None:
            from leviathan_tui.headless import run_headless
            from leviathan_tui.replay import ReplayAnswerer

            engine = Engine(
                all_steps(),
                config=config,
                state=state,
                backends=backends,
                answerer=ReplayAnswerer(replay),
                emit=events.put,
            )
            engine.select(only)  # validates --only before anything runs
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
            return run_headless(engine, events, only)
        from leviathan_tui.app import run_app

        return run_app(
            config=config,
            state=state,
            backends=backends,
            only=only,
            directory=directory,
            dry_run=args.dry_run,
        )
    finally:
        lock.release()


def cmd_render(args: argparse.Namespace) -> int:
    from leviathan_tui.manifests import render_all

    config, _ = _load(args)
    state = None
    from leviathan_tui.state import State

    directory = state_dir(args)
    if (directory / "state.json").exists():
        state = State.load(directory)
    digest = state.artifact("build.push", "digest") if state else None
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all(config, digest=digest).items():
        (out / name).write_text(text, encoding="utf-8")
        print(out / name)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from leviathan_tui.phases import all_steps
    from leviathan_tui.state import State

    directory = state_dir(args)
    if not (directory / "state.json").exists():
        print(f"no saved session in {directory}")
        return 0
    state = State.load(directory)
    for notice in state.notices:
        sys.stderr.write(f"leviathan: {notice}\n")
    print(f"session in {directory} (started {state.created_at}, updated {state.updated_at})")
    for step in all_steps():
        rec = state.steps.get(step.id)
        status = rec.status if rec else "pending"
        detail = (rec.summary or rec.error or "") if rec else ""
        print(f"  {step.id:<22} {status:<8} {detail}")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from leviathan_tui.state import SessionLock, State

    directory = state_dir(args)
    if not (directory / "state.json").exists():
        print(f"no saved session in {directory}")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            from leviathan_tui.errors import UsageError

            raise UsageError("reset asks for confirmation; pass --yes when running from a script")
        answer = input(f"Forget the session in {directory}? Nothing on the cluster changes. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept")
            return 0
    with SessionLock(directory):
        State.load(directory).reset()
    print(f"forgot the session in {directory}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    import threading

    from leviathan_tui.backends.http import HttpBackend
    from leviathan_tui.engines import engine_spec
    from leviathan_tui.errors import StepError
    from leviathan_tui.health import check_health
    from leviathan_tui.state import State

    config, _ = _load(args)
    url = args.url or config.deploy.health_url
    if not url:
        directory = state_dir(args)
        state = State.load(directory) if (directory / "state.json").exists() else None
        ip = state.artifact("preflight.node", "internal_ip") if state else None
        url = state.artifact("deploy.health", "base_url") if state else None
        if not url and ip:
            url = f"http://{ip}:{config.deploy.node_port}"
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
