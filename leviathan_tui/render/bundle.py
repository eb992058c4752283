"""Every file `leviathan render` writes: exactly what would be applied or uploaded."""

from __future__ import annotations

from leviathan_tui.config import Config
from leviathan_tui.inference import engine_spec
from leviathan_tui.render.dockerfile import DOCKERFILE_NAME, dockerfile_text
from leviathan_tui.render.manifests import (
    agent_configmap,
    agent_pod,
    deployment,
    dump,
    host_check_pod,
    namespace,
    service,
)
from leviathan_tui.render.talos import talos_registry_patch, talos_storage_patch


def render_all(config: Config, *, digest: str | None = None) -> dict[str, str]:
    out = {
        "namespace.yaml": dump(namespace(config)),
        "leviathan-agent-configmap.yaml": dump(agent_configmap(config)),
        "sysadmin-logistics.yaml": dump(agent_pod(config, "sysadmin-logistics", "probe", [])),
        "leviathan-host-check.yaml": dump(host_check_pod(config, ".leviathan-marker")),
        "leviathan-deploy.yaml": dump(deployment(config, spec=engine_spec(config, digest=digest))),
        "leviathan-service.yaml": dump(service(config)),
        DOCKERFILE_NAME: dockerfile_text(config),
    }
    why_old, patch_old = talos_storage_patch(config, (1, 9))
    why_new, patch_new = talos_storage_patch(config, (1, 10))
    out["talos-storage-patch-1.9.yaml"] = f"# {why_old}\n{patch_old}"
    out["talos-storage-patch-1.10.yaml"] = f"# {why_new}\n{patch_new}"
    out["talos-registry-patch.yaml"] = talos_registry_patch(config)
    return out
