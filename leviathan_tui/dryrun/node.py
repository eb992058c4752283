"""The simulated node the real agents run against in a dry run.

`lsblk` and `blkid` are answered from the `--machine` listing plus what earlier agents changed;
`mkfs.xfs` and `mount` are recorded in the world instead of run; free space is the disk's size
less what the dry download wrote (scaled back up). Everything else — the refusal rules, the
identity checks, the locking — is the agents' own code.
"""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path
from typing import Any

from leviathan_tui.agent.node import Node
from leviathan_tui.dryrun.world import SCALE, World

XFS_OVERHEAD = 0.99  # what XFS leaves free on an empty disk, roughly


def _walk(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for dev in devices:
        out.append(dev)
        out.extend(_walk(dev.get("children") or []))
    return out


def _used_bytes(root: Path) -> int:
    used = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                used += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return used * SCALE


class SimulatedNode(Node):
    def __init__(self, world: World) -> None:
        self.world = world

    # --- what the node reports ---------------------------------------------------------------

    def _view(self) -> list[dict[str, Any]]:
        data = self.world.read()
        devices = copy.deepcopy(data["machine"].get("blockdevices") or [])
        mounts_by_device: dict[str, list[str]] = {}
        for mountpoint, device in data["mounts"].items():
            mounts_by_device.setdefault(device, []).append(mountpoint)
        for dev in _walk(devices):
            path = dev.get("path") or f"/dev/{dev.get('name')}"
            change = data["disks"].get(path)
            if change:
                dev.update(fstype="xfs", label=change["label"], uuid=change["uuid"], pttype=None)
                dev["children"] = []  # mkfs on the whole disk wiped the partition table
            if path in mounts_by_device:
                dev["mountpoints"] = [
                    m for m in dev.get("mountpoints") or [] if m
                ] + mounts_by_device[path]
        return devices

    def lsblk(self, device: str | None = None) -> dict[str, Any]:
        devices = self._view()
        if device:
            devices = [
                d for d in _walk(devices) if (d.get("path") or f"/dev/{d.get('name')}") == device
            ]
        return {"blockdevices": devices}

    def blkid(self, path: str) -> dict[str, str]:
        for dev in _walk(self._view()):
            if (dev.get("path") or f"/dev/{dev.get('name')}") == path:
                info = {
                    "TYPE": dev.get("fstype"),
                    "LABEL": dev.get("label"),
                    "UUID": dev.get("uuid"),
                    "PTTYPE": dev.get("pttype"),
                    "PART_ENTRY_NAME": dev.get("partlabel"),
                }
                return {k: str(v) for k, v in info.items() if v}
        return {}

    def by_id_links(self, root: str = "/dev/disk/by-id") -> dict[str, list[str]]:
        links: dict[str, list[str]] = {}
        for dev in self._view():
            if dev.get("serial"):
                model = str(dev.get("model") or "disk").replace(" ", "_")
                path = dev.get("path") or f"/dev/{dev.get('name')}"
                transport = dev.get("tran") or "ata"
                links[path] = [f"{transport}-{model}_{dev['serial']}"]
        return links

    def device_exists(self, path: str) -> bool:
        return any((d.get("path") or f"/dev/{d.get('name')}") == path for d in _walk(self._view()))

    def exclusive_busy(self, path: str) -> bool:
        for dev in _walk(self._view()):
            if (dev.get("path") or f"/dev/{dev.get('name')}") == path:
                return any(m for d in _walk([dev]) for m in d.get("mountpoints") or [])
        return False

    def findmnt(self, mountpoint: str) -> tuple[str, str] | None:
        device = self.world.read()["mounts"].get(os.path.normpath(mountpoint))
        return (device, "xfs") if device else None

    def same_device(self, a: str, b: str) -> bool:
        return a == b

    def space(self, path: str) -> tuple[int, int]:
        data = self.world.read()
        target = os.path.normpath(path)
        for mountpoint, device in data["mounts"].items():
            if target == mountpoint or target.startswith(mountpoint + os.sep):
                size = next(
                    int(d.get("size") or 0)
                    for d in _walk(data["machine"]["blockdevices"])
                    if (d.get("path") or f"/dev/{d.get('name')}") == device
                )
                total = int(size * XFS_OVERHEAD)
                return max(0, total - _used_bytes(Path(mountpoint))), total
        return super().space(path)

    def fs_type(self, path: str) -> str:
        target = os.path.normpath(path)
        mounts = self.world.read()["mounts"]
        if any(target == m or target.startswith(m + os.sep) for m in mounts):
            return "xfs"
        return "overlayfs"

    def cpu(self) -> tuple[str, list[str]]:
        node = self.world.read()["node"]
        return node["cpu_model"], list(node["cpu_flags"])

    # --- what the node does ------------------------------------------------------------------

    def mkfs_xfs(self, device: str, label: str, force: bool) -> tuple[int, str]:
        with self.world.edit() as data:
            data["disks"][device] = {"label": label, "uuid": str(uuid.uuid4())}
            data["formats"].append({"device": device, "label": label, "force": force})
        return 0, f"meta-data={device} (simulated: mkfs.xfs -L {label} {device} recorded)"

    def file_size(self, path: str) -> int:
        return os.path.getsize(path) * SCALE  # the dry download wrote one byte for every SCALE

    def merge_gguf(self, first_shard: str, out: str, on_line: Any) -> int:
        """The shards (the dry download's scaled-down bytes) end to end: a file of the merged
        size, so the disk's free space counts it; not a GGUF anyone loads."""
        from leviathan_tui.agent.merge import shard_paths

        paths = shard_paths(first_shard) or [first_shard]
        with open(out, "wb") as merged:
            for path in paths:
                on_line(f"gguf_merge: reading {os.path.basename(path)} (simulated)")
                with open(path, "rb") as shard:
                    while chunk := shard.read(1 << 20):
                        merged.write(chunk)
        on_line(f"gguf_merge: {out} merged from {len(paths)} split (simulated)")
        return 0

    def mount_xfs(self, device: str, mountpoint: str) -> tuple[int, str]:
        os.makedirs(mountpoint, exist_ok=True)
        with self.world.edit() as data:
            data["mounts"][os.path.normpath(mountpoint)] = device
        return 0, ""
