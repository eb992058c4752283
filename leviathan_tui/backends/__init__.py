"""Backends: the only code that touches the outside world. Each has a dry-run twin
(`leviathan_tui.dryrun`) behind the same Protocol (`backends.protocols`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Backends:
    """What steps reach the world through. Real ones are built lazily (their imports are slow)."""

    kube: Any
    hub: Any
    ssh: Any
    registry: Any
    http: Any
    dry_run: bool = False
    actions: list[str] = field(default_factory=list)  # what a dry run would have done
    closers: list[Callable[[], None]] = field(default_factory=list)
    endpoint_for_pods: Callable[[], str | None] = lambda: None

    @property
    def hub_endpoint(self) -> str | None:
        """The Hub endpoint agent pods use, when it is not the configured one (the dry run's)."""
        return self.endpoint_for_pods()

    def close(self) -> None:
        for close in self.closers:
            close()


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
