"""What each CLI command does, once its arguments are parsed (cli.py only parses)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from leviathan_tui.errors import LeviathanError, UsageError
from leviathan_tui.streams import silence, tell

MAX_DRY_RUN_SPEED = 1000.0


def state_dir(args: argparse.Namespace) -> Path:
    from leviathan_tui.state import refuse_a_file_in_the_way

    if args.state_dir:
        base = args.state_dir.expanduser().absolute()  # helper processes run elsewhere
    else:
        from platformdirs import user_state_dir

        base = Path(user_state_dir("leviathan", appauthor=False))
    directory = base / "dry-run" if args.dry_run else base
    refuse_a_file_in_the_way(directory)
    return directory


def setup_logging(directory: Path) -> None:
    import logging

    try:
        handler = logging.FileHandler(directory / "leviathan.log", encoding="utf-8")
    except OSError as err:
        raise UsageError(
            f"cannot write {directory / 'leviathan.log'}: {err.strerror or err}",
            "pass a writable --state-dir",
        ) from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("leviathan")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def dry_run_speed() -> float:
    raw = os.environ.get("LEVIATHAN_DRY_RUN_SPEED", "1")
    try:
        speed = float(raw)
    except ValueError:
        speed = math.nan
    if not math.isfinite(speed) or not 0 < speed <= MAX_DRY_RUN_SPEED:
        raise UsageError(
            f"LEVIATHAN_DRY_RUN_SPEED={raw!r}: must be a number above 0 and at most {MAX_DRY_RUN_SPEED:g}",
            "1 is real time as the dry run scales it; 10 is ten times faster",
        )
    return speed


def load_settings(args: argparse.Namespace) -> tuple[Any, Any]:
    """(config, replay file or None) — both validated before anything is touched."""
    from leviathan_tui.config import load_config
    from leviathan_tui.replay import ReplayFile

    replay_path = getattr(args, "replay", None)
    replay = ReplayFile.load(replay_path) if replay_path else None
    base, base_source = None, "config"
    if replay is not None:
        base, base_source = replay.config, f"{replay_path}: config"
    elif args.config is None:
        saved = state_dir(args) / "replay.yaml"
        if saved.is_file():
            try:
                base = ReplayFile.load(saved).config
                base_source = f"{saved}: config"
            except LeviathanError:
                base = None
    return load_config(args.config, base, base_source), replay


def load_machine(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.machine:
        return None
    if not args.dry_run:
        raise UsageError("--machine only makes sense with --dry-run")
    from leviathan_tui.agent.lsblk import parse_lsblk
    from leviathan_tui.bounded_input import load_json_file

    data = load_json_file(args.machine, "--machine file")
    try:
        parse_lsblk(data)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(
            f"{args.machine}: not `lsblk -J -b` output: {err}",
            "produce it with: lsblk -J -b -o NAME,PATH,SIZE,TYPE,MODEL,SERIAL,FSTYPE,LABEL,MOUNTPOINTS,ROTA,TRAN",
        ) from None
    return data


def parse_only(args: argparse.Namespace) -> list[str] | None:
    from leviathan_tui.phases import PHASES

    if args.only is None:
        return None
    only = [p.strip() for p in args.only.split(",")]
    if not all(only):
        raise UsageError(
            f"--only {args.only!r}: empty phase name", f"name phases from: {', '.join(PHASES)}"
        )
    unknown = [p for p in only if p not in PHASES]
    if unknown:
        raise UsageError(
            f"--only: unknown phase {', '.join(unknown)}; phases are {', '.join(PHASES)}"
        )
    return only


def make_backends(args: argparse.Namespace, config: Any, directory: Path, on_retry: Any) -> Any:
    if args.dry_run:
        from leviathan_tui.dryrun import dry_backends

        return dry_backends(config, directory, load_machine(args), speed=dry_run_speed())
    from leviathan_tui.backends import real_backends

    return real_backends(config, on_retry=on_retry)


def cmd_run(args: argparse.Namespace) -> int:
    from leviathan_tui.state import SessionLock, State, check_directory

    interactive = getattr(args, "replay", None) is None
    if not interactive:
        config, replay = load_settings(args)
    only = parse_only(args)
    if args.dry_run:
        dry_run_speed()
        load_machine(args)
    elif args.machine:
        raise UsageError("--machine only makes sense with --dry-run")
    directory = state_dir(args)
    check_directory(directory)
    lock = SessionLock(directory)
    lock.acquire()
    loaded: dict[str, Any] = {}
    try:
        setup_logging(directory)
        state = State.load(directory)
        for notice in state.notices:
            sys.stderr.write(f"leviathan: {notice}\n")
        if not interactive:
            return run_replay(args, config, replay, state, only, directory, loaded)

        def load() -> tuple[Any, Any]:
            loaded["config"], _ = load_settings(args)
            loaded["backends"] = make_backends(args, loaded["config"], directory, lambda _: None)
            return loaded["config"], loaded["backends"]

        from leviathan_tui.app import run_app

        command = resume_command(args)
        # the TUI paints its first screen, then reads the configuration: validating it takes
        # a while, and a bad one is reported as it always is, once the TUI has closed
        code, stopped = run_app(
            load=load,
            state=state,
            only=only,
            directory=directory,
            dry_run=args.dry_run,
            resume_command=command,
        )
        config = loaded["config"] if "config" in loaded else load_settings(args)[0]  # quit early
        line = exit_line(state, config, args.dry_run, command, stopped)
        if not tell(sys.stdout, line + "\n"):  # the terminal is gone: the session is saved
            silence(sys.stderr)
        return code
    finally:
        if "backends" in loaded:
            loaded["backends"].close()
        lock.release()


def run_replay(
    args: argparse.Namespace,
    config: Any,
    replay: Any,
    state: Any,
    only: list[str] | None,
    directory: Path,
    loaded: dict[str, Any],
) -> int:
    """The headless bring-up a replay file answers; `loaded` gets the backends to close."""
    import queue

    from leviathan_tui.events import LogLine
    from leviathan_tui.headless import run_headless
    from leviathan_tui.phases import all_steps
    from leviathan_tui.replay import ReplayAnswerer
    from leviathan_tui.runner import Runner

    events: queue.Queue[Any] = queue.Queue()
    backends = loaded["backends"] = make_backends(
        args, config, directory, lambda msg: events.put(LogLine("", msg, "warn"))
    )
    runner = Runner(
        all_steps(),
        config=config,
        state=state,
        backends=backends,
        answerer=ReplayAnswerer(replay),
        emit=events.put,
    )
    runner.select(only)  # validates --only before anything runs
    for line in backends.actions[:1] if args.dry_run else []:
        sys.stderr.write(f"leviathan: {line}\n")
    code = run_headless(runner, events, only)
    if code == 0:
        return code
    code = headless_fallback(args, config, state, replay, events, directory, code)
    if code != 0:
        from leviathan_tui.phases.stop import still_running

        running = still_running(state, config, args.dry_run)
        if running:
            sys.stderr.write(
                f"leviathan: still running: {', '.join(running)}; `leviathan stop` stops it\n"
            )
    return code


def resume_command(args: argparse.Namespace) -> str:
    """The command that runs this session again, as it was started."""
    import shlex

    parts = ["leviathan"]
    if args.dry_run:
        parts.append("--dry-run")
    if args.config:
        parts += ["--config", str(args.config)]
    if args.state_dir:
        parts += ["--state-dir", str(args.state_dir)]
    if getattr(args, "machine", None):
        parts += ["--machine", str(args.machine)]
    if args.only:
        parts += ["--only", args.only]
    return shlex.join(parts)


def exit_line(
    state: Any, config: Any, dry_run: bool, command: str, stopped: list[str] | None = None
) -> str:
    """One line after the TUI: what is done, what still runs (or what was stopped), how to
    resume."""
    from leviathan_tui.phases import all_steps
    from leviathan_tui.phases.stop import still_running

    steps = all_steps()
    done = sum(1 for s in steps if state.status(s.id) in ("done", "skipped"))
    if done == len(steps):
        from leviathan_tui.records import Health

        health = state.get(Health)
        serving = f"; serving {health.base_url}/v1" if health else ""
        return f"leviathan: all {done} steps done{serving}; run `{command}` again to check them"
    if not state.has_progress and stopped is None:
        return f"leviathan: nothing was started; start with: {command}"
    if stopped is not None:
        goes_on = f"; stopped: {', '.join(stopped) or 'nothing was running'}"
    else:
        running = still_running(state, config, dry_run)
        goes_on = f"; still running: {', '.join(running)}" if running else ""
    return f"leviathan: {done} of {len(steps)} steps done{goes_on}; resume with: {command}"


def recorded(directory: Path, *record_types: Any) -> list[Any]:
    """The records a saved session holds (the data disk, the model files), each None when
    absent; read once, without changing anything."""
    from leviathan_tui.state import STATE_FILE, State

    if not (directory / STATE_FILE).is_file():
        return [None] * len(record_types)
    try:
        state = State.load(directory, read_only=True)
    except LeviathanError:
        return [None] * len(record_types)
    return [state.get(record_type) for record_type in record_types]


def cmd_plan(args: argparse.Namespace) -> int:
    """The plan screen's lines, headless; reads only (a dry run uses a throw-away world)."""
    import tempfile

    from leviathan_tui.phases.survey import survey

    config, _ = load_settings(args)
    if args.dry_run:
        from leviathan_tui.dryrun import dry_backends

        kept = state_dir(args) / "world" / "world.json"
        scratch = None if kept.exists() else tempfile.TemporaryDirectory()
        where = state_dir(args) if scratch is None else Path(scratch.name)
        backends = dry_backends(config, where, load_machine(args), speed=dry_run_speed())
    else:
        if args.machine:
            raise UsageError("--machine only makes sense with --dry-run")
        from leviathan_tui.backends import real_backends

        backends = real_backends(config)
        scratch = None
    marks = {"ok": "ok", "info": "  ", "warn": "! ", "error": "✘ "}
    worst = "ok"
    try:
        from leviathan_tui.records import DataDisk, ModelFiles

        disk, files = recorded(state_dir(args), DataDisk, ModelFiles)
        for line in survey(config, backends, args.dry_run, disk, files):
            print(f"{marks[line.level]:<3}{line.topic:<11} {line.text}")
            if line.fix:
                print(f"{'':15}→ {line.fix}")
            if line.level == "error":
                worst = "error"
    finally:
        backends.close()
        if scratch is not None:
            scratch.cleanup()
    if worst == "error":
        sys.stderr.write(
            "leviathan: parts of the plan cannot be read (✘); the run would stop there\n"
        )
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop and remove Leviathan's helper pods and the detached build; the Deployment stays."""
    from leviathan_tui.phases.stop import stop_work
    from leviathan_tui.state import STATE_FILE, SessionLock, State

    config, _ = load_settings(args)
    directory = state_dir(args)
    if args.dry_run and not (directory / STATE_FILE).exists():
        print(f"no saved session in {directory}: no dry run was started there, nothing to stop")
        return 0
    with SessionLock(directory):
        state = State.load(directory)  # what was stopped is recorded: it no longer "may run"
        for notice in state.notices:  # an unreadable session was moved aside: say so
            sys.stderr.write(f"leviathan: {notice}\n")
        backends = make_backends(args, config, directory, None)
        try:
            done = stop_work(config, backends, state, lambda line: print(line))
        finally:
            backends.close()
            state.flush()
    if not done:
        print("nothing was running")
    return 0


