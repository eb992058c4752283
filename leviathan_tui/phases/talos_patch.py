"""The Talos machine-config patch for this node, saved in the state directory where the
operator applies it with talosctl."""

from __future__ import annotations

from pathlib import Path

from leviathan_tui.records import DataDisk, NodeFacts
from leviathan_tui.render.talos import storage_patch, talosctl_command
from leviathan_tui.runner import StepContext
from leviathan_tui.state import atomic_write

PATCH_FILE = "talos-storage-patch.yaml"


def talos_patch_file(
    ctx: StepContext, facts: NodeFacts | None, disk: DataDisk | None
) -> tuple[Path, str]:
    """(saved path, why) for the node's Talos version and the chosen disk."""
    patch = storage_patch(
        ctx.config, facts.talos_version if facts else None, disk.serial if disk else None
    )
    path = ctx.state.directory / PATCH_FILE
    why = patch.why + (f" Then {patch.reboot_note}." if patch.reboot_note else "")
    atomic_write(path, f"# {why}\n{patch.yaml}".encode())
    return path, why


def announce_patch(ctx: StepContext, facts: NodeFacts | None, disk: DataDisk | None) -> None:
    """Save the patch and tell the operator how to apply it."""
    path, why = talos_patch_file(ctx, facts, disk)
    node = (facts.internal_ip if facts else "") or ctx.config.cluster.node_name
    ctx.notice(
        "Talos patch for the data disk",
        f"{why}\nApply: {talosctl_command(node, str(path))}",
        str(path),
    )
