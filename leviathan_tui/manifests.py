"""Manifests: base YAML from assets/, filled structurally (load, set fields, dump) — never by
string substitution, so a value can never break the YAML around it."""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any

import yaml

from leviathan_tui.assets import read_asset
from leviathan_tui.config import Config
from leviathan_tui.engines import CONFIG_MOUNT, GGUF_MOUNT, EngineSpec, engine_spec

AGENT_CONFIGMAP = "leviathan-agent"
AGENT_MODULES = (
    "__init__.py",
    "_emit.py",
    "probe.py",
    "disk.py",
    "fetch.py",
    "fetch_events.py",
    "fetch_plan.py",
    "fetch_records.py",
    "fetch_run.py",
    "fetch_verify.py",
    "autoscale.py",
    "hasher.py",
    "ranged_http.py",
    "segments.py",
    "throttle.py",
    "transfer.py",
    "writer_lock.py",
    "hostcheck.py",
    "lsblk.py",
)
LABEL_MANAGED = {"app.kubernetes.io/managed-by": "leviathan"}


def load_manifest(name: str) -> dict[str, Any]:
    return yaml.safe_load(read_asset("manifests", name))


def dump(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=120)


def namespace(config: Config) -> dict[str, Any]:
    ns = load_manifest("namespace.yaml")
    ns["metadata"]["name"] = config.cluster.namespace
    return ns


@functools.cache
def _agent_sources() -> tuple[tuple[str, str], ...]:
    agent_pkg = files("leviathan_tui.agent")
    sources = [("leviathan_tui.__init__.py", "")]
    for module in AGENT_MODULES:
        sources.append(
            (f"leviathan_tui.agent.{module}", (agent_pkg / module).read_text(encoding="utf-8"))
        )
    return tuple(sources)


def agent_configmap(config: Config) -> dict[str, Any]:
    """The node agents' source, shipped to the pod in a ConfigMap (not baked into an image)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": AGENT_CONFIGMAP,
            "namespace": config.cluster.namespace,
            "labels": dict(LABEL_MANAGED),
        },
        "data": dict(_agent_sources()),
    }


def _configmap_items(configmap: dict[str, Any]) -> list[dict[str, str]]:
    items = []
    for key in configmap["data"]:
        module_path = key.removeprefix("leviathan_tui.")
        if module_path.startswith("agent."):
            path = "leviathan_tui/agent/" + module_path.removeprefix("agent.")
        else:
            path = "leviathan_tui/" + module_path
        items.append({"key": key, "path": path})
    return items


def _set_agent_volume(pod: dict[str, Any], config: Config, configmap: dict[str, Any]) -> None:
    for volume in pod["spec"]["volumes"]:
        if volume["name"] == "agent":
            volume["configMap"] = {"name": AGENT_CONFIGMAP, "items": _configmap_items(configmap)}
    for container in pod["spec"]["containers"]:
        for mount in container["volumeMounts"]:
            if mount["name"] == "agent":
                mount["mountPath"] = config.storage.agent_mount
            if mount["name"] == "data":
                mount["mountPath"] = config.storage.pod_mount
        for env in container.get("env", []):
            if env["name"] == "PYTHONPATH":
                env["value"] = config.storage.agent_mount
    for volume in pod["spec"]["volumes"]:
        if volume["name"] == "data":
            volume["hostPath"]["path"] = config.storage.host_mount


def agent_pod(
    config: Config,
    name: str,
    module: str,
    args: list[str],
    *,
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The privileged helper pod (the plan's sysadmin-logistics), running one agent module."""
    pod = load_manifest("sysadmin-logistics.yaml")
    pod["metadata"]["name"] = name
    pod["metadata"]["namespace"] = config.cluster.namespace
    pod["metadata"]["labels"]["leviathan/task"] = module
    pod["spec"]["nodeName"] = config.cluster.node_name
    container = pod["spec"]["containers"][0]
    container["image"] = config.storage.agent_image
    container["command"] = ["python3", "-m", f"leviathan_tui.agent.{module}", *args]
    if env:
        container["env"].extend(env)
    _set_agent_volume(pod, config, agent_configmap(config))
    return pod


def host_check_pod(config: Config, marker: str) -> dict[str, Any]:
    pod = load_manifest("host-check.yaml")
    pod["metadata"]["namespace"] = config.cluster.namespace
    pod["spec"]["nodeName"] = config.cluster.node_name
    container = pod["spec"]["containers"][0]
    container["image"] = config.storage.agent_image
    container["command"] = [
        "python3",
        "-m",
        "leviathan_tui.agent.hostcheck",
        "--path",
        config.storage.pod_mount,
        "--marker",
        marker,
    ]
    _set_agent_volume(pod, config, agent_configmap(config))
    return pod


