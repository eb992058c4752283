"""The detached job's shell (render/remote_job.py), run by the real /bin/sh in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from leviathan_tui.render.remote_job import job_script, start_command, status_command, stop_command


def sh(script: str, cwd: Path) -> str:
    return subprocess.run(
        ["sh", "-c", script], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def start(directory: Path, command: str) -> None:
    (directory / "job.sh").write_text(job_script("job", command))
    assert sh(start_command(str(directory), "job"), directory).strip() == "started"


def wait_status(directory: Path) -> list[str]:
    while True:
        words = sh(status_command(str(directory), "job"), directory).split()
        if words[0] != "running":
            return words


def test_a_job_that_ends_during_the_liveness_check_is_done_not_absent(tmp_path: Path) -> None:
    # The job writes its exit code and ends between the status's first look for the exit file and
    # its liveness check. `kill` here is a shell function standing in for that moment.
    (tmp_path / "job.pid").write_text("999999999\n")
    racing_kill = "kill() { echo 0 > job.exit; return 1; }; "
    assert sh(racing_kill + status_command(str(tmp_path), "job"), tmp_path).split() == ["done", "0"]


def test_a_job_with_no_exit_code_and_no_process_is_absent(tmp_path: Path) -> None:
    (tmp_path / "job.pid").write_text("999999999\n")
    assert sh(status_command(str(tmp_path), "job"), tmp_path).split() == ["absent"]


def test_short_jobs_polled_at_once_are_never_seen_absent(tmp_path: Path) -> None:
    seen = []
    for i in range(40):
        directory = tmp_path / str(i)
        directory.mkdir()
        start(directory, f"sleep 0.0{i % 3}; exit {i % 4}")
        seen.append(wait_status(directory))
    assert seen == [["done", str(i % 4)] for i in range(40)]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_stopped_job_is_done_with_143_and_keeps_its_log(tmp_path: Path) -> None:
    start(tmp_path, "echo building; sleep 30; echo built")
    pgid = int((tmp_path / "job.pid").read_text())
    assert sh(status_command(str(tmp_path), "job"), tmp_path).split() == ["running"]
    log = tmp_path / "job.log"
    deadline = time.monotonic() + 10  # start returns once the job is launched, not once it runs
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sh(stop_command(str(tmp_path), "job"), tmp_path).strip() == "stopped"
    deadline = time.monotonic() + 5  # the shell's children too: the builder must not build on
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(pgid)
    assert wait_status(tmp_path) == ["done", "143"]
    assert log.read_text() == "building\n"
    assert sh(stop_command(str(tmp_path), "job"), tmp_path).strip() == "absent"


def test_a_job_stopped_as_soon_as_it_is_launched_does_not_run_on(tmp_path: Path) -> None:
    """An operator's stop can come before the job has even set up its process group."""
    for attempt in range(3):
        directory = tmp_path / str(attempt)
        directory.mkdir()
        start(directory, "sleep 2; echo built > built")
        pgid = int((directory / "job.pid").read_text())
        assert sh(stop_command(str(directory), "job"), directory).strip() == "stopped"
        assert wait_status(directory) == ["done", "143"]
        deadline = time.monotonic() + 6
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not group_alive(pgid)
    time.sleep(2.5)  # had any of them run on, its command would have finished by now
    assert not list(tmp_path.glob("*/built"))
