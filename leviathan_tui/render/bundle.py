"""Every file `leviathan render` writes: exactly what would be applied or uploaded."""

from __future__ import annotations

import textwrap
from pathlib import Path

from leviathan_tui.config import Config
from leviathan_tui.errors import LeviathanError, UsageError
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


def write_all(config: Config, out: Path, *, digest: str | None = None) -> list[Path]:
    """Render every file into `out` (created when missing); the paths written, in order."""
    from leviathan_tui.state import StateWriteError, atomic_write

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {out}: cannot create it: {err.strerror or err}") from None
    written = []
    for name, text in render_all(config, digest=digest).items():
        target = out / name
        if target.is_dir():
            raise UsageError(f"{target}: is a directory; remove it or choose another --out")
        try:
            atomic_write(target, text.encode("utf-8"))
        except StateWriteError as err:
            raise LeviathanError(err.message, err.fix("choose another --out")) from None
        written.append(target)
    return written
