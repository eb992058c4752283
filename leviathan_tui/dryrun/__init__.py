"""The dry run: every backend's twin, over one simulated world kept in the dry-run state
directory. The twins fake only the edge — the node's devices, the Hub's bytes, the build host's
builder, the registry, the engine — and run the real agents and remote-job scripts against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leviathan_tui.backends import Backends
from leviathan_tui.config import Config


def dry_backends(
    config: Config, state_dir: Path, machine: dict[str, Any] | None = None, speed: float = 1.0
) -> Backends:
    from leviathan_tui.dryrun.buildhost import DrySshConnector
    from leviathan_tui.dryrun.engine import DryHttp
    from leviathan_tui.dryrun.hub import DryHub
    from leviathan_tui.dryrun.kube import DryKube
    from leviathan_tui.dryrun.registry import DryRegistry
    from leviathan_tui.dryrun.world import World

    world, note = World.open(state_dir / "world", machine)
    actions: list[str] = [note]
    hub = DryHub(config, world, actions, speed)
    kube = DryKube(
        config, world, actions, speed, rescale=hub.rescale, rescale_text=hub.rescale_text
    )
    backends = Backends(
        kube=kube,
        hub=hub,
        ssh=DrySshConnector(config, world, actions, speed),
        registry=DryRegistry(config, world, actions),
        http=DryHttp(config, world, actions, speed),
        dry_run=True,
        actions=actions,
        closers=[kube.close, hub.close],
    )
    backends.endpoint_for_pods = lambda: hub.endpoint
    return backends
