"""The dry run's registry: the tags the simulated builder pushed, with their digests."""

from __future__ import annotations

from leviathan_tui.backends.registry import ManifestInfo
from leviathan_tui.config import Config
from leviathan_tui.dryrun.world import World


class DryRegistry:
    def __init__(self, config: Config, world: World, actions: list[str]) -> None:
        self.config = config
        self.world = world
        self.actions = actions
        self.base = f"{config.registry.scheme}://{config.registry.address}"

    def ping(self) -> None:
        self.actions.append(f"would check {self.base}/v2/")

    def tags(self, repository: str) -> list[str]:
        prefix = repository + ":"
        return [k[len(prefix) :] for k in self.world.read()["registry"] if k.startswith(prefix)]

    def manifest(self, repository: str, reference: str) -> ManifestInfo | None:
        digest = self.world.read()["registry"].get(f"{repository}:{reference}")
        if digest is None:
            return None
        return ManifestInfo(digest, "application/vnd.oci.image.manifest.v1+json", 1234)