def headless_fallback(
    args: argparse.Namespace,
    config: Any,
    state: Any,
    replay: Any,
    events: Any,
    directory: Path,
    code: int,
) -> int:
    """After a failed KTransformers build: deploy llama.cpp instead when the replay file says so
    (`deploy.fallback_engine: llamacpp`), else say how. Returns the exit code of the run."""
    from leviathan_tui.headless import run_headless
    from leviathan_tui.phases import all_steps
    from leviathan_tui.phases.deploy import FALLBACK_ENGINE, FALLBACK_QUESTION, offer_fallback
    from leviathan_tui.replay import ReplayAnswerer
    from leviathan_tui.runner import Runner

    fallback = offer_fallback(config, state)
    if fallback is None:
        return code
    answer = replay.answers.get(FALLBACK_QUESTION)
    if answer is None:
        sys.stderr.write(f"leviathan: {fallback.hint}\n")
        return code
    problem = fallback.question().check(str(answer))
    if problem:
        sys.stderr.write(f"leviathan: answer to {FALLBACK_QUESTION} refused: {problem}\n")
        return code
    if str(answer) != FALLBACK_ENGINE:
        return code
    sys.stderr.write(
        f"leviathan: {fallback.failed_step} failed; deploying llama.cpp's upstream image instead "
        f"({FALLBACK_QUESTION}: {answer})\n"
    )
    from leviathan_tui.events import LogLine

    backends = make_backends(
        args, fallback.config, directory, lambda msg: events.put(LogLine("", msg, "warn"))
    )
    try:
        runner = Runner(
            all_steps(),
            config=fallback.config,
            state=state,
            backends=backends,
            answerer=ReplayAnswerer(replay),
            emit=events.put,
        )
        return run_headless(runner, events, list(fallback.only))
    finally:
        backends.close()


