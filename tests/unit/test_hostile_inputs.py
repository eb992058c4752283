"""Bad input and faults, as an operator (or a broken disk) produces them: each ends in one clear
line and the documented exit code — never a traceback, never a hang."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, leviathan_cmd, run_env

REPLAY = ROOT / "examples" / "dry-run-replay.yaml"


def run(args: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        leviathan_cmd() + args,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=run_env(**{"LEVIATHAN_DRY_RUN_SPEED": "20", **env}),
    )


def clean(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The run ended with `code` and said why on stderr, without a traceback."""
    assert result.returncode == code, (result.returncode, result.stdout[-800:], result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.strip(), "a refusal says why"
    return result.stderr


def nested(depth: int, json_style: bool) -> str:
    return (
        "[" * depth + "]" * depth
        if json_style
        else "a:\n" + "".join("  " * i + "b:\n" for i in range(1, depth)) + "  " * depth + "1\n"
    )


# --- readers: config, replay, --machine ------------------------------------------------------


@pytest.mark.parametrize("where", ["config", "replay"])
def test_deeply_nested_yaml_is_refused_with_exit_2(tmp_path: Path, where: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("x: " + "[" * 5000 + "]" * 5000 + "\n")
    args = ["--dry-run", "--state-dir", str(tmp_path / "s")]
    args += ["--config", str(path)] if where == "config" else ["--replay", str(path)]
    err = clean(run(args + ["--only", "build"]), 2)
    assert str(path) in err and "nested deeper" in err


def test_deeply_nested_machine_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"blockdevices": ' + "[" * 100000 + "]" * 100000 + "}")
    err = clean(
        run(
            [
                "--dry-run",
                "--machine",
                str(path),
                "--state-dir",
                str(tmp_path / "s"),
                "--replay",
                str(REPLAY),
            ]
        ),
        2,
    )
    assert "nested deeper" in err


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_as_config_is_refused_by_name(tmp_path: Path, device: str) -> None:
    err = clean(
        run(["--dry-run", "--config", device, "--state-dir", str(tmp_path), "--only", "build"]), 2
    )
    assert "character device" in err


def test_a_fifo_as_config_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    start = time.monotonic()
    err = clean(
        run(
            [
                "--dry-run",
                "--config",
                str(fifo),
                "--state-dir",
                str(tmp_path / "s"),
                "--only",
                "build",
            ],
            timeout=30,
        ),
        2,
    )
    assert "FIFO" in err and time.monotonic() - start < 20


def test_a_directory_as_replay_is_refused(tmp_path: Path) -> None:
    err = clean(
        run(["--dry-run", "--replay", str(tmp_path), "--state-dir", str(tmp_path / "s")]), 2
    )
    assert "directory" in err


def test_a_huge_config_is_refused_on_the_bytes_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (2 * 1024 * 1024) + "\n")
    err = clean(
        run(
            [
                "--dry-run",
                "--config",
                str(path),
                "--state-dir",
                str(tmp_path / "s"),
                "--only",
                "build",
            ]
        ),
        2,
    )
    assert "larger than" in err


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    path.write_text("\n".join(lines) + "\n")
    err = clean(
        run(
            [
                "--dry-run",
                "--config",
                str(path),
                "--state-dir",
                str(tmp_path / "s"),
                "--only",
                "build",
            ]
        ),
        2,
    )
    assert "aliases" in err


@pytest.mark.parametrize(
    "entries",
    [[1, 2], ["nvme0n1"], [None], [{"name": 5, "size": "big"}], [{"children": "x"}]],
)
def test_machine_entries_that_are_not_devices_are_refused(tmp_path: Path, entries: list) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"blockdevices": entries}))
    err = clean(
        run(
            [
                "--dry-run",
                "--machine",
                str(path),
                "--state-dir",
                str(tmp_path / "s"),
                "--replay",
                str(REPLAY),
            ]
        ),
        2,
    )
    assert str(path) in err


