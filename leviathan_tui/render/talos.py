"""Talos machine-config patches, per Talos version: what lets the pods share the data disk's
mount, what keeps it mounted across a reboot, and what lets the node pull from a plain-HTTP
registry. Built from the YAML in assets/talos, filled structurally.

What each version can do (read from siderolabs/talos at v1.9.6, v1.10.9, v1.11.6, v1.12.11):
- kubelet.go binds /var/mnt into the kubelet not at all (1.9) or rshared read-only (1.10-1.12):
  the rw `machine.kubelet.extraMounts` patch is needed for the hostPath and the pod's mount.
- UserVolumeConfig (1.10+) creates its own GPT partition (`u-<name>`) and never adopts a
  whole-disk XFS (block/internal/volumes/disk.go: not empty and not GPT => not usable), and a loose
  selector would partition another blank disk: Leviathan never renders one.
- ExistingVolumeConfig (1.11+) finds an existing filesystem by a CEL selector and mounts it at
  /var/mnt/<name> without formatting (volume_config.go handleExistingVolumeConfig).
So on 1.9 and 1.10 nothing in Talos remounts a whole-disk XFS after a reboot: a run of the storage
phase does (it finds Leviathan's XFS by label and UUID and mounts it, never formats it).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import yaml

from leviathan_tui.assets import read_asset
from leviathan_tui.config import Config
from leviathan_tui.render.manifests import dump

USER_VOLUME_MOUNTS = "/var/mnt"
EXISTING_VOLUME = (1, 11)
KUBELET_READ_ONLY_BIND = (1, 10)


def parse_talos_version(os_image: str) -> tuple[int, int] | None:
    """'Talos (v1.9.5)' -> (1, 9)."""
    match = re.search(r"v?(\d+)\.(\d+)", os_image or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class TalosPatch:
    why: str  # what the patch does and what survives a reboot, for this version
    yaml: str  # one file, possibly several documents
    reboot_note: str  # what the operator does after a reboot, if anything


def _version_text(version: tuple[int, int] | None) -> str:
    return f"{version[0]}.{version[1]}" if version else "of unknown version (assumed <= 1.10)"


def volume_name(config: Config) -> str | None:
    """The ExistingVolumeConfig name for storage.host_mount, when it is /var/mnt/<name>."""
    mount = config.storage.host_mount.rstrip("/")
    parent, _, name = mount.rpartition("/")
    if parent == USER_VOLUME_MOUNTS and re.fullmatch(r"[A-Za-z0-9-]+", name):
        return name
    return None


def selector(config: Config, serial: str | None) -> str:
    """Exactly Leviathan's filesystem: XFS with our label, on the chosen disk when it is known."""
    match = f'volume.name == "xfs" && volume.label == "{config.storage.label}"'
    if serial:
        match += f' && disk.serial == "{serial}"'
    return match


def kubelet_mounts(config: Config) -> dict:
    doc = yaml.safe_load(read_asset("talos", "extramounts.yaml"))
    mount = doc["machine"]["kubelet"]["extraMounts"][0]
    parent = config.storage.host_mount.rstrip("/").rsplit("/", 1)[0] or "/"
    mount["destination"] = parent
    mount["source"] = parent
    return doc


def existing_volume(config: Config, serial: str | None) -> dict | None:
    name = volume_name(config)
    if name is None:
        return None
    doc = yaml.safe_load(read_asset("talos", "existing-volume.yaml"))
    doc["name"] = name
    doc["discovery"]["volumeSelector"]["match"] = selector(config, serial)
    return doc


def storage_patch(
    config: Config, talos_version: tuple[int, int] | None, serial: str | None = None
) -> TalosPatch:
    version = _version_text(talos_version)
    docs = [kubelet_mounts(config)]
    parent = config.storage.host_mount.rstrip("/").rsplit("/", 1)[0] or "/"
    why = [
        f"Talos {version}: the kubelet must see {parent} read-write with shared propagation "
        "(machine.kubelet.extraMounts) for the hostPath and the mount made from the privileged pod."
    ]
    if talos_version is not None and talos_version >= EXISTING_VOLUME:
        volume = existing_volume(config, serial)
        if volume is not None:
            docs.append(volume)
            why.append(
                f"An ExistingVolumeConfig makes Talos mount Leviathan's XFS at "
                f"{config.storage.host_mount} on every boot; it never formats "
                + (
                    "and is pinned to the chosen disk's serial."
                    if serial
                    else "(the chosen disk's serial is added once a disk is chosen)."
                )
            )
            return TalosPatch(" ".join(why), "---\n".join(dump(d) for d in docs), "")
        why.append(
            f"storage.host_mount {config.storage.host_mount} is not /var/mnt/<name>, where Talos "
            "mounts existing volumes: nothing keeps the disk mounted across a reboot."
        )
    else:
        why.append(
            "Nothing in this Talos version mounts a whole-disk XFS at boot (UserVolumeConfig and "
            "machine.disks make their own partitions): a mount made from a pod does not survive a reboot."
        )
    note = (
        "after a reboot run the storage phase again (leviathan --only storage): it finds "
        "Leviathan's XFS by label and UUID and mounts it, never formats it"
    )
    return TalosPatch(" ".join(why), dump(docs[0]), note)


def talos_storage_patch(
    config: Config, talos_version: tuple[int, int] | None, serial: str | None = None
) -> tuple[str, str]:
    """(explanation, patch YAML) for this Talos version; see `storage_patch`."""
    patch = storage_patch(config, talos_version, serial)
    why = patch.why + (f" Then {patch.reboot_note}." if patch.reboot_note else "")
    return why, patch.yaml


def talosctl_command(node: str, patch_path: str) -> str:
    """The command line, quoted for a shell (a state directory may hold spaces)."""
    return f"talosctl -n {shlex.quote(node)} patch mc --patch {shlex.quote('@' + patch_path)}"


def talos_registry_patch(config: Config) -> str:
    doc = yaml.safe_load(read_asset("talos", "registry-mirror.yaml"))
    address = config.registry.address
    doc["machine"]["registries"]["mirrors"] = {
        address: {"endpoints": [f"{config.registry.scheme}://{address}"]}
    }
    return dump(doc)
