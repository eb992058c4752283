"""`leviathan --help` wall time, time to the first painted TUI screen, state save cost."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._figure import Figure

ROOT = Path(__file__).resolve().parent.parent

FIRST_PAINT = r"""
import time
t0 = time.perf_counter()
from pathlib import Path
import tempfile
from leviathan_tui.app import LeviathanApp
from leviathan_tui.config import Config
from leviathan_tui.dryrun import dry_backends
from leviathan_tui.state import State

import leviathan_tui.app

class Probe(LeviathanApp):
    CSS_PATH = str(Path(leviathan_tui.app.__file__).parent / "app.tcss")

    def read_plan(self):  # the plan screen's first paint, before its lines are read
        self.call_after_refresh(self._painted)

    def _painted(self):
        print(f"{time.perf_counter() - t0:.4f}", flush=True)
        self.exit(0)

config = Config()
directory = Path(tempfile.mkdtemp())
app = Probe(config=config, state=State.load(directory), backends=dry_backends(config, directory),
            only=None, directory=directory, dry_run=True)
app.run(headless=True, size=(120, 40))
"""


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


def first_paint() -> Figure:
    values = []
    for attempt in range(4):  # the first run writes the bytecode cache and is not counted
        out = subprocess.run(
            [sys.executable, "-c", FIRST_PAINT],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
        if attempt:
            values.append(float(out.stdout.strip().splitlines()[-1]))
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
        f"importing Textual alone: {statistics.median(textual):.3f} s",
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