# --- config and replay strictness ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("ssh:\n  port: true\n", "ssh.port"),
        ("cluster:\n  node_name: ''\n", "cluster.node_name"),
        ("cluster:\n  node_name: '   '\n", "cluster.node_name"),
        ("build:\n  image: 'Not An Image!'\n", "build.image"),
        ("build:\n  base_image: 'UPPER/case:tag'\n", "build.base_image"),
        ("deploy:\n  health_timeout_s: .inf\n", "deploy.health_timeout_s"),
        ("cluster:\n  pod_timeout_s: .nan\n", "cluster.pod_timeout_s"),
        ("model:\n  parallel: '3'\n", "model.parallel"),
        ("build:\n  enable_deepgemm: true\n", "build.enable_deepgemm"),
        ("registry:\n  address: 'http://x:5000'\n", "registry.address"),
    ],
)
def test_config_is_strict(tmp_path: Path, yaml_text: str, needle: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    err = clean(
        run(
            [
                "--dry-run",
                "--config",
                str(path),
                "--state-dir",
                str(tmp_path / "s"),
                "--only",
                "build",
            ]
        ),
        2,
    )
    assert needle in err and str(path) in err


def test_a_bad_config_value_in_a_replay_file_is_blamed_on_the_replay_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nconfig:\n  ssh:\n    port: 70000\nanswers: {}\n")
    err = clean(run(["--dry-run", "--replay", str(path), "--state-dir", str(tmp_path / "s")]), 2)
    assert f"{path}: config" in err and "ssh.port" in err


def test_an_unknown_answer_id_is_refused_with_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nanswers:\n  storage.devcie: /dev/nvme1n1\n")
    err = clean(run(["--dry-run", "--replay", str(path), "--state-dir", str(tmp_path / "s")]), 2)
    assert "storage.devcie" in err and "did you mean storage.device" in err


def test_a_secret_in_a_replay_file_is_refused_with_where_secrets_come_from(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nanswers:\n  ssh.passphrase: hunter2\n")
    err = clean(run(["--dry-run", "--replay", str(path), "--state-dir", str(tmp_path / "s")]), 2)
    assert "ssh-agent" in err and "hunter2" not in err


@pytest.mark.parametrize("value", ["true", "[1, 2]", "{a: 1}", "null", "1.5"])
def test_a_wrong_type_answer_is_refused_with_exit_2(tmp_path: Path, value: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(f"version: 1\nanswers:\n  storage.device: {value}\n")
    err = clean(run(["--dry-run", "--replay", str(path), "--state-dir", str(tmp_path / "s")]), 2)
    assert "answers.storage.device" in err


@pytest.mark.parametrize("only", ["", ",", " , build"])
def test_an_empty_only_is_refused(tmp_path: Path, only: str) -> None:
    err = clean(
        run(["--dry-run", "--replay", str(REPLAY), "--state-dir", str(tmp_path), "--only", only]), 2
    )
    assert "empty phase name" in err


@pytest.mark.parametrize("speed", ["abc", "0", "-3", "nan", "inf", "1e9"])
def test_dry_run_speed_is_validated(tmp_path: Path, speed: str) -> None:
    err = clean(
        run(
            ["--dry-run", "--replay", str(REPLAY), "--state-dir", str(tmp_path)],
            LEVIATHAN_DRY_RUN_SPEED=speed,
        ),
        2,
    )
    assert "LEVIATHAN_DRY_RUN_SPEED" in err


# --- the state directory ---------------------------------------------------------------------------


def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    err = clean(run(["--replay", str(REPLAY), "--dry-run", "--state-dir", str(target)]), 2)
    assert f"{target} is a file, not a directory" in err


@pytest.mark.parametrize("name", ["state.json", "session.lock"])
def test_state_files_that_are_directories_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "dry-run" / name).mkdir(parents=True)
    err = clean(run(["--replay", str(REPLAY), "--dry-run", "--state-dir", str(tmp_path)]), 2)
    assert name in err and "not a regular file" in err


def test_a_read_only_state_dir_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "ro" / "dry-run"
    target.mkdir(parents=True)
    if os.geteuid() == 0:  # root writes through modes: a read-only filesystem it is
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], check=True
        )
    else:
        target.chmod(0o500)
    try:
        err = clean(
            run(["--replay", str(REPLAY), "--dry-run", "--state-dir", str(tmp_path / "ro")]), 2
        )
        assert str(target) in err
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(target)], check=False)


def test_status_is_read_only_even_on_an_unreadable_session(tmp_path: Path) -> None:
    directory = tmp_path / "dry-run"
    directory.mkdir()
    (directory / "state.json").write_text("{broken")
    result = run(["status", "--dry-run", "--state-dir", str(tmp_path)])
    assert result.returncode == 1 and "cannot be read" in result.stderr
    assert "pending" not in result.stdout  # no made-up fresh session
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["state.json"]
    assert (directory / "state.json").read_text() == "{broken"