def cmd_render(args: argparse.Namespace) -> int:
    from leviathan_tui.records import ImageRef
    from leviathan_tui.render.bundle import write_all
    from leviathan_tui.state import State

    config, _ = load_settings(args)
    state = State.load(state_dir(args), read_only=True)
    image = state.get(ImageRef)
    for target in write_all(config, args.out, digest=image.digest if image else None):
        print(target)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from leviathan_tui.phases import all_steps
    from leviathan_tui.state import STATE_FILE, SessionLock, State

    directory = state_dir(args)
    if not (directory / STATE_FILE).exists():
        dry = not args.dry_run and (directory / "dry-run" / STATE_FILE).exists()
        print(
            f"no saved session in {directory}" + ("; a dry run's is: add --dry-run" if dry else "")
        )
        return 0
    state = State.load(directory, read_only=True)
    if state.unreadable:
        raise LeviathanError(
            f"the saved session in {directory} cannot be read: {state.unreadable}",
            "the next run moves it aside and starts a new session; `leviathan reset --yes` "
            "forgets it now",
        )
    for notice in state.notices:
        sys.stderr.write(f"leviathan: {notice}\n")
    print(f"session in {directory} (started {state.created_at}, updated {state.updated_at})")
    holder = SessionLock.held_by(directory)
    if holder:
        print(f"  a Leviathan (PID {holder}) is driving it now")
    for step in all_steps():
        rec = state.steps.get(step.id)
        status = rec.status if rec else "pending"
        detail = (rec.summary or rec.error or "") if rec else ""
        if status == "running" and not holder:  # its run was killed before it could save
            status, detail = "interrupted", "its run ended without saving; the next run resumes it"
        elif status == "interrupted" and not detail:
            detail = "the next run resumes it"
        print(f"  {step.id:<22} {status:<11} {detail}")
    if not holder:
        _print_left_running(args, state)
    return 0


