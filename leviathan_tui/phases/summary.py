"""What the TUI's summary, its palette and the Talos reminder say about a session, read from the
records and the configuration (UI-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leviathan_tui.config import Config
from leviathan_tui.phases.deploy import curl_line
from leviathan_tui.phases.talos_patch import PATCH_FILE
from leviathan_tui.records import DataDisk, Health, ImageRef, NodeFacts
from leviathan_tui.render.talos import talos_storage_patch, talosctl_command
from leviathan_tui.state import REPLAY_FILE


def talos_patch(config: Config, state: Any) -> tuple[str, str]:
    """(why, patch): the machine-config patch that keeps the recorded disk mounted."""
    facts, disk = state.get(NodeFacts), state.get(DataDisk)
    return talos_storage_patch(
        config, facts.talos_version if facts else None, disk.serial if disk else None
    )


def health_base_url(config: Config, state: Any) -> str:
    """Where to check the engine: the configured URL, the last check's, else the node's."""
    health, facts = state.get(Health), state.get(NodeFacts)
    base = config.deploy.health_url or (health.base_url if health else "")
    if not base and facts and facts.internal_ip:
        base = f"http://{facts.internal_ip}:{config.deploy.node_port}"
    return base


def summary_lines(config: Config, state: Any, directory: Path, command: str) -> dict[str, str]:
    """The summary after a bring-up: the endpoint, a curl to try, what was deployed, how to
    replay it and check it later, and the Talos reminder."""
    health = state.get(Health)
    image, disk = state.get(ImageRef), state.get(DataDisk)
    facts = state.get(NodeFacts)
    base = health.base_url if health else f"http://NODE:{config.deploy.node_port}"
    model = health.model if health else config.deploy.model_name
    replay = directory / REPLAY_FILE
    lines = {
        "Endpoint": f"{base}/v1  (OpenAI-style; model {model})",
        "Try it": curl_line(base, model),
        "Image": f"{config.image_ref} @ {image.digest if image else '-'}",
        "Model files": f"{config.host_path(config.gguf_dir)} on {disk.identity() if disk else '?'}",
        "Replay": f"{replay}\n{command} --replay {replay}",
        "Check health later": f"{command} health --url {base}",
    }
    if health:
        lines["First reply"] = f"{health.reply}  (time to first token {health.ttft_s} s)"
        for label, value in health.bench:
            lines[f"Benchmark: {label}"] = value
    why, _ = talos_patch(config, state)
    node = (facts.internal_ip if facts else "") or config.cluster.node_name
    lines["Talos patch (keeps the disk mounted after a reboot)"] = (
        f"{why}\n{talosctl_command(node, str(directory / PATCH_FILE))}"
    )
    return lines
