"""Block devices from `lsblk -J -b` (+ `blkid -p`), and which of them are safe to format.

Shared by the node agents and the wizard (stdlib only).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from leviathan_tui.agent.node import current

TALOS_SYSTEM_LABELS = frozenset({"EFI", "BIOS", "BOOT", "META", "STATE", "EPHEMERAL", "IMAGECACHE"})
FORMATTABLE_TYPES = frozenset({"disk"})
TEST_RIG_TYPES = frozenset({"loop"})  # only with allow_loop: test rigs, never the wizard


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
    uuid: str = ""
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
            "uuid": self.uuid,
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
            uuid=data.get("uuid", ""),
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
            uuid=_text(raw.get("uuid")),
            partlabel=_text(raw.get("partlabel")),
            pttype=_text(raw.get("pttype")),
            mountpoints=[m for m in (mounts or []) if m],
            rotational=_flag(raw.get("rota")),
            transport=_text(raw.get("tran")),
            children=[build(c) for c in raw.get("children") or []],
        )

    return [build(d) for d in data["blockdevices"]]


def assess(
    device: BlockDevice, label: str, mountpoint: str | None = None, *, allow_loop: bool = False
) -> Assessment:
    """`mountpoint`: where Leviathan mounts its disk; our own disk mounted exactly there is fine.
    `allow_loop`: accept loop devices (test rigs only; the wizard never passes it)."""
    allowed = FORMATTABLE_TYPES | (TEST_RIG_TYPES if allow_loop else frozenset())
    if device.type not in allowed:
        kind = {"loop": "a loop device", "rom": "a ROM drive", "part": "a partition"}.get(
            device.type, f"type {device.type or 'unknown'}"
        )
        return Assessment(False, f"{kind}: only whole disks can hold the model", False, "")
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


def identity_mismatch(
    dev: BlockDevice,
    serial: str,
    size: int,
    by_id: tuple[str, ...] | list[str] = (),
    fs_uuid: str = "",
) -> str:
    """Why `dev` is not the recorded disk, or "" when serial, size, by-id (when both have one) and
    filesystem UUID (once recorded) all match. The one rule for the agent and the wizard."""
    problems = []
    if dev.serial != serial:
        problems.append(f"serial {dev.serial or '-'} (recorded {serial or '-'})")
    if dev.size != size:
        problems.append(f"size {dev.size} bytes (recorded {size})")
    if by_id and dev.by_id and not set(by_id) & set(dev.by_id):
        problems.append(f"by-id {', '.join(dev.by_id)} (recorded {', '.join(by_id)})")
    if fs_uuid and dev.uuid != fs_uuid:
        problems.append(f"filesystem UUID {dev.uuid or 'none'} (recorded {fs_uuid})")
    return "; ".join(problems)


def device_event(
    device: BlockDevice, label: str, mountpoint: str | None = None, *, allow_loop: bool = False
) -> dict[str, Any]:
    """The fields of the probe's `device` event: what the device is and whether it may be used."""
    verdict = assess(device, label, mountpoint, allow_loop=allow_loop)
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


def signatures(device: BlockDevice) -> list[str]:
    """Every filesystem, partition table and label found on the device and its partitions."""
    found: list[str] = []
    for dev in device.walk():
        parts = []
        if dev.pttype and dev is device:
            parts.append(f"{dev.pttype} partition table")
        if dev.fstype:
            parts.append(dev.fstype)
        if dev.label:
            parts.append(f"label {dev.label!r}")
        if dev.partlabel:
            parts.append(f"partlabel {dev.partlabel!r}")
        if parts:
            found.append((dev.name + ": " if dev is not device else "") + " ".join(parts))
    return found


# --- live probing (on the node) ----------------------------------------------------------------


def run_lsblk(device: str | None = None) -> dict[str, Any]:
    return current().lsblk(device)


def enrich(devices: list[BlockDevice], probe: bool = True) -> list[BlockDevice]:
    """Fill FSTYPE/LABEL/UUID/PTTYPE from blkid -p where lsblk left them empty, and by-id names."""
    node = current()
    links = node.by_id_links()
    for top in devices:
        for dev in top.walk():
            dev.by_id = links.get(os.path.realpath(dev.path), []) or links.get(dev.path, [])
            if not probe:
                continue
            info = node.blkid(dev.path)
            dev.fstype = dev.fstype or info.get("TYPE", "")
            dev.label = dev.label or info.get("LABEL", "")
            dev.uuid = dev.uuid or info.get("UUID", "")
            dev.partlabel = dev.partlabel or info.get("PART_ENTRY_NAME", "")
            dev.pttype = dev.pttype or info.get("PTTYPE", "")
    return devices
