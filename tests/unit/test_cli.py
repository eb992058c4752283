"""The CLI as an operator meets it: real child processes, real exit codes."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, leviathan_cmd, run_env

REPLAY = ROOT / "examples" / "dry-run-replay.yaml"


def run(args: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        leviathan_cmd() + args,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=run_env(LEVIATHAN_DRY_RUN_SPEED="8", **env),
    )


def test_help_lists_the_surface() -> None:
    out = run(["--help"]).stdout
    for flag in (
        "--config",
        "--state-dir",
        "--dry-run",
        "--machine",
        "--replay",
        "--only",
        "render",
        "status",
        "reset",
        "health",
    ):
        assert flag in out


def test_dry_run_replay_walks_every_step_and_a_second_run_only_checks(tmp_path: Path) -> None:
    result = run(["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY)])
    assert result.returncode == 0, result.stdout + result.stderr
    for step in (
        "preflight.node",
        "storage.probe",
        "storage.format",
        "storage.verify_host",
        "download.fetch",
        "build.image",
        "build.push",
        "deploy.apply",
        "deploy.health",
    ):
        assert f"{step}" in result.stdout and "done" in result.stdout
    assert "404.4 GB" in result.stdout  # the true size, not the plan's 100-150 GB
    assert "(404.4 GB) to go" in result.stdout  # the agent's own line, as the real files' size
    assert "9 shards" in result.stdout
    state = json.loads((tmp_path / "dry-run" / "state.json").read_text())
    assert all(rec["status"] == "done" for rec in state["steps"].values())
    assert not (tmp_path / "state.json").exists()  # dry-run state lives apart
    plan = run(["--dry-run", "--state-dir", str(tmp_path), "plan"])
    assert "on the recorded disk /dev/nvme1n1 (never formatted again)" in plan.stdout


def test_missing_answer_exits_3_naming_the_question(tmp_path: Path) -> None:
    replay = tmp_path / "r.yaml"
    replay.write_text(
        "version: 1\nanswers:\n  storage.device: /dev/nvme1n1\n  ssh.host_key: 'SHA256:dRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNw'\n"
    )
    result = run(["--dry-run", "--state-dir", str(tmp_path / "s"), "--replay", str(replay)])
    assert result.returncode == 3, result.stdout + result.stderr
    assert "storage.confirm_format" in result.stderr
    assert "storage.confirm_format: nvme1n1" in result.stderr  # the YAML line to add
    assert "mkfs" not in result.stdout


def test_a_missing_host_key_answer_says_to_compare_the_key_first(tmp_path: Path) -> None:
    replay = tmp_path / "r.yaml"
    replay.write_text(
        "version: 1\nanswers:\n  storage.device: /dev/nvme1n1\n  storage.confirm_format: nvme1n1\n"
    )
    result = run(["--dry-run", "--state-dir", str(tmp_path / "s"), "--replay", str(replay)])
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ssh.host_key" in result.stderr
    assert "ssh-keygen -lf /etc/ssh/ssh_host_" in result.stderr  # never a blind paste
    assert "only if they match" in result.stderr


def test_refused_answers_exit_3(tmp_path: Path) -> None:
    cases = {
        "/dev/nvme0n1": "Talos system disk",  # the system disk
        "/dev/sdz": "not one of",  # missing
    }
    for device, why in cases.items():
        replay = tmp_path / "r.yaml"
        replay.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "answers": {
                        "storage.device": device,
                        "storage.confirm_format": device.rsplit("/", 1)[-1],
                        "ssh.host_key": "SHA256:dRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNw",
                    },
                }
            )
        )
        result = run(
            [
                "--dry-run",
                "--state-dir",
                str(tmp_path / device.replace("/", "_")),
                "--replay",
                str(replay),
            ]
        )
        assert result.returncode == 3, result.stdout + result.stderr
        assert why in result.stderr
        assert "FORMATTING" not in result.stdout
    # a confirmation that names another device
    replay.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "answers": {
                    "storage.device": "/dev/nvme1n1",
                    "storage.confirm_format": "nvme2n1",
                    "ssh.host_key": "SHA256:dRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNw",
                },
            }
        )
    )
    result = run(["--dry-run", "--state-dir", str(tmp_path / "other"), "--replay", str(replay)])
    assert result.returncode == 3 and "nothing will be formatted" in result.stderr
    assert "FORMATTING" not in result.stdout
    # a recorded serial that no longer matches
    replay.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "answers": {
                    "storage.device": "/dev/nvme1n1",
                    "storage.device_serial": "OTHER",
                    "storage.confirm_format": "nvme1n1",
                    "ssh.host_key": "SHA256:dRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNw",
                },
            }
        )
    )
    result = run(["--dry-run", "--state-dir", str(tmp_path / "serial"), "--replay", str(replay)])
    assert result.returncode == 3 and "not the recorded disk" in result.stderr


def test_bad_replay_and_config_files_exit_2_without_traceback(tmp_path: Path) -> None:
    state = tmp_path / "s"
    assert run(["--dry-run", "--state-dir", str(state), "--replay", str(REPLAY)]).returncode == 0
    saved = (state / "dry-run" / "state.json").read_bytes()
    bad = {
        "syntax.yaml": ("version: 1\nanswers:\n  a: [b\n", "line"),
        "types.yaml": ("version: one\n", "version: must be an integer"),
        "newer.yaml": ("version: 7\nanswers: {}\n", "newer Leviathan"),
        "unknown.yaml": ("version: 1\nanswer: {}\n", "unknown key"),
        "config.yaml": ("version: 1\nconfig:\n  ssh:\n    port: 0\n", "ssh.port: must be 1..65535"),
    }
    for name, (text, expected) in bad.items():
        path = tmp_path / name
        path.write_text(text)
        result = run(["--dry-run", "--state-dir", str(state), "--replay", str(path)])
        assert result.returncode == 2, (name, result.stderr)
        assert expected in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 40960)
    result = run(["--dry-run", "--state-dir", str(state), "--replay", str(garbage)])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    cfg = tmp_path / "bad-config.yaml"
    cfg.write_text("cluster:\n  namespace: 5\n")
    result = run(
        ["--dry-run", "--state-dir", str(state), "--config", str(cfg), "--replay", str(REPLAY)]
    )
    assert result.returncode == 2 and "cluster.namespace" in result.stderr
    assert (state / "dry-run" / "state.json").read_bytes() == saved


def _run_until_bytes_land(tmp_path: Path) -> subprocess.Popen[str]:
    """A dry run, stopped once its download reports bytes on the disk."""
    proc = subprocess.Popen(
        leviathan_cmd() + ["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(LEVIATHAN_DRY_RUN_SPEED="1"),
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        landed = re.search(r"download.fetch +progress (\d+\.\d) GB of", line)
        if landed and float(landed.group(1)) > 0:
            return proc
    raise AssertionError("the dry download never reported a byte")


@pytest.mark.parametrize("signal_", [signal.SIGINT, signal.SIGKILL])
def test_a_dry_run_stopped_mid_download_resumes_from_its_bytes_with_no_second_format(
    tmp_path: Path, signal_: signal.Signals
) -> None:
    proc = _run_until_bytes_land(tmp_path)
    proc.send_signal(signal_)
    out, err = proc.communicate(timeout=30)
    state = json.loads((tmp_path / "dry-run" / "state.json").read_text())
    assert state["steps"]["storage.format"]["status"] == "done"
    if signal_ == signal.SIGINT:
        assert proc.returncode == 130, out + err
        assert state["steps"]["download.fetch"]["status"] == "interrupted"
    result = run(["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "preflight.node       skipped" in result.stdout
    assert "storage.format       skipped" in result.stdout  # the kept world: still ours, mounted
    resumed = re.search(r"resuming from (\d+\.\d) GB already on the disk", result.stdout)
    assert resumed and float(resumed.group(1)) > 0, result.stdout
    world = json.loads((tmp_path / "dry-run" / "world" / "world.json").read_text())
    assert [f["device"] for f in world["formats"]] == ["/dev/nvme1n1"]  # formatted once


def test_only_with_undone_needs_exits_2(tmp_path: Path) -> None:
    result = run(
        ["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY), "--only", "deploy"]
    )
    assert result.returncode == 2
    assert "needs steps that are not done" in result.stderr
    result = run(
        ["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY), "--only", "build"]
    )
    assert result.returncode == 2  # the image is built for the node: its facts come first
    assert "preflight.node" in result.stderr and "storage.probe" in result.stderr
    first = ["--only", "preflight,storage"]
    assert (
        run(["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY), *first]).returncode
        == 0
    )
    result = run(
        ["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY), "--only", "build"]
    )
    assert result.returncode == 0, result.stderr
    assert "build.push" in result.stdout and "storage.probe" not in result.stdout


def test_status_and_reset(tmp_path: Path) -> None:
    assert (
        run(
            ["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY)]
            + ["--only", "preflight,storage,build"]
        ).returncode
        == 0
    )
    out = run(["status", "--dry-run", "--state-dir", str(tmp_path)]).stdout
    assert "build.push" in out and "done" in out
    no_tty = run(["reset", "--dry-run", "--state-dir", str(tmp_path)])
    assert no_tty.returncode == 2 and "--yes" in no_tty.stderr
    assert run(["reset", "--dry-run", "--yes", "--state-dir", str(tmp_path)]).returncode == 0
    assert "no saved session" in run(["status", "--dry-run", "--state-dir", str(tmp_path)]).stdout


def test_machine_file_drives_the_dry_run(tmp_path: Path) -> None:
    machine = tmp_path / "m.json"
    machine.write_text(
        json.dumps(
            {
                "blockdevices": [
                    {
                        "name": "sda",
                        "path": "/dev/sda",
                        "size": 500107862016,
                        "type": "disk",
                        "model": "OS",
                        "serial": "A1",
                        "fstype": None,
                        "label": None,
                        "mountpoints": [None],
                        "rota": False,
                        "tran": "sata",
                        "children": [
                            {
                                "name": "sda1",
                                "path": "/dev/sda1",
                                "size": 104857600,
                                "type": "part",
                                "fstype": "vfat",
                                "label": "EFI",
                                "mountpoints": [None],
                            }
                        ],
                    },
                    {
                        "name": "nvme9n1",
                        "path": "/dev/nvme9n1",
                        "size": 7681501126656,
                        "type": "disk",
                        "model": "BIG",
                        "serial": "Z9",
                        "fstype": None,
                        "label": None,
                        "mountpoints": [None],
                        "rota": False,
                        "tran": "nvme",
                    },
                ]
            }
        )
    )
    replay = tmp_path / "r.yaml"
    replay.write_text(
        "version: 1\nanswers:\n  storage.device: /dev/nvme9n1\n  storage.confirm_format: nvme9n1\n  ssh.host_key: 'SHA256:dRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNw'\n"
    )
    result = run(
        [
            "--dry-run",
            "--machine",
            str(machine),
            "--state-dir",
            str(tmp_path / "s"),
            "--replay",
            str(replay),
            "--only",
            "preflight,storage",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert "/dev/sda  465.8 GiB  OS  cannot be used: Talos system disk" in result.stdout
    assert "FORMATTING /dev/nvme9n1" in result.stdout
    garbage = tmp_path / "g.json"
    garbage.write_text("{}")
    bad = run(
        [
            "--dry-run",
            "--machine",
            str(garbage),
            "--state-dir",
            str(tmp_path / "s2"),
            "--replay",
            str(replay),
        ]
    )
    assert bad.returncode == 2 and "lsblk" in bad.stderr


def _swap_disk(tmp_path: Path, serial: str = "S64HNE0R8SWAP") -> None:
    """Another disk now sits at /dev/nvme1n1 of the simulated node: same path, another serial."""
    path = tmp_path / "dry-run" / "world" / "world.json"
    world = json.loads(path.read_text())
    for dev in world["machine"]["blockdevices"]:
        if dev["path"] == "/dev/nvme1n1":
            dev["serial"] = serial
    world["disks"].pop("/dev/nvme1n1", None)  # the new disk is blank
    world["mounts"].clear()  # after a reboot nothing is mounted
    path.write_text(json.dumps(world))


def test_a_swapped_disk_is_refused_on_every_run_and_never_formatted(tmp_path: Path) -> None:
    first = run(
        [
            "--dry-run",
            "--state-dir",
            str(tmp_path),
            "--replay",
            str(REPLAY),
            "--only",
            "preflight,storage",
        ]
    )
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr
    _swap_disk(tmp_path)
    for _ in range(2):  # refused the first time, and again: the record is never overwritten
        again = run(
            [
                "--dry-run",
                "--state-dir",
                str(tmp_path),
                "--replay",
                str(REPLAY),
                "--only",
                "preflight,storage",
            ]
        )
        assert again.returncode == 3, again.stdout[-2000:] + again.stderr
        assert "is not the recorded data disk" in again.stderr
        assert "S64HNE0R812345" in again.stderr and "S64HNE0R8SWAP" in again.stderr
        assert "leviathan reset --disk" in again.stderr
    world = json.loads((tmp_path / "dry-run" / "world" / "world.json").read_text())
    assert [f["device"] for f in world["formats"]] == ["/dev/nvme1n1"]  # the first disk only
    state = json.loads((tmp_path / "dry-run" / "state.json").read_text())
    assert state["records"]["DataDisk"]["data"]["serial"] == "S64HNE0R812345"
    # choosing again is explicit: forget the disk, then the replay's recorded serial still refuses
    assert (
        run(["reset", "--dry-run", "--disk", "--yes", "--state-dir", str(tmp_path)]).returncode == 0
    )
    state = json.loads((tmp_path / "dry-run" / "state.json").read_text())
    assert "DataDisk" not in state["records"]
    status = run(["status", "--dry-run", "--state-dir", str(tmp_path)]).stdout
    format_line = next(line for line in status.splitlines() if "storage.format" in line)
    assert "pending" in format_line and "formatted" not in format_line  # no stale result


def test_plan_follows_the_configured_quant_and_refuses_one_the_repo_lacks(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  quant: Q2_K_XS\n")
    other = run(["--dry-run", "--config", str(config), "--state-dir", str(tmp_path), "plan"])
    assert other.returncode == 0, other.stderr
    assert "DeepSeek-V3-Q2_K_XS: 5 shards" in other.stdout and "207.0 GB" in other.stdout
    assert "404.4 GB" not in other.stdout
    config.write_text("model:\n  quant: Q9_FAKE\n")
    missing = run(["--dry-run", "--config", str(config), "--state-dir", str(tmp_path), "plan"])
    assert "quant Q9_FAKE not found" in missing.stdout and "Q2_K_XS (207 GB)" in missing.stdout
    assert "cannot be read" in missing.stderr
    replay = run(
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
    assert replay.returncode == 1 and "quant Q9_FAKE not found" in replay.stderr
    world = json.loads((tmp_path / "dry-run" / "world" / "world.json").read_text())
    assert world["formats"] == []  # stopped at the plan's refusal, before the disk


@pytest.mark.parametrize(
    "args",
    [
        ["--dry-run", "--machine", "{missing}", "plan"],
        ["--dry-run", "plan", "--machine", "{missing}"],
        ["--machine", "{missing}", "plan"],
    ],
)
def test_plan_reads_the_machine_file_wherever_it_is_given(tmp_path: Path, args: list[str]) -> None:
    args = [a.replace("{missing}", str(tmp_path / "nope.json")) for a in args]
    result = run(["--state-dir", str(tmp_path)] + args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "nope.json" in result.stderr or "only makes sense with --dry-run" in result.stderr


def test_a_device_answer_that_is_no_dev_path_stops_before_anything_runs(tmp_path: Path) -> None:
    replay = tmp_path / "r.yaml"
    replay.write_text("version: 1\nanswers:\n  storage.device: 5\n")
    result = run(["--dry-run", "--state-dir", str(tmp_path), "--replay", str(replay)])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "answers.storage.device: must be a /dev path" in result.stderr
    assert "preflight.node" not in result.stdout  # refused before any step


def test_what_still_runs_after_a_quit_names_the_real_download_not_a_dry_runs(
    tmp_path: Path,
) -> None:
    from leviathan_tui.config import Config
    from leviathan_tui.phases.stop import goes_on_after, still_running
    from leviathan_tui.state import State

    state = State.load(tmp_path)
    state.set_status("download.fetch", "running")  # a quit left it so
    config = Config()
    real = still_running(state, config, dry_run=False)
    assert real == [f"the download (pod sysadmin-logistics-fetch on {config.cluster.node_name})"]
    assert still_running(state, config, dry_run=True) == []  # its pods were deleted on close
    (dry,) = goes_on_after(["download.fetch"], [], config, dry_run=True)
    assert "stops with the dry run" in dry and "goes on" not in dry


def test_the_plan_after_a_finished_download_has_nothing_to_download(tmp_path: Path) -> None:
    before = run(["--dry-run", "--state-dir", str(tmp_path), "plan"])
    assert "download about" in before.stdout and "nothing to download" not in before.stdout
    assert "at most" not in before.stdout  # no disk chosen yet: the whole model is fetched
    done = run(["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY)])
    assert done.returncode == 0, done.stderr
    after = run(["--dry-run", "--state-dir", str(tmp_path), "plan"])
    assert after.returncode == 0, after.stderr
    eta = next(line for line in after.stdout.splitlines() if "ETA" in line)
    assert "nothing to download: 14 files, 404.4 GB" in eta and "download about" not in eta


def test_the_plan_of_a_resume_calls_its_download_eta_a_bound(tmp_path: Path) -> None:
    """The plan does not read the disk: part of the model may be on it and is not fetched again."""
    from leviathan_tui.records import DataDisk
    from leviathan_tui.state import State

    state = State.load(tmp_path / "dry-run")
    state.publish("storage.format", DataDisk(path="/dev/nvme1n1", serial="S1", size=2 * 10**12))
    state.set_status("storage.format", "done")
    state.flush()
    plan = run(["--dry-run", "--state-dir", str(tmp_path), "plan"])
    assert plan.returncode == 0, plan.stderr
    eta = next(line for line in plan.stdout.splitlines() if "ETA" in line)
    assert "download at most about" in eta and "what is on the disk already is kept" in eta


def test_status_calls_a_step_left_running_by_a_killed_run_interrupted(tmp_path: Path) -> None:
    from leviathan_tui.state import SessionLock, State

    state = State.load(tmp_path / "dry-run")
    state.set_status("build.image", "running")
    state.flush()
    out = run(["status", "--dry-run", "--state-dir", str(tmp_path)]).stdout
    line = next(line for line in out.splitlines() if "build.image" in line)
    assert "interrupted" in line and "ended without saving" in line
    with SessionLock(tmp_path / "dry-run"):  # a live run holds the session: running is true
        out = run(["status", "--dry-run", "--state-dir", str(tmp_path)]).stdout
    assert f"(PID {os.getpid()}) is driving it now" in out
    assert "running" in next(line for line in out.splitlines() if "build.image" in line)


def test_a_locked_session_names_how_to_end_its_holder(tmp_path: Path) -> None:
    """`leviathan stop` is refused while another run holds the session, so the advice is the
    signal that ends that run, with its PID."""
    from leviathan_tui.state import SessionLock, State

    state = State.load(tmp_path / "dry-run")
    state.set_status("build.image", "running")
    state.flush()
    with SessionLock(tmp_path / "dry-run"):
        result = run(["stop", "--dry-run", "--state-dir", str(tmp_path)])
    assert result.returncode == 2
    assert f"kill -INT {os.getpid()}" in result.stderr, result.stderr


def test_stop_on_a_directory_with_no_dry_run_says_so_and_creates_nothing(tmp_path: Path) -> None:
    mistyped = tmp_path / "no-such-session"
    result = run(["stop", "--dry-run", "--state-dir", str(mistyped)])
    assert result.returncode == 0
    assert f"no saved session in {mistyped / 'dry-run'}" in result.stdout, result.stdout
    assert not mistyped.exists()


def test_status_names_the_detached_build_an_interrupted_run_left_going(tmp_path: Path) -> None:
    from leviathan_tui.records import BuildJob
    from leviathan_tui.state import State

    state = State.load(tmp_path / "dry-run")
    state.publish("build.image", BuildJob("b-1", "leviathan-build/b-1"))
    state.set_status("build.image", "interrupted")
    state.set_status("download.fetch", "interrupted")
    state.flush()
    out = run(["status", "--dry-run", "--state-dir", str(tmp_path)]).stdout
    assert "may still be running: the image build on" in out and "leviathan-build/b-1" in out, out
    fetch = next(line for line in out.splitlines() if "download.fetch" in line)
    assert "the next run resumes it" in fetch


def test_stop_says_when_it_moved_an_unreadable_session_aside(tmp_path: Path) -> None:
    (tmp_path / "dry-run").mkdir()
    (tmp_path / "dry-run" / "state.json").write_bytes(b"\x00\xff{garbage")
    result = run(["stop", "--dry-run", "--state-dir", str(tmp_path)])
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "could not be read" in result.stderr and "moved aside" in result.stderr, result.stderr


def test_a_headless_run_that_stops_names_the_build_left_running(tmp_path: Path) -> None:
    from leviathan_tui.records import BuildJob
    from leviathan_tui.state import State

    state = State.load(tmp_path / "dry-run")  # an earlier run left the detached build going
    state.publish("build.image", BuildJob("b-1", "leviathan-build/b-1"))
    state.set_status("build.image", "interrupted")
    state.flush()
    replay = tmp_path / "r.yaml"
    replay.write_text(REPLAY.read_text().replace("confirm_format: nvme1n1", "confirm_format: sda"))
    result = run(
        ["--dry-run", "--state-dir", str(tmp_path), "--replay", str(replay)]
        + ["--only", "preflight,storage"]
    )
    assert result.returncode == 3, result.stderr
    assert "still running: the image build on" in result.stderr
    assert "leviathan-build/b-1" in result.stderr and "`leviathan stop` stops it" in result.stderr
    assert "Traceback" not in result.stderr


def test_leviathan_log_keeps_every_run_of_the_session(tmp_path: Path) -> None:
    for _ in range(2):
        result = run(
            ["--dry-run", "--state-dir", str(tmp_path), "--replay", str(REPLAY)]
            + ["--only", "preflight"]
        )
        assert result.returncode == 0, result.stderr
    journal = (tmp_path / "dry-run" / "leviathan.log").read_text()
    assert journal.count("preflight.node: started") == 1  # the second run checks, then skips
    assert "preflight.node: done: talos-node-0 Ready" in journal
    assert "preflight.node: skipped:" in journal
    assert journal.count("finished: ") == 2