def test_two_unreadable_sessions_moved_aside_in_one_second_are_both_kept(tmp_path: Path) -> None:
    from leviathan_tui.state import State

    for content in ("{first", "{second"):
        tmp_path.mkdir(exist_ok=True)
        (tmp_path / "state.json").write_text(content)
        State.load(tmp_path)
    kept = sorted(p.read_text() for p in tmp_path.glob("state.json.unreadable-*"))
    assert kept == ["{first", "{second"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_a_full_disk_mid_run_stops_with_one_message_and_keeps_the_last_good_state(
    tmp_path: Path,
) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        proc = subprocess.Popen(
            leviathan_cmd() + ["--dry-run", "--replay", str(REPLAY), "--state-dir", str(mnt)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=run_env(LEVIATHAN_DRY_RUN_SPEED="2"),
        )
        state = mnt / "dry-run" / "state.json"
        for _ in range(600):
            if state.exists():
                break
            time.sleep(0.05)
        good = state.read_text()
        filler = mnt / "filler"
        with open(filler, "wb") as handle:  # fill the disk while the run goes on
            try:
                while True:
                    handle.write(b"\0" * 65536)
            except OSError:
                pass
        out, err = proc.communicate(timeout=120)
        assert proc.returncode in (1, 2), (proc.returncode, out[-500:], err)
        assert "Traceback" not in out + err
        assert "disk is full" in out + err or "No space" in out + err
        saved = json.loads(state.read_text())
        assert saved["schema"] == 2 and len(state.read_text()) >= len(good) // 2
        assert not list((mnt / "dry-run").glob(".state.json.*.tmp"))
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# --- render ----------------------------------------------------------------------------------------


def test_render_onto_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("keep me")
    err = clean(run(["render", "--out", str(target), "--state-dir", str(tmp_path / "s")]), 2)
    assert "not a directory" in err and target.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_render_into_a_full_directory_leaves_nothing_truncated(tmp_path: Path) -> None:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], check=True)
    try:
        result = run(["render", "--out", str(mnt), "--state-dir", str(tmp_path / "s")])
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "disk is full" in result.stderr
        assert not list(mnt.glob(".*.tmp"))
        from leviathan_tui.config import Config
        from leviathan_tui.render.bundle import render_all

        expected = render_all(Config())
        for written in mnt.iterdir():
            assert written.read_text() == expected[written.name]  # whole, or not there
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# --- signals ---------------------------------------------------------------------------------------


def replay_run(state_dir: Path) -> subprocess.Popen[str]:
    """The dry run answered by the example replay file, at its real pace, output piped."""
    return subprocess.Popen(
        leviathan_cmd() + ["--dry-run", "--replay", str(REPLAY), "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(LEVIATHAN_DRY_RUN_SPEED="1"),
    )


def read_until(proc: subprocess.Popen[str], word: str, deadline: float) -> None:
    """Read stdout until a line holds `word`, the output ends, or the deadline passes."""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if word in line or not line:
            return


def catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for `signum` (Linux: SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.4, 0.8, 1.5, 2.5])
def test_sigterm_at_any_moment_exits_130_with_no_traceback(tmp_path: Path, delay: float) -> None:
    proc = replay_run(tmp_path)
    # from the moment leviathan handles SIGTERM: before that, the interpreter is still starting
    deadline = time.monotonic() + 30
    while not catches(proc.pid, signal.SIGTERM) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert catches(proc.pid, signal.SIGTERM), "leviathan never installed its SIGTERM handler"
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, out[-500:], err)
    assert "Traceback" not in out + err


def test_two_ctrl_c_within_milliseconds_exit_130_with_no_traceback(tmp_path: Path) -> None:
    for attempt in range(8):
        proc = replay_run(tmp_path / str(attempt))
        read_until(proc, "started", time.monotonic() + 30)
        time.sleep(0.2 * (attempt % 4))
        proc.send_signal(signal.SIGINT)
        time.sleep(0.002 * attempt)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (attempt, proc.returncode, out[-500:], err)
        assert "Traceback" not in out + err and "release unlocked" not in err
        assert " finished " in out.splitlines()[-1], out[-500:]  # a reader of stdout sees the end
        state = tmp_path / str(attempt) / "dry-run" / "state.json"
        if state.exists():
            json.loads(state.read_text())  # saved whole


def test_ctrl_c_held_down_while_an_interrupted_run_shuts_down_still_exits_130(
    tmp_path: Path,
) -> None:
    """The interpreter's shutdown puts the default action back on SIGINT: a Ctrl-C landing there
    ended the process as killed by SIGINT (-2), not exit 130."""
    for attempt in range(3):
        proc = replay_run(tmp_path / str(attempt))
        deadline = time.monotonic() + 30
        read_until(proc, "started", deadline)
        proc.send_signal(signal.SIGINT)
        read_until(proc, "finished", deadline)
        while proc.poll() is None:  # the key held down from "finished" until the process is gone
            try:
                proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                break
            time.sleep(0.001)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (attempt, proc.returncode, out[-500:], err)
        assert "Traceback" not in out + err


