"""The real `leviathan` command on a pseudo-terminal: the plan paints before the configuration is
read, and a bad configuration still ends the run with its message and exit 2."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from leviathan_tui.screens.plan import READ_IN_FULL

ROOT = Path(__file__).resolve().parents[2]
ESCAPES = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


class Terminal:
    def __init__(self, args: list[str], size: tuple[int, int] = (120, 40)) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        env = dict(os.environ, TERM="xterm-256color", LEVIATHAN_DRY_RUN_SPEED="1000")
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "leviathan_tui", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.output = b""

    def read_until(self, *needles: bytes, limit_s: float = 30.0) -> bool:
        """True once any of the needles is on the terminal."""

        def seen() -> bool:
            text = ESCAPES.sub(b"", self.output)
            return any(needle in text for needle in needles)

        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if seen():
                return True
            if not self._read(0.2) and self.process.poll() is not None:
                return seen()
        return False

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the child closed the terminal
            return False
        self.output += chunk
        return bool(chunk)

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, limit_s: float = 30.0) -> int:
        deadline = time.monotonic() + limit_s
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        while self._read(0.1):
            pass
        if self.process.poll() is None:
            self.process.kill()
            raise AssertionError("leviathan did not exit")
        return self.process.returncode

    def text(self) -> str:
        return ESCAPES.sub(b"", self.output).decode(errors="replace")

    def hang_up(self) -> None:
        """The terminal goes away (tmux kill-session, a dropped SSH): writes to it now fail with EIO,
        and the kernel sends the session SIGHUP, then SIGCONT (Linux, drivers/tty/tty_jobctrl.c,
        tty_signal_session_leader)."""
        os.close(self.master)
        self.master = -1
        self.process.send_signal(signal.SIGHUP)
        self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.master >= 0:
            os.close(self.master)


def test_the_plan_paints_then_its_lines_then_q_exits_0_with_the_resume_line(
    tmp_path: Path,
) -> None:
    term = Terminal(["--dry-run", "--state-dir", str(tmp_path / "s")])
    try:
        assert term.read_until(b"nothing has changed yet"), term.text()[-2000:]
        # the configuration is read after the first paint; the plan's lines follow it
        assert term.read_until(b"needs 415.2 GB with margin"), term.text()[-2000:]
        term.press(b"q")
        assert term.wait() == 0
        assert "leviathan: nothing was started; start with: leviathan --dry-run" in term.text()
    finally:
        term.close()


def test_tab_then_enter_typed_at_once_on_the_plan_presses_quit_not_start(tmp_path: Path) -> None:
    """Both keys in one read, as a fast typist or a paste sends them: Enter goes where Tab put
    the focus (Quit), not to Start."""
    term = Terminal(["--dry-run", "--state-dir", str(tmp_path / "s")])
    try:
        assert term.read_until(READ_IN_FULL.encode()), term.text()[-2000:]
        term.press(b"\t\r")
        assert term.wait() == 0, term.text()[-2000:]
        assert "leviathan: nothing was started" in term.text()
    finally:
        term.close()


@pytest.mark.parametrize("key", [b"q", b"\x11"], ids=["q", "ctrl+q"])
def test_quitting_at_the_first_paint_before_the_configuration_is_read(
    tmp_path: Path, key: bytes
) -> None:
    term = Terminal(["--dry-run", "--state-dir", str(tmp_path / "s")])
    try:
        assert term.read_until(b"nothing has changed yet"), term.text()[-2000:]
        term.press(key)
        assert term.wait() == 0, term.text()[-2000:]
        assert "leviathan: nothing was started; start with:" in term.text()
        assert "Traceback" not in term.text()
    finally:
        term.close()


def test_a_bad_configuration_is_reported_after_the_tui_closes_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("deploy:\n  gpus: 0\n  colour: blue\n")
    term = Terminal(["--dry-run", "--config", str(config), "--state-dir", str(tmp_path / "s")])
    try:
        assert term.wait() == 2
        text = term.text()
        assert f"{config}: invalid configuration" in text
        assert "deploy.gpus:" in text and "deploy.colour: unknown key" in text
        assert "Traceback" not in text
        after = text.rsplit("invalid configuration", 1)[0]
        assert "resume with" not in after  # no exit line for a run that never started
    finally:
        term.close()


def test_a_closed_terminal_saves_the_session_with_no_step_left_running(tmp_path: Path) -> None:
    state_dir = tmp_path / "s"
    term = Terminal(["--dry-run", "--state-dir", str(state_dir)])
    try:
        # Start is taken once the plan is read in full; an earlier Enter is refused with a notice
        assert term.read_until(READ_IN_FULL.encode()), term.text()[-2000:]
        term.press(b"\r")  # Start: the steps run until the host key and disk questions
        # the steps run until a question: the host key or the disk, whichever comes first
        assert term.read_until(b"asks (", b"Which disk should hold"), term.text()[-2000:]
        term.process.send_signal(signal.SIGHUP)  # what tmux kill-session or a dropped SSH sends
        assert term.wait() == 130, term.text()[-2000:]
        assert "Traceback" not in term.text()
    finally:
        term.close()
    steps = json.loads((state_dir / "dry-run" / "state.json").read_text())["steps"]
    assert steps and "running" not in {record["status"] for record in steps.values()}
    assert "interrupted" in {record["status"] for record in steps.values()}


def test_a_terminal_that_goes_away_ends_the_run_with_130_and_frees_the_session(
    tmp_path: Path,
) -> None:
    """The terminal is gone, so nothing can be drawn or restored: the run stops its steps, saves,
    and exits, instead of waiting for ever on writes that can never complete while holding the
    session's lock."""
    state_dir = tmp_path / "s"
    term = Terminal(["--dry-run", "--state-dir", str(state_dir)])
    try:
        # Start is taken once the plan is read in full; an earlier Enter is refused with a notice
        assert term.read_until(READ_IN_FULL.encode()), term.text()[-2000:]
        term.press(b"\r")
        assert term.read_until(b"asks (", b"Which disk should hold"), term.text()[-2000:]
        term.hang_up()
        try:
            code = term.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("leviathan hung after its terminal went away") from None
        assert code == 130
    finally:
        term.close()
    steps = json.loads((state_dir / "dry-run" / "state.json").read_text())["steps"]
    assert steps and "running" not in {record["status"] for record in steps.values()}
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "leviathan_tui",
            "--dry-run",
            "--state-dir",
            str(state_dir),
            "status",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert "driving it now" not in status.stdout + status.stderr, status.stdout


def test_a_headless_run_whose_terminal_goes_away_stops_as_interrupted_with_130(
    tmp_path: Path,
) -> None:
    """Writes to the hung-up terminal fail with EIO: the run must still stop its steps as an
    interruption, not die with exit 1 and leave the download recorded as failed."""
    state_dir = tmp_path / "s"
    replay = ROOT / "examples" / "dry-run-replay.yaml"
    term = Terminal(["--dry-run", "--replay", str(replay), "--state-dir", str(state_dir)])
    try:
        assert term.read_until(b"download.fetch"), term.text()[-2000:]
        term.hang_up()
        try:
            code = term.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("leviathan hung after its terminal went away") from None
    finally:
        term.close()
    assert code == 130
    steps = json.loads((state_dir / "dry-run" / "state.json").read_text())["steps"]
    statuses = {record["status"] for record in steps.values()}
    assert "interrupted" in statuses and not statuses & {"running", "failed"}, steps
