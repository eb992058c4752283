"""Block devices from `lsblk -J -b` (+ `blkid -p`), and which of them are safe to format.

Shared by the node agents and the wizard (stdlib only).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

LSBLK_COLUMNS = "NAME,PATH,SIZE,TYPE,MODEL,SERIAL,FSTYPE,LABEL,MOUNTPOINTS,ROTA,TRAN"
TALOS_SYSTEM_LABELS = frozenset({"EFI", "BIOS", "BOOT", "META", "STATE", "EPHEMERAL", "IMAGECACHE"})
FORMATTABLE_TYPES = frozenset({"disk", "loop"})


@dataclass
class BlockDevice:
    name: str
    path: str
    size: int
    type: str
    model: str = ""
    serial: str = ""
    fstype: str = ""
    label: str = ""
    partlabel: str = ""
    pttype: str = ""
    mountpoints: list[str] = field(default_factory=list)
    rotational: bool = False
    transport: str = ""
    by_id: list[str] = field(default_factory=list)
    children: list[BlockDevice] = field(default_factory=list)

    def walk(self) -> list[BlockDevice]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out

    @property
    def all_mounts(self) -> list[str]:
        return [m for d in self.walk() for m in d.mountpoints]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "size": self.size,
            "type": self.type,
            "model": self.model,
            "serial": self.serial,
            "fstype": self.fstype,
            "label": self.label,
            "partlabel": self.partlabel,
            "pttype": self.pttype,
            "mountpoints": self.mountpoints,
            "rotational": self.rotational,
            "transport": self.transport,
            "by_id": self.by_id,
            "children": [c.to_json() for c in self.children],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockDevice:
        kids = [cls.from_json(c) for c in data.get("children") or []]
        return cls(
            name=data["name"],
            path=data["path"],
            size=int(data["size"]),
            type=data.get("type", ""),
            model=data.get("model", ""),
            serial=data.get("serial", ""),
            fstype=data.get("fstype", ""),
            label=data.get("label", ""),
            partlabel=data.get("partlabel", ""),
            pttype=data.get("pttype", ""),
            mountpoints=list(data.get("mountpoints") or []),
            rotational=bool(data.get("rotational")),
            transport=data.get("transport", ""),
            by_id=list(data.get("by_id") or []),
            children=kids,
        )


@dataclass(frozen=True)
class Assessment:
    """What formatting this device would mean."""

    selectable: bool
    reason: str  # why not selectable, or "" when selectable
    ours: bool  # already an XFS with our label: mount, never format
    foreign: str  # description of existing data ("ext4 label 'x'", "gpt partition table"), or ""


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true")


def parse_lsblk(payload: str | dict[str, Any]) -> list[BlockDevice]:
    data = json.loads(payload) if isinstance(payload, str) else payload
    if not isinstance(data, dict) or not isinstance(data.get("blockdevices"), list):
        raise ValueError("not lsblk -J output: no 'blockdevices' list")

    def build(raw: dict[str, Any]) -> BlockDevice:
        name = _text(raw.get("name"))
        mounts = raw.get("mountpoints")
        if mounts is None and raw.get("mountpoint"):
            mounts = [raw["mountpoint"]]
        return BlockDevice(
            name=name,
            path=_text(raw.get("path")) or f"/dev/{name}",
            size=int(raw.get("size") or 0),
            type=_text(raw.get("type")),
            model=_text(raw.get("model")),
            serial=_text(raw.get("serial")),
            fstype=_text(raw.get("fstype")),
            label=_text(raw.get("label")),
            mountpoints=[m for m in (mounts or []) if m],
            rotational=_flag(raw.get("rota")),
            transport=_text(raw.get("tran")),
            children=[build(c) for c in raw.get("children") or []],
        )

    return [build(d) for d in data["blockdevices"]]


def assess(device: BlockDevice, label: str, mountpoint: str | None = None) -> Assessment:
    """`mountpoint`: where Leviathan mounts its disk; our own disk mounted exactly there is fine."""
    if device.type not in FORMATTABLE_TYPES:
        return Assessment(
            False,
            f"type {device.type or 'unknown'} cannot be formatted (only whole disks)",
            False,
            "",
        )
    if device.size <= 0:
        return Assessment(False, "empty device (size 0)", False, "")
    system = sorted(
        {d.label.upper() for d in device.walk() if d.label.upper() in TALOS_SYSTEM_LABELS}
        | {d.partlabel.upper() for d in device.walk() if d.partlabel.upper() in TALOS_SYSTEM_LABELS}
    )
    if system:
        return Assessment(False, f"Talos system disk (partitions {', '.join(system)})", False, "")
    mounts = device.all_mounts
    ours = device.fstype == "xfs" and device.label == label and not device.children
    if mounts:
        if ours and mountpoint and set(mounts) == {mountpoint}:
            return Assessment(
                True, "", True, ""
            )  # resume: already formatted and mounted by Leviathan
        return Assessment(False, f"mounted at {', '.join(mounts)}", False, "")
    if ours:
        return Assessment(True, "", True, "")
    foreign = ""
    if device.fstype:
        foreign = device.fstype + (f" label {device.label!r}" if device.label else "")
    elif device.children:
        parts = ", ".join(
            f"{c.name} ({c.fstype or 'no filesystem'}{' ' + repr(c.label) if c.label else ''})"
            for c in device.children
        )
        foreign = f"{device.pttype or 'a'} partition table: {parts}"
    elif device.pttype:
        foreign = f"{device.pttype} partition table"
    return Assessment(True, "", False, foreign)


def device_event(device: BlockDevice, label: str, mountpoint: str | None = None) -> dict[str, Any]:
    """The fields of the probe's `device` event: what the device is and whether it may be used."""
    verdict = assess(device, label, mountpoint)
    return {
        "path": device.path,
        "size": device.size,
        "model": device.model,
        "serial": device.serial,
        "selectable": verdict.selectable,
        "reason": verdict.reason,
        "ours": verdict.ours,
        "foreign": verdict.foreign,
    }


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


# --- live probing (on the node) ----------------------------------------------------------------


def run_lsblk(device: str | None = None) -> dict[str, Any]:
    cmd = ["lsblk", "-J", "-b", "-o", LSBLK_COLUMNS]
    if device:
        cmd.append(device)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def blkid_probe(path: str) -> dict[str, str]:
    """`blkid -p` reads the superblock itself: right even where udev never ran (empty lsblk FSTYPE)."""
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


def by_id_links(root: str = "/dev/disk/by-id") -> dict[str, list[str]]:
    links: dict[str, list[str]] = {}
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return links
    for name in names:
        target = os.path.realpath(os.path.join(root, name))
        links.setdefault(target, []).append(name)
    return links


def enrich(devices: list[BlockDevice], probe: bool = True) -> list[BlockDevice]:
    """Fill FSTYPE/LABEL/PTTYPE from blkid -p where lsblk left them empty, and by-id names."""
    links = by_id_links()
    for top in devices:
        for dev in top.walk():
            dev.by_id = links.get(os.path.realpath(dev.path), [])
            if not probe:
                continue
            info = blkid_probe(dev.path)
            dev.fstype = dev.fstype or info.get("TYPE", "")
            dev.label = dev.label or info.get("LABEL", "")
            dev.partlabel = dev.partlabel or info.get("PART_ENTRY_NAME", "")
            dev.pttype = dev.pttype or info.get("PTTYPE", "")
    return devices
