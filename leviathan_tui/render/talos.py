"""Talos machine-config patches: what keeps the data disk mounted and what lets the node pull
from a plain-HTTP registry. Built from the YAML in assets/talos, filled structurally."""

from __future__ import annotations

import re

import yaml

from leviathan_tui.assets import read_asset
from leviathan_tui.config import Config
from leviathan_tui.render.manifests import dump


def parse_talos_version(os_image: str) -> tuple[int, int] | None:
    """'Talos (v1.9.5)' -> (1, 9)."""
    match = re.search(r"v?(\d+)\.(\d+)", os_image or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def talos_storage_patch(
    config: Config, talos_version: tuple[int, int] | None, serial: str | None = None
) -> tuple[str, str]:
    """(explanation, patch YAML) that keeps the data disk mounted across reboots."""
    if talos_version is not None and talos_version >= (1, 10):
        doc = yaml.safe_load(read_asset("talos", "uservolume.yaml"))
        mount_name = config.storage.host_mount.rstrip("/").rsplit("/", 1)[-1]
        doc["name"] = mount_name
        doc["provisioning"]["diskSelector"]["match"] = (
            f'disk.serial == "{serial}"' if serial else '!system_disk && disk.transport == "nvme"'
        )
        why = (
            f"Talos {talos_version[0]}.{talos_version[1]}: a mount made from a pod does not survive a reboot. "
            f"A UserVolumeConfig makes Talos mount the disk at /var/mnt/{mount_name} on every boot "
            "(Talos provisions the volume itself)."
        )
        return why, dump(doc)
    doc = yaml.safe_load(read_asset("talos", "extramounts.yaml"))
    mount = doc["machine"]["kubelet"]["extraMounts"][0]
    parent = config.storage.host_mount.rstrip("/").rsplit("/", 1)[0] or "/"
    mount["destination"] = parent
    mount["source"] = parent
    version = (
        f"{talos_version[0]}.{talos_version[1]}"
        if talos_version
        else "unknown version (assuming <= 1.9)"
    )
    why = (
        f"Talos {version}: Bidirectional mount propagation needs the kubelet to see {parent} "
        "as an rshared bind mount (machine.kubelet.extraMounts)."
    )
    return why, dump(doc)


def talos_registry_patch(config: Config) -> str:
    doc = yaml.safe_load(read_asset("talos", "registry-mirror.yaml"))
    address = config.registry.address
    doc["machine"]["registries"]["mirrors"] = {
        address: {"endpoints": [f"{config.registry.scheme}://{address}"]}
    }
    return dump(doc)
