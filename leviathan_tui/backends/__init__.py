"""Backends: the only code that touches the outside world. Each has a dry-run twin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Backends:
    """What steps reach the world through. Real ones are built lazily (their imports are slow)."""

    kube: Any
    hub: Any
    ssh: Any  # a factory: ssh(ctx) -> connected session
    registry: Any
    http: Any
    dry_run: bool = False
    actions: list[str] = field(default_factory=list)  # what a dry run would have done


def real_backends(config: Any, on_retry: Any = None) -> Backends:
    from leviathan_tui.backends.http import HttpBackend
    from leviathan_tui.backends.hub import HubBackend
    from leviathan_tui.backends.kube import KubeBackend
    from leviathan_tui.backends.registry import RegistryBackend
    from leviathan_tui.backends.ssh import SshConnector

    return Backends(
        kube=KubeBackend(config.cluster, on_retry),
        hub=HubBackend(config.model),
        ssh=SshConnector(config.ssh),
        registry=RegistryBackend(config.registry),
        http=HttpBackend(),
    )


def dry_backends(
    config: Any, machine: dict[str, Any] | None = None, speed: float = 1.0
) -> Backends:
    from leviathan_tui.backends.dry import DryHttp, DryHub, DryKube, DryRegistry, DrySshConnector

    actions: list[str] = []
    return Backends(
        kube=DryKube(config, actions, machine, speed),
        hub=DryHub(config, actions),
        ssh=DrySshConnector(config, actions, speed),
        registry=DryRegistry(config, actions),
        http=DryHttp(config, actions, speed),
        dry_run=True,
        actions=actions,
    )
