"""Command line: argument parsing and wiring only. Heavy libraries load later, in the code that
needs them, so `leviathan --help` stays fast."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from leviathan_tui import __version__

EPILOG = """\
exit codes: 0 done; 1 a step failed; 2 bad usage, config or replay file, or the session is
locked; 3 a question the replay file does not answer, or an answer that was refused;
130 interrupted: Ctrl-C, SIGTERM, a closed terminal or stdout, or a quit with steps unfinished
(state saved: run the same command to resume).
"""


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config", type=Path, metavar="FILE", default=default, help="settings (YAML)"
    )
    parser.add_argument(
        "--state-dir",
        type=_directory_argument,
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


def _directory_argument(value: str) -> Path:
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path would mean the current directory; name it")
    return Path(value)


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
    render.add_argument("--out", type=_directory_argument, required=True, metavar="DIR")
    plan = sub.add_parser(
        "plan", help="print where Leviathan would act and what it would do (reads only)"
    )
    _common(plan, suppress=True)
    plan.add_argument(
        "--machine",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS,  # else it would hide a --machine given before `plan`
        help="with --dry-run: the node's disks",
    )
    stop = sub.add_parser(
        "stop", help="stop Leviathan's helper pods and the detached build (the Deployment stays)"
    )
    _common(stop, suppress=True)
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
    health.add_argument(
        "--timeout",
        default="60",
        metavar="SECONDS",
        help="one deadline for the whole command: every path, attempt and request (default 60)",
    )
    health.add_argument(
        "--bench",
        action="store_true",
        help="then measure time to first token, prefill and decode tokens/s at 1 and at "
        "deploy.max_batch_size streams",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from leviathan_tui import signals

    signals.install()  # from the first instruction: a signal is exit 130, never a traceback
    try:
        code = _main(argv)
        signals.leaving()
        return code
    except KeyboardInterrupt:
        signals.counting()  # a second signal while we say so changes nothing
        sys.stderr.write(
            "leviathan: interrupted; the session is saved — run the same command to resume\n"
        )
        sys.stderr.flush()
        sys.stdout.flush()
        # the cleanups ran as the interruption unwound; leave now, or the interpreter reports
        # the interruption as a death by SIGINT instead of exit 130
        os._exit(130)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from leviathan_tui import commands
    from leviathan_tui.errors import LeviathanError

    try:
        if args.command == "render":
            return commands.cmd_render(args)
        if args.command == "plan":
            return commands.cmd_plan(args)
        if args.command == "stop":
            return commands.cmd_stop(args)
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
    except BrokenPipeError:  # `leviathan status | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
        return 0


def cmd_health(args: argparse.Namespace) -> int:
    from leviathan_tui.commands import load_settings, state_dir
    from leviathan_tui.health_command import run_health_command

    return run_health_command(
        args, load_config=lambda: load_settings(args)[0], directory=state_dir(args)
    )


if __name__ == "__main__":
    raise SystemExit(main())
