"""`leviathan --help` wall time, time to the first painted TUI screen, state save cost."""

from __future__ import annotations

import fcntl
import os
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from benchmarks._figure import Figure

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # an installed package has its bytecode cached; measure that, not a compile on every start
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def help_wall() -> Figure:
    times = []
    for _ in range(7):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "leviathan_tui", "--help"],
            capture_output=True,
            check=True,
            env=_env(),
        )
        times.append(time.perf_counter() - start)
    bare = []
    for _ in range(7):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
        bare.append(time.perf_counter() - start)
    med, ref = statistics.median(times), statistics.median(bare)
    return Figure(
        "cli.help_wall", med, "s", "<=0.25", f"python -c pass alone: {ref:.3f} s ({med / ref:.1f}x)"
    )


PLAN_TITLE = b"nothing has changed yet"


def _paint_time(size: tuple[int, int] = (120, 40)) -> float:
    """`leviathan --dry-run` on a pseudo-terminal: from the spawn to the plan's title on it."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    directory = tempfile.mkdtemp()
    env = dict(_env(), TERM="xterm-256color")
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "leviathan_tui", "--dry-run", "--state-dir", directory],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen, painted = b"", None
    try:
        while painted is None and time.perf_counter() - start < 30:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 65536)
                if PLAN_TITLE in seen:
                    painted = time.perf_counter() - start
        os.write(master, b"q")
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    if painted is None:
        raise RuntimeError("the plan never appeared on the terminal")
    return painted


def first_paint() -> Figure:
    values = [_paint_time() for _ in range(6)][1:]  # the first run writes the bytecode cache
    textual = []
    for _ in range(3):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import time; t=time.perf_counter(); import textual.app, textual.widgets; print(time.perf_counter()-t)",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        textual.append(float(out.stdout.strip()))
    med = statistics.median(values)
    return Figure(
        "tui.first_paint",
        med,
        "s",
        "<=0.6",
        f"`leviathan --dry-run` on a 120x40 pty, spawn to the plan, median of {len(values)} "
        f"({min(values):.3f}..{max(values):.3f}); importing Textual alone: "
        f"{statistics.median(textual):.3f} s",
    )


def state_save_cost(seconds: float = 5.0, rate: int = 100) -> Figure:
    from leviathan_tui.records import ModelFiles
    from leviathan_tui.state import State

    directory = Path(tempfile.mkdtemp())
    state = State.load(directory)
    cpu = 0.0
    interval = 1.0 / rate
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        c0 = time.process_time()
        state.publish("download.fetch", ModelFiles("F", 9, n * 1_000_000, False), coalesce=True)
        cpu += time.process_time() - c0
        n += 1
        time.sleep(interval)
    wall = time.perf_counter() - start
    percent = 100.0 * cpu / wall
    return Figure(
        "state.save_cpu_at_100_events_per_s",
        percent,
        "%core",
        "<=2",
        f"{n} events, {state.saves} writes in {wall:.1f} s",
    )


def run() -> list[Figure]:
    return [help_wall(), first_paint(), state_save_cost()]
