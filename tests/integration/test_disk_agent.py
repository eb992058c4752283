"""The node agent against a real loop device: formats, mounts, refuses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_env
from tests.integration.conftest import LoopDevice, needs_root

pytestmark = [needs_root]


def agent(module: str, *args: str, shim: Path | None = None) -> tuple[int, list[dict], str]:
    env = run_env()
    if shim:
        env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        [sys.executable, "-m", f"leviathan_tui.agent.{module}", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events, proc.stdout


def disk_args(
    dev: LoopDevice, mountpoint: Path, serial: str = "", size: int | None = None
) -> list[str]:
    dev.mountpoints.append(mountpoint)
    return [
        "--device",
        dev.path,
        "--serial",
        serial,
        "--size",
        str(size or dev.size),
        "--label",
        "leviathan",
        "--mountpoint",
        str(mountpoint),
        "--allow-loop-devices",  # the loop device stands in for the node's NVMe
    ]


def mkfs_calls(tmp_path: Path) -> int:
    return len((tmp_path / "mkfs-calls.log").read_text().splitlines())


def test_fresh_format_then_resume_without_mkfs(
    loop_device: LoopDevice, tmp_path: Path, mkfs_counter: Path
) -> None:
    mp = tmp_path / "mnt"
    code, events, out = agent("disk", *disk_args(loop_device, mp), shim=mkfs_counter)
    assert code == 0, out
    assert events[-1]["status"] == "done" and events[-1]["formatted"] is True
    assert ">> MOUNTING" in out
    assert mkfs_calls(tmp_path) == 1
    found = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE,LABEL", "--mountpoint", str(mp)],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert found == ["xfs", "leviathan"]
    assert events[-1]["free_bytes"] > 300 * 2**20
    # again: already ours and mounted -> nothing formatted
    code, events, out = agent("disk", *disk_args(loop_device, mp), shim=mkfs_counter)
    assert code == 0 and events[-1]["formatted"] is False
    assert mkfs_calls(tmp_path) == 1
    # the check mode agrees
    code, events, _ = agent("disk", *disk_args(loop_device, mp), "--check")
    assert code == 0


def test_killed_between_mkfs_and_mount_resumes_by_mounting(
    loop_device: LoopDevice, tmp_path: Path, mkfs_counter: Path
) -> None:
    subprocess.run(["mkfs.xfs", "-q", "-L", "leviathan", loop_device.path], check=True)
    mp = tmp_path / "mnt"
    code, events, out = agent("disk", *disk_args(loop_device, mp), shim=mkfs_counter)
    assert code == 0, out
    assert events[-1]["formatted"] is False
    assert mkfs_calls(tmp_path) == 0
    assert subprocess.run(["findmnt", "--mountpoint", str(mp)], capture_output=True).returncode == 0


def test_foreign_filesystem_needs_the_second_confirmation(
    loop_device: LoopDevice, tmp_path: Path, mkfs_counter: Path
) -> None:
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "family-photos", loop_device.path], check=True)
    mp = tmp_path / "mnt"
    code, events, _ = agent("disk", *disk_args(loop_device, mp), shim=mkfs_counter)
    assert code == 3
    assert (
        "ext4 label 'family-photos'" in events[-1]["reason"]
        and "second confirmation" in events[-1]["reason"]
    )
    assert mkfs_calls(tmp_path) == 0
    code, events, _ = agent(
        "disk", *disk_args(loop_device, mp), "--allow-foreign-fs", shim=mkfs_counter
    )
    assert code == 0 and events[-1]["formatted"] is True
    assert mkfs_calls(tmp_path) == 1


def test_mounted_device_is_refused(
    loop_device: LoopDevice, tmp_path: Path, mkfs_counter: Path
) -> None:
    subprocess.run(["mkfs.xfs", "-q", "-L", "someone", loop_device.path], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["mount", loop_device.path, str(elsewhere)], check=True)
    loop_device.mountpoints.append(elsewhere)
    code, events, _ = agent(
        "disk", *disk_args(loop_device, tmp_path / "mnt"), "--allow-foreign-fs", shim=mkfs_counter
    )
    assert code == 3 and "mounted at" in events[-1]["reason"]
    assert mkfs_calls(tmp_path) == 0


def test_serial_size_and_missing_device_are_refused(
    loop_device: LoopDevice, tmp_path: Path, mkfs_counter: Path
) -> None:
    mp = tmp_path / "mnt"
    code, events, _ = agent("disk", *disk_args(loop_device, mp, serial="S6XYZ"), shim=mkfs_counter)
    assert code == 3 and "not the disk that was chosen: serial" in events[-1]["reason"]
    code, events, _ = agent(
        "disk", *disk_args(loop_device, mp, size=loop_device.size + 4096), shim=mkfs_counter
    )
    assert code == 3 and "not the disk that was chosen: size" in events[-1]["reason"]
    code, events, _ = agent(
        "disk",
        "--device",
        "/dev/does-not-exist",
        "--serial",
        "",
        "--size",
        "1",
        "--label",
        "leviathan",
        "--mountpoint",
        str(mp),
        shim=mkfs_counter,
    )
    assert code == 3 and "does not exist" in events[-1]["reason"]
    assert mkfs_calls(tmp_path) == 0


def test_talos_system_label_is_refused(
    loop_device: LoopDevice, tmp_path: Path, mkfs_counter: Path
) -> None:
    subprocess.run(["mkfs.xfs", "-q", "-L", "STATE", loop_device.path], check=True)
    code, events, _ = agent(
        "disk", *disk_args(loop_device, tmp_path / "mnt"), "--allow-foreign-fs", shim=mkfs_counter
    )
    assert code == 3 and "Talos system disk" in events[-1]["reason"]
    assert mkfs_calls(tmp_path) == 0


def test_probe_sees_the_loop_device_with_blkid(loop_device: LoopDevice) -> None:
    subprocess.run(["mkfs.xfs", "-q", "-L", "leviathan", loop_device.path], check=True)
    code, events, _ = agent("probe")
    assert code == 0
    devices = {d["path"]: d for d in events[-1]["devices"]}
    assert devices[loop_device.path]["fstype"] == "xfs"
    assert devices[loop_device.path]["label"] == "leviathan"
    assert devices[loop_device.path]["uuid"]  # blkid's UUID: the identity once formatted
    mine = next(e for e in events if e.get("event") == "device" and e["path"] == loop_device.path)
    assert mine["selectable"] is False and mine["reason"].startswith("a loop device")
    code, events, _ = agent("probe", "--allow-loop-devices")
    mine = next(e for e in events if e.get("event") == "device" and e["path"] == loop_device.path)
    assert mine["ours"] is True and mine["selectable"] is True
    assert events[-1]["cpu_flags"]  # the node's instruction set, for the engine image


@needs_root
def test_a_loop_device_is_refused_without_the_test_rig_flag(
    loop_device: LoopDevice, tmp_path: Path, mkfs_counter: Path
) -> None:
    args = [a for a in disk_args(loop_device, tmp_path / "mnt") if a != "--allow-loop-devices"]
    code, _, out = agent("disk", *args, shim=mkfs_counter)
    assert code == 3 and "a loop device" in out
    assert mkfs_calls(tmp_path) == 0


@needs_root
def test_a_recorded_filesystem_uuid_that_changed_is_refused(
    loop_device: LoopDevice, tmp_path: Path, mkfs_counter: Path
) -> None:
    mp = tmp_path / "mnt"
    code, events, out = agent("disk", *disk_args(loop_device, mp), shim=mkfs_counter)
    assert code == 0, out
    uuid = events[-1]["fs_uuid"]
    assert uuid and mkfs_calls(tmp_path) == 1
    subprocess.run(["umount", str(mp)], check=True)
    subprocess.run(["mkfs.xfs", "-q", "-f", "-L", "leviathan", loop_device.path], check=True)
    code, _, out = agent("disk", *disk_args(loop_device, mp), "--fs-uuid", uuid, shim=mkfs_counter)
    assert code == 3 and "filesystem UUID" in out and "nothing formatted" in out
    assert mkfs_calls(tmp_path) == 1  # the agent itself never formatted again


@needs_root
def test_a_second_disk_agent_on_the_same_mountpoint_is_refused_naming_the_holder(
    loop_device: LoopDevice, tmp_path: Path, mkfs_counter: Path
) -> None:
    from leviathan_tui.agent.writer_lock import WriterLock

    mp = tmp_path / "mnt"
    holder = WriterLock(mp)
    assert holder.try_acquire()
    try:
        code, _, out = agent(
            "disk", *disk_args(loop_device, mp), "--lock-wait", "1", shim=mkfs_counter
        )
    finally:
        holder.release()
    assert code == 3 and f"pid {os.getpid()}" in out
    assert mkfs_calls(tmp_path) == 0


def test_the_bootstrap_installs_what_a_stock_image_lacks_then_runs_the_agent(
    tmp_path: Path,
) -> None:
    """A plain python image has neither xfsprogs nor huggingface_hub: the bootstrap installs the
    missing Debian packages with apt-get (here a stand-in that records its call) before the agent."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "apt-calls"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "apt-get").chmod(0o755)
    for tool in ("lsblk", "blkid", "stat"):  # present; mkfs.xfs, findmnt and mount are not
        (bin_dir / tool).symlink_to(shutil.which(tool))
    env = run_env(PATH=str(bin_dir))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "leviathan_tui.agent.bootstrap",
            "disk",
            "--device",
            "/dev/none",
            "--serial",
            "",
            "--size",
            "1",
            "--label",
            "leviathan",
            "--mountpoint",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    installed = calls.read_text().splitlines()
    assert (
        installed[0].startswith("update")
        and "xfsprogs" in installed[1]
        and "util-linux" in installed[1]
    )
    assert "INSTALLING" in proc.stdout
    assert '"status":"refused"' in proc.stdout  # then the agent itself ran: no such device
    (bin_dir / "apt-get").unlink()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "leviathan_tui.agent.bootstrap",
            "disk",
            "--device",
            "/dev/none",
            "--serial",
            "",
            "--size",
            "1",
            "--label",
            "l",
            "--mountpoint",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (
        proc.returncode == 1
        and "has no apt-get" in proc.stdout
        and "storage.agent_image" in proc.stdout
    )