def deployment(
    config: Config,
    *,
    spec: EngineSpec | None = None,
    memory_request_bytes: int | None = None,
) -> dict[str, Any]:
    spec = spec or engine_spec(config)
    d = config.deploy
    dep = load_manifest("leviathan-deploy.yaml")
    labels = {"app.kubernetes.io/name": d.name}
    dep["metadata"].update(name=d.name, namespace=config.cluster.namespace)
    dep["metadata"]["labels"]["app.kubernetes.io/name"] = d.name
    dep["metadata"]["labels"]["leviathan/engine"] = spec.name
    dep["spec"]["selector"]["matchLabels"] = dict(labels)
    template = dep["spec"]["template"]
    template["metadata"]["labels"] = dict(labels)
    pod_spec = template["spec"]
    pod_spec["nodeName"] = config.cluster.node_name
    container = pod_spec["containers"][0]
    container["image"] = spec.image
    container["command"] = list(spec.command)
    container["args"] = list(spec.args)
    if spec.name == "ktransformers":
        container["workingDir"] = "/opt/ktransformers"
    container["ports"][0]["containerPort"] = d.service_port
    container["resources"]["limits"]["nvidia.com/gpu"] = d.gpus
    if memory_request_bytes:
        container["resources"]["requests"]["memory"] = f"{max(1, memory_request_bytes // 2**30)}Gi"
    if spec.readiness_path != "/v1/models":
        container["readinessProbe"]["httpGet"]["path"] = spec.readiness_path
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    volumes["gguf"]["hostPath"]["path"] = config.host_path(config.gguf_dir)
    volumes["model-config"]["hostPath"]["path"] = config.host_path(config.config_dir)
    volumes["dshm"]["emptyDir"]["sizeLimit"] = f"{d.shm_size_gib}Gi"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    mounts["gguf"]["mountPath"] = GGUF_MOUNT
    mounts["model-config"]["mountPath"] = CONFIG_MOUNT
    return dep


def service(config: Config) -> dict[str, Any]:
    svc = load_manifest("leviathan-service.yaml")
    d = config.deploy
    svc["metadata"].update(name=d.name, namespace=config.cluster.namespace)
    svc["metadata"]["labels"]["app.kubernetes.io/name"] = d.name
    svc["spec"]["selector"] = {"app.kubernetes.io/name": d.name}
    port = svc["spec"]["ports"][0]
    port["port"] = d.service_port
    port["nodePort"] = d.node_port
    return svc


# --- Talos machine-config patches -----------------------------------------------------------


def parse_talos_version(os_image: str) -> tuple[int, int] | None:
    """'Talos (v1.9.5)' -> (1, 9)."""
    import re

    match = re.search(r"v?(\d+)\.(\d+)", os_image or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def talos_storage_patch(
    config: Config, talos_version: tuple[int, int] | None, serial: str | None = None
) -> tuple[str, str]:
    """(explanation, patch YAML) that keeps the data disk mounted across reboots."""
    if talos_version is not None and talos_version >= (1, 10):
        doc = yaml.safe_load(read_asset("talos", "uservolume.yaml"))
        mount_name = config.storage.host_mount.rstrip("/").rsplit("/", 1)[-1]
        doc["name"] = mount_name
        doc["provisioning"]["diskSelector"]["match"] = (
            f'disk.serial == "{serial}"' if serial else '!system_disk && disk.transport == "nvme"'
        )
        why = (
            f"Talos {talos_version[0]}.{talos_version[1]}: a mount made from a pod does not survive a reboot. "
            f"A UserVolumeConfig makes Talos mount the disk at /var/mnt/{mount_name} on every boot "
            "(Talos provisions the volume itself)."
        )
        return why, dump(doc)
    doc = yaml.safe_load(read_asset("talos", "extramounts.yaml"))
    mount = doc["machine"]["kubelet"]["extraMounts"][0]
    parent = config.storage.host_mount.rstrip("/").rsplit("/", 1)[0] or "/"
    mount["destination"] = parent
    mount["source"] = parent
    version = (
        f"{talos_version[0]}.{talos_version[1]}"
        if talos_version
        else "unknown version (assuming <= 1.9)"
    )
    why = (
        f"Talos {version}: Bidirectional mount propagation needs the kubelet to see {parent} "
        "as an rshared bind mount (machine.kubelet.extraMounts)."
    )
    return why, dump(doc)


def talos_registry_patch(config: Config) -> str:
    doc = yaml.safe_load(read_asset("talos", "registry-mirror.yaml"))
    address = config.registry.address
    doc["machine"]["registries"]["mirrors"] = {
        address: {"endpoints": [f"{config.registry.scheme}://{address}"]}
    }
    return dump(doc)


def render_all(config: Config, *, digest: str | None = None) -> dict[str, str]:
    """Every file `leviathan render` writes: exactly what would be applied or uploaded."""
    from leviathan_tui.phases.build import dockerfile_text

    cm = agent_configmap(config)
    out = {
        "namespace.yaml": dump(namespace(config)),
        "leviathan-agent-configmap.yaml": dump(cm),
        "sysadmin-logistics.yaml": dump(agent_pod(config, "sysadmin-logistics", "probe", [])),
        "leviathan-host-check.yaml": dump(host_check_pod(config, ".leviathan-marker")),
        "leviathan-deploy.yaml": dump(deployment(config, spec=engine_spec(config, digest=digest))),
        "leviathan-service.yaml": dump(service(config)),
        "Dockerfile.leviathan": dockerfile_text(config),
    }
    why_old, patch_old = talos_storage_patch(config, (1, 9))
    why_new, patch_new = talos_storage_patch(config, (1, 10))
    out["talos-storage-patch-1.9.yaml"] = f"# {why_old}\n{patch_old}"
    out["talos-storage-patch-1.10.yaml"] = f"# {why_new}\n{patch_new}"
    out["talos-registry-patch.yaml"] = talos_registry_patch(config)
    return out
