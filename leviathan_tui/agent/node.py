"""The agents' only access to the node's devices and mounts.

Every question an agent asks the machine (which block devices, what a superblock says, is a device
held, what is mounted where, how much room is left) and every change it makes (mkfs, mount) goes
through a `Node`. The real one runs the node's own tools; the dry run installs a simulated one
(`install`) and then runs the agents' unchanged code, so every refusal rule the dry run shows is
the agents' own.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

LSBLK_COLUMNS = (
    "NAME,PATH,SIZE,TYPE,MODEL,SERIAL,FSTYPE,LABEL,UUID,PTTYPE,PARTLABEL,MOUNTPOINTS,ROTA,TRAN"
)


class Node:
    """The machine the agent runs on."""

    def lsblk(self, device: str | None = None) -> dict[str, Any]:
        cmd = ["lsblk", "-J", "-b", "-o", LSBLK_COLUMNS]
        if device:
            cmd.append(device)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def blkid(self, path: str) -> dict[str, str]:
        """`blkid -p` reads the superblock itself: right even where udev never ran."""
        try:
            proc = subprocess.run(
                ["blkid", "-p", "-o", "export", path], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return {}
        info: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                info[key] = value
        return info

    def by_id_links(self, root: str = "/dev/disk/by-id") -> dict[str, list[str]]:
        links: dict[str, list[str]] = {}
        try:
            names = sorted(os.listdir(root))
        except OSError:
            return links
        for name in names:
            target = os.path.realpath(os.path.join(root, name))
            links.setdefault(target, []).append(name)
        return links

    def device_exists(self, path: str) -> bool:
        return os.path.exists(path)

    def exclusive_busy(self, path: str) -> bool:
        """The kernel refuses an O_EXCL open of a block device that is mounted or held, in any
        mount namespace — including the node's, which lsblk inside a pod cannot see."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_EXCL)
        except OSError as err:
            if err.errno == errno.EBUSY:
                return True
            raise
        os.close(fd)
        return False

    def findmnt(self, mountpoint: str) -> tuple[str, str] | None:
        """(source, fstype) of what is mounted exactly at `mountpoint`, or None."""
        proc = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE,FSTYPE", "--mountpoint", mountpoint],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            return None
        source, _, fstype = proc.stdout.strip().splitlines()[0].partition(" ")
        return source.strip(), fstype.strip()

    def same_device(self, a: str, b: str) -> bool:
        try:
            return os.stat(a).st_rdev == os.stat(b).st_rdev
        except OSError:
            return os.path.realpath(a) == os.path.realpath(b)

    def mkfs_xfs(self, device: str, label: str, force: bool) -> tuple[int, str]:
        cmd = ["mkfs.xfs", "-L", label, *(["-f"] if force else []), device]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        return proc.returncode, (proc.stderr or proc.stdout).strip()

    def mount_xfs(self, device: str, mountpoint: str) -> tuple[int, str]:
        os.makedirs(mountpoint, exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "xfs", device, mountpoint], capture_output=True, text=True
        )
        return proc.returncode, (proc.stderr or proc.stdout).strip()

    def file_size(self, path: str) -> int:
        return os.path.getsize(path)

    def merge_gguf(self, first_shard: str, out: str, on_line: Callable[[str], None]) -> int:
        """`llama-gguf-split --merge FIRST OUT` (from PATH, or /app in llama.cpp's images); its
        output lines go to `on_line` as they come. Returns its exit code (127: no such tool)."""
        tool = shutil.which("llama-gguf-split") or "/app/llama-gguf-split"
        if not os.access(tool, os.X_OK):
            on_line("llama-gguf-split is in neither PATH nor /app of this image")
            return 127
        proc = subprocess.Popen(
            [tool, "--merge", first_shard, out],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.replace("\033[3D", "").rstrip()  # gguf-split's cursor moves
            if line:
                on_line(line)
        return proc.wait()

    def space(self, path: str) -> tuple[int, int]:
        """(free bytes, filesystem bytes) at `path`."""
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    def fs_type(self, path: str) -> str:
        proc = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
        return proc.stdout.strip()

    def cpu(self) -> tuple[str, list[str]]:
        """(model name, instruction-set flags) of the node's CPU, from /proc/cpuinfo."""
        model, flags = "", []
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    key, _, value = line.partition(":")
                    key = key.strip()
                    if key == "model name" and not model:
                        model = value.strip()
                    elif key in ("flags", "Features") and not flags:
                        flags = value.split()
                    if model and flags:
                        break
        except OSError:
            pass
        return model, flags


_current: Node = Node()


def current() -> Node:
    return _current


def install(node: Node) -> None:
    """Use another Node (the dry run's simulated one) for every agent in this process."""
    global _current
    _current = node
