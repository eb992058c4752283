"""Every file `leviathan render` writes: exactly what would be applied or uploaded."""

from __future__ import annotations

import textwrap

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
from leviathan_tui.render.talos import (
    talos_registry_patch,
    talos_storage_patch,
    talosctl_command,
)


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
    for version in ((1, 9), (1, 10), (1, 11)):
        name = f"talos-storage-patch-{version[0]}.{version[1]}.yaml"
        why, patch = talos_storage_patch(config, version)
        header = textwrap.fill(why, 98, initial_indent="# ", subsequent_indent="# ")
        apply = talosctl_command(config.cluster.node_name, name)
        out[name] = f"{header}\n# Apply: {apply}\n{patch}"
    out["talos-registry-patch.yaml"] = talos_registry_patch(config)
    return out
