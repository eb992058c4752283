"""Format (when needed) and mount the data disk, refusing anything unsafe.

    python -m leviathan_tui.agent.disk --device PATH --serial SERIAL --size BYTES \
        --label LABEL --mountpoint DIR [--allow-foreign-fs]

The device's serial and size are re-checked immediately before acting. A device with anything
mounted, a Talos system disk, or one carrying someone else's filesystem (without
--allow-foreign-fs) is refused. An XFS that already carries our label is mounted, never formatted.
Exit 0 done, 3 refused, 1 failed; the last JSON line says which and why.
"""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys

from leviathan_tui.agent._emit import emit, milestone, result
from leviathan_tui.agent.lsblk import BlockDevice, assess, enrich, parse_lsblk, run_lsblk


def _exclusive_busy(path: str) -> bool:
    """The kernel refuses an O_EXCL open of a block device that is mounted or held, in any mount
    namespace — including the node's, which lsblk inside a pod cannot see."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_EXCL)
    except OSError as err:
        if err.errno == errno.EBUSY:
            return True
        raise
    os.close(fd)
    return False


def _findmnt(mountpoint: str) -> tuple[str, str] | None:
    proc = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE,FSTYPE", "--mountpoint", mountpoint],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    source, _, fstype = proc.stdout.strip().splitlines()[0].partition(" ")
    return source.strip(), fstype.strip()


def _same_device(a: str, b: str) -> bool:
    try:
        return os.stat(a).st_rdev == os.stat(b).st_rdev
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _current(device: str) -> BlockDevice:
    devices = enrich(parse_lsblk(run_lsblk(device)))
    if not devices:
        raise ValueError(f"lsblk does not list {device}")
    return devices[0]


def check_only(args: argparse.Namespace) -> int:
    if not os.path.exists(args.device):
        return result("refused", f"{args.device} does not exist on this node")
    try:
        dev = _current(args.device)
    except (OSError, subprocess.CalledProcessError, ValueError) as err:
        return result("failed", f"cannot read {args.device}: {err}")
    if dev.serial != args.serial or dev.size != args.size:
        return result(
            "refused",
            f"{args.device} is not the recorded disk (serial {dev.serial!r}, size {dev.size})",
        )
    if dev.fstype != "xfs" or dev.label != args.label:
        return result(
            "refused",
            f"{args.device} carries {dev.fstype or 'no filesystem'} label {dev.label!r}, not our XFS",
        )
    mounted = _findmnt(args.mountpoint)
    if not mounted or not _same_device(mounted[0], args.device) or mounted[1] != "xfs":
        return result("refused", f"{args.device} is not mounted at {args.mountpoint}")
    st = os.statvfs(args.mountpoint)
    return result(
        "done",
        device=args.device,
        serial=dev.serial,
        size=dev.size,
        by_id=dev.by_id,
        formatted=False,
        free_bytes=st.f_bavail * st.f_frsize,
        fs_bytes=st.f_blocks * st.f_frsize,
        mountpoint=args.mountpoint,
    )


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
        "--allow-foreign-fs",
        action="store_true",
        help="format over an existing filesystem (second confirmation given)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing: is the device mounted as our XFS at the mountpoint?",
    )
    args = parser.parse_args(argv)
    if args.check:
        return check_only(args)

    device = args.device
    milestone(f"CHECKING {device}")
    if not os.path.exists(device):
        return result("refused", f"{device} does not exist on this node")
    try:
        dev = _current(device)
    except (OSError, subprocess.CalledProcessError, ValueError) as err:
        return result("failed", f"cannot read {device}: {err}")

    if dev.serial != args.serial:
        return result(
            "refused",
            f"serial mismatch on {device}: expected {args.serial!r}, found {dev.serial!r} — not the disk that was chosen",
        )
    if dev.size != args.size:
        return result(
            "refused",
            f"size mismatch on {device}: expected {args.size} bytes, found {dev.size} — not the disk that was chosen",
        )

    verdict = assess(dev, args.label, args.mountpoint)
    if not verdict.selectable:
        return result("refused", f"{device}: {verdict.reason}")
    mounted_here = verdict.ours and bool(dev.all_mounts)  # resume: ours, already at the mountpoint
    if not mounted_here:
        try:
            busy = [p.path for p in dev.walk() if _exclusive_busy(p.path)]
        except OSError as err:
            return result("failed", f"cannot open {device}: {err.strerror}")
        if busy:
            return result(
                "refused",
                f"{', '.join(busy)} is in use (mounted or held, possibly by the node itself)",
            )

    ours = dev.fstype == "xfs" and dev.label == args.label and not dev.children
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
        cmd = ["mkfs.xfs", "-L", args.label]
        if verdict.foreign:
            cmd.append("-f")  # only after the operator's second confirmation
        cmd.append(device)
        # re-check serial and size one last time right before mkfs
        try:
            again = _current(device)
        except (OSError, subprocess.CalledProcessError, ValueError) as err:
            return result("failed", f"cannot re-read {device}: {err}")
        if again.serial != args.serial or again.size != args.size:
            return result("refused", f"{device} changed under us (serial/size); nothing formatted")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return result(
                "failed", f"mkfs.xfs failed: {(proc.stderr or proc.stdout).strip()[-500:]}"
            )
        emit("format", device=device, formatted=True)

    os.makedirs(args.mountpoint, exist_ok=True)
    mounted = _findmnt(args.mountpoint)
    if mounted and _same_device(mounted[0], device):
        milestone(f"{device} already mounted at {args.mountpoint}")
    else:
        if mounted:
            return result(
                "refused",
                f"{args.mountpoint} already has {mounted[0]} ({mounted[1]}) mounted; unmount it first",
            )
        milestone(f"MOUNTING {device} to {args.mountpoint}...")
        proc = subprocess.run(
            ["mount", "-t", "xfs", device, args.mountpoint], capture_output=True, text=True
        )
        if proc.returncode != 0:
            return result("failed", f"mount failed: {(proc.stderr or proc.stdout).strip()}")
    check = _findmnt(args.mountpoint)
    if not check or not _same_device(check[0], device) or check[1] != "xfs":
        return result(
            "failed", f"findmnt does not show {device} as XFS at {args.mountpoint} (saw {check})"
        )
    st = os.statvfs(args.mountpoint)
    free = st.f_bavail * st.f_frsize
    total = st.f_blocks * st.f_frsize
    milestone(f"MOUNTED {device} at {args.mountpoint}: {free / 2**30:.1f} GiB free")
    return result(
        "done",
        device=device,
        serial=dev.serial,
        size=dev.size,
        by_id=dev.by_id,
        formatted=not ours,
        free_bytes=free,
        fs_bytes=total,
        mountpoint=args.mountpoint,
    )


if __name__ == "__main__":
    sys.exit(main())