def test_a_second_signal_while_the_first_unwinds_leaves_at_once_with_130() -> None:
    """A second KeyboardInterrupt raised inside the first one's cleanup could escape every handler."""
    script = (
        "import os, signal, time\n"
        "from leviathan_tui import signals\n"
        "signals.install()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT); time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    os.kill(os.getpid(), signal.SIGINT); time.sleep(5)\n"
        "print('the second signal was not heeded')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, env=run_env()
    )
    assert result.returncode == 130, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "interrupted again: quitting now" in result.stderr


def test_a_relative_state_dir_works_for_the_dry_runs_helper_processes(tmp_path: Path) -> None:
    result = subprocess.run(
        leviathan_cmd()
        + ["--dry-run", "--state-dir", "relative-state", "--replay", str(REPLAY)]
        + ["--only", "preflight,storage"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=run_env(LEVIATHAN_DRY_RUN_SPEED="8"),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert (tmp_path / "relative-state" / "dry-run" / "state.json").is_file()


def test_a_closed_stdout_is_no_traceback_and_a_run_stops_as_interrupted(tmp_path: Path) -> None:
    reader = subprocess.Popen(
        leviathan_cmd() + ["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(LEVIATHAN_DRY_RUN_SPEED="8"),
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.readline()
    reader.stdout.close()  # `| head -n 1`
    code = reader.wait(timeout=120)
    err = reader.stderr.read()
    assert code == 130 and "Traceback" not in err, err
    state = json.loads((tmp_path / "dry-run" / "state.json").read_text())
    assert "running" not in {step["status"] for step in state["steps"].values()}
    assert run(["status", "--dry-run", "--state-dir", str(tmp_path)]).returncode == 0


def test_node_name_must_be_a_dns_subdomain(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text('cluster:\n  node_name: "a\\nmachine: {evil: 1}"\n')
    result = run(["render", "--config", str(config), "--out", str(tmp_path / "out")])
    assert result.returncode == 2 and "cluster.node_name" in result.stderr
    assert "DNS subdomain" in result.stderr and not (tmp_path / "out").exists()


def test_more_gpus_than_the_node_has_stop_at_preflight(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("deploy:\n  gpus: 100000\n")
    result = run(
        [
            "--dry-run",
            "--config",
            str(config),
            "--state-dir",
            str(tmp_path),
            "--replay",
            str(REPLAY),
        ]
    )
    assert result.returncode == 1 and "deploy.gpus is 100000" in result.stderr
    assert "set deploy.gpus to at most 1" in result.stderr
    world = json.loads((tmp_path / "dry-run" / "world" / "world.json").read_text())
    assert world["formats"] == []  # stopped before the disk


@pytest.mark.parametrize("args", [["--state-dir", "", "status"], ["render", "--out", ""]])
def test_an_empty_directory_argument_is_refused_not_taken_as_here(args: list[str]) -> None:
    result = run(["--dry-run"] + args if args[0] == "--state-dir" else args)
    assert result.returncode == 2 and "empty path" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_wrong_answer_in_a_replay_file_is_named_at_once(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "version: 1\nanswers:\n  storage.devcie: /dev/nvme1n1\n  ssh.passphrase: hunter2\n"
        "  storage.device: [1, 2]\n  storage.confirm_format: nvme1n1\n"
    )
    err = clean(run(["--dry-run", "--replay", str(path), "--state-dir", str(tmp_path / "s")]), 2)
    assert f"{path}: 3 answers are wrong" in err
    assert "answers.storage.devcie: no such question (did you mean storage.device?)" in err
    assert "answers.ssh.passphrase: a secret" in err and "ssh-agent" in err
    assert "answers.storage.device: must be text" in err
    assert "hunter2" not in err and "storage.confirm_format" not in err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "the replay file is empty"),
        ("# only a comment\n", "the replay file is empty"),
        ("answers:\n  storage.device: /dev/nvme1n1\n", "version: missing"),
    ],
)
def test_an_empty_replay_file_or_one_without_a_version_says_so(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    err = clean(run(["--dry-run", "--replay", str(path), "--state-dir", str(tmp_path / "s")]), 2)
    assert f"{path}: {needle}" in err and "NoneType" not in err


@pytest.mark.parametrize("command", ["status", "plan", "reset"])
def test_a_file_as_the_state_dir_is_refused_by_every_command(tmp_path: Path, command: str) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x\n")
    err = clean(run(["--dry-run", "--state-dir", str(a_file), command]), 2)
    assert f"{a_file} is a file, not a directory" in err