def _print_left_running(args: argparse.Namespace, state: Any) -> None:
    """What the last run left going on the node or the build host, as its exit line said."""
    from leviathan_tui.phases.stop import still_running

    try:
        config, _ = load_settings(args)
    except LeviathanError:  # the settings are reported when they are used; status still reads
        return
    running = still_running(state, config, args.dry_run)
    if running:
        print(f"  may still be running: {', '.join(running)}; `leviathan stop` stops it")


def cmd_reset(args: argparse.Namespace) -> int:
    from leviathan_tui.state import STATE_FILE, SessionLock, State

    directory = state_dir(args)
    if not (directory / STATE_FILE).exists():
        print(f"no saved session in {directory}")
        return 0
    what = (
        "the recorded data disk (the next run asks for the disk again)"
        if args.disk
        else "the session"
    )
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("reset asks for confirmation; pass --yes when running from a script")
        answer = input(f"Forget {what} in {directory}? Nothing on the cluster changes. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept")
            return 0
    with SessionLock(directory):
        state = State.load(directory)
        if args.disk:
            forget_disk(state)
        else:
            state.reset()
    print(f"forgot {what} in {directory}")
    return 0


def forget_disk(state: Any) -> None:
    """Forget the data disk and what was proven on it; the files on the disks stay."""
    from leviathan_tui.records import DataDisk, ModelFiles, MountProof

    for cls in (DataDisk, MountProof, ModelFiles):
        state.drop(cls)
    for step_id in ("storage.format", "storage.verify_host", "download.fetch"):
        if step_id in state.steps:
            state.set_status(step_id, "pending", summary="")  # its old result no longer holds
    for key in ("storage.device", "storage.device_serial", "storage.device_size"):
        state.forget_answer(key)
    replay = state.directory / "replay.yaml"
    if replay.is_file():
        from leviathan_tui.replay import ReplayFile

        try:
            recorded = ReplayFile.load(replay)
        except LeviathanError:
            return
        for key in ("storage.device", "storage.device_serial", "storage.device_size"):
            recorded.answers.pop(key, None)
        recorded.save(replay)
