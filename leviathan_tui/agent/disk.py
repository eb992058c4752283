"""Format (when needed) and mount the data disk, refusing anything unsafe.

    python -m leviathan_tui.agent.disk --device PATH --serial SERIAL --size BYTES \
        --label LABEL --mountpoint DIR [--by-id NAME ...] [--fs-uuid UUID] [--allow-foreign-fs]

The device's identity — serial, size, and when known its /dev/disk/by-id names and filesystem
UUID — is re-checked immediately before acting. A device with anything mounted, a Talos system
disk, a device that is not a whole disk, or one carrying someone else's filesystem (without
--allow-foreign-fs) is refused. An XFS that already carries our label is mounted, never formatted.
Only one disk agent acts on a mountpoint at a time. Exit 0 done, 3 refused, 1 failed; the last
JSON line says which and why.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from leviathan_tui.agent._emit import emit, milestone, result
from leviathan_tui.agent.lsblk import (
    BlockDevice,
    assess,
    enrich,
    identity_mismatch,
    parse_lsblk,
    run_lsblk,
)
from leviathan_tui.agent.node import current
from leviathan_tui.agent.writer_lock import LockBusy, WriterLock, describe


def _current(device: str) -> BlockDevice:
    devices = enrich(parse_lsblk(run_lsblk(device)))
    if not devices:
        raise ValueError(f"lsblk does not list {device}")
    return devices[0]


def recorded_mismatch(dev: BlockDevice, args: argparse.Namespace) -> str:
    return identity_mismatch(dev, args.serial, args.size, args.by_id, args.fs_uuid)


def _done(args: argparse.Namespace, dev: BlockDevice, formatted: bool) -> int:
    free, total = current().space(args.mountpoint)
    return result(
        "done",
        device=args.device,
        serial=dev.serial,
        size=dev.size,
        by_id=dev.by_id,
        fs_uuid=dev.uuid,
        label=dev.label,
        formatted=formatted,
        free_bytes=free,
        fs_bytes=total,
        mountpoint=args.mountpoint,
    )


def _mounted_here(device: str, mountpoint: str) -> bool:
    node = current()
    found = node.findmnt(mountpoint)
    return bool(found) and node.same_device(found[0], device) and found[1] == "xfs"


def check_only(args: argparse.Namespace) -> int:
    if not current().device_exists(args.device):
        return result("refused", f"{args.device} does not exist on this node")
    try:
        dev = _current(args.device)
    except (OSError, subprocess.CalledProcessError, ValueError) as err:
        return result("failed", f"cannot read {args.device}: {err}")
    mismatch = recorded_mismatch(dev, args)
    if mismatch:
        return result("refused", f"{args.device} is not the recorded disk: {mismatch}")
    if dev.fstype != "xfs" or dev.label != args.label:
        return result(
            "refused",
            f"{args.device} carries {dev.fstype or 'no filesystem'} label {dev.label!r}, not our XFS",
        )
    if not _mounted_here(args.device, args.mountpoint):
        return result("refused", f"{args.device} is not mounted at {args.mountpoint}")
    return _done(args, dev, formatted=False)


def format_and_mount(args: argparse.Namespace) -> int:
    node = current()
    device = args.device
    milestone(f"CHECKING {device}")
    if not node.device_exists(device):
        return result("refused", f"{device} does not exist on this node")
    try:
        dev = _current(device)
    except (OSError, subprocess.CalledProcessError, ValueError) as err:
        return result("failed", f"cannot read {device}: {err}")
    mismatch = recorded_mismatch(dev, args)
    if mismatch:
        return result(
            "refused", f"{device} is not the disk that was chosen: {mismatch}; nothing formatted"
        )

    verdict = assess(dev, args.label, args.mountpoint, allow_loop=args.allow_loop_devices)
    if not verdict.selectable:
        return result("refused", f"{device}: {verdict.reason}")
    ours = verdict.ours
    if not (ours and dev.all_mounts):  # ours and already at the mountpoint: a resume
        try:
            busy = [p.path for p in dev.walk() if node.exclusive_busy(p.path)]
        except OSError as err:
            return result("failed", f"cannot open {device}: {err.strerror}")
        if busy:
            return result(
                "refused",
                f"{', '.join(busy)} is in use (mounted or held, possibly by the node itself)",
            )

    if ours:
        milestone(f"{device} already carries XFS label {args.label}: not formatting")
        emit("format", device=device, formatted=False, reason="already formatted by Leviathan")
    else:
        if verdict.foreign and not args.allow_foreign_fs:
            return result(
                "refused",
                f"{device} carries {verdict.foreign}; formatting destroys it. It needs the second confirmation (--allow-foreign-fs)",
                foreign=verdict.foreign,
            )
        milestone(f"FORMATTING {device} as XFS (label {args.label})...")
        try:  # the identity once more, immediately before mkfs
            again = _current(device)
        except (OSError, subprocess.CalledProcessError, ValueError) as err:
            return result("failed", f"cannot re-read {device}: {err}")
        mismatch = recorded_mismatch(again, args)
        if mismatch:
            return result("refused", f"{device} changed under us ({mismatch}); nothing formatted")
        code, output = node.mkfs_xfs(device, args.label, force=bool(verdict.foreign))
        if code != 0:
            return result("failed", f"mkfs.xfs failed: {output[-500:]}")
        emit("format", device=device, formatted=True)
        try:
            dev = _current(device)  # the new filesystem's UUID
        except (OSError, subprocess.CalledProcessError, ValueError) as err:
            return result("failed", f"cannot re-read {device} after mkfs: {err}")

    found = node.findmnt(args.mountpoint)
    if found and node.same_device(found[0], device):
        milestone(f"{device} already mounted at {args.mountpoint}")
    else:
        if found:
            return result(
                "refused",
                f"{args.mountpoint} already has {found[0]} ({found[1]}) mounted; unmount it first",
            )
        milestone(f"MOUNTING {device} to {args.mountpoint}...")
        code, output = node.mount_xfs(device, args.mountpoint)
        if code != 0:
            return result("failed", f"mount failed: {output}")
    if not _mounted_here(device, args.mountpoint):
        return result(
            "failed",
            f"findmnt does not show {device} as XFS at {args.mountpoint} (saw {node.findmnt(args.mountpoint)})",
        )
    free, _ = node.space(args.mountpoint)
    milestone(f"MOUNTED {device} at {args.mountpoint}: {free / 2**30:.1f} GiB free")
    return _done(args, dev, formatted=not ours)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="leviathan-disk",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", required=True)
    parser.add_argument(
        "--serial", required=True, help='expected serial ("" for a device that reports none)'
    )
    parser.add_argument("--size", required=True, type=int, help="expected size in bytes")
    parser.add_argument("--label", required=True)
    parser.add_argument("--mountpoint", required=True)
    parser.add_argument(
        "--by-id", action="append", default=[], help="expected /dev/disk/by-id name (repeatable)"
    )
    parser.add_argument("--fs-uuid", default="", help="expected filesystem UUID (once formatted)")
    parser.add_argument(
        "--allow-foreign-fs",
        action="store_true",
        help="format over an existing filesystem (second confirmation given)",
    )
    parser.add_argument(
        "--allow-loop-devices", action="store_true", help="accept loop devices (test rigs only)"
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=30.0,
        help="seconds to wait for another disk agent on the same mountpoint",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing: is the device mounted as our XFS at the mountpoint?",
    )
    args = parser.parse_args(argv)
    if args.check:
        return check_only(args)
    lock = WriterLock(Path(args.mountpoint))  # one disk agent per mountpoint, across pods
    try:
        lock.acquire(args.lock_wait)
    except LockBusy as busy:
        return result(
            "refused",
            f"another disk agent ({describe(busy.holder)}) is working on {args.mountpoint}; nothing done",
        )
    except OSError as err:
        return result("failed", f"cannot lock {args.mountpoint}: {err.strerror or err}")
    try:
        return format_and_mount(args)
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main())
