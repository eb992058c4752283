"""The Talos machine-config patch for this node, saved in the state directory where the
operator can apply it with talosctl."""

from __future__ import annotations

from pathlib import Path

from leviathan_tui.records import DataDisk, NodeFacts
from leviathan_tui.render.talos import talos_storage_patch
from leviathan_tui.runner import StepContext
from leviathan_tui.state import atomic_write

PATCH_FILE = "talos-storage-patch.yaml"


def talos_patch_file(
    ctx: StepContext, facts: NodeFacts | None, disk: DataDisk | None
) -> tuple[Path, str]:
    """(saved path, why) for the node's Talos version and the chosen disk."""
    version = facts.talos_version if facts else None
    why, patch = talos_storage_patch(ctx.config, version, disk.serial if disk else None)
    path = ctx.state.directory / PATCH_FILE
    atomic_write(path, f"# {why}\n{patch}".encode())
    return path, why
