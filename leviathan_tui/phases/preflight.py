"""Preflight: the node exists and is Ready, the namespace allows privileged pods, and the
operator gets the Talos patch that keeps the data disk mounted across reboots."""

from __future__ import annotations

from leviathan_tui.agent.lsblk import human_size
from leviathan_tui.engine import Step, StepContext
from leviathan_tui.errors import StepError
from leviathan_tui.manifests import namespace, parse_talos_version, talos_storage_patch


class NodePreflightStep(Step):
    id = "preflight.node"
    title = "Check the node and namespace"
    phase = "preflight"
    needs = ()

    def check(self, ctx: StepContext) -> str | None:
        if ctx.state.status(self.id) not in ("done", "skipped"):
            return None
        node = ctx.backends.kube.get_node(ctx.config.cluster.node_name)
        labels = ctx.backends.kube.namespace_labels(ctx.config.cluster.namespace)
        if (
            node is None
            or not node.ready
            or (labels or {}).get("pod-security.kubernetes.io/enforce") != "privileged"
        ):
            return None
        return f"{node.name} still Ready, namespace {ctx.config.cluster.namespace} still privileged"

    def run(self, ctx: StepContext) -> str:
        kube = ctx.backends.kube
        name = ctx.config.cluster.node_name
        node = kube.get_node(name)
        if node is None:
            names = ", ".join(n.name for n in kube.list_nodes()) or "none"
            raise StepError(
                f"node {name} does not exist (nodes: {names})",
                "set cluster.node_name to the GPU node's name (kubectl get nodes)",
            )
        if not node.ready:
            raise StepError(
                f"node {name} is not Ready ({', '.join(f'{k}={v}' for k, v in node.conditions.items())})",
                f"check the node: talosctl -n {node.internal_ip or name} health",
            )
        ctx.log(
            f"node {name}: {node.os_image or 'unknown OS'}, {node.cpu:g} CPUs, {human_size(node.memory_bytes)} RAM, "
            f"{node.gpus} nvidia.com/gpu allocatable"
        )
        for key, value in (
            ("cpu", node.cpu),
            ("memory_bytes", node.memory_bytes),
            ("gpus", node.gpus),
            ("os_image", node.os_image),
            ("internal_ip", node.internal_ip),
            ("kubelet_version", node.kubelet_version),
        ):
            ctx.set_artifact(key, value)
        if node.gpus == 0:
            ctx.log(
                f"node {name} advertises no nvidia.com/gpu: the engine cannot be scheduled until the NVIDIA "
                "system extensions, RuntimeClass nvidia and the device plugin are installed",
                "warn",
            )
        message = kube.ensure_namespace(namespace(ctx.config))
        ctx.log(message, "warn" if "added" in message else "info")
        version = parse_talos_version(node.os_image)
        why, patch = talos_storage_patch(ctx.config, version)
        path = ctx.state.directory / "talos-storage-patch.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {why}\n{patch}", encoding="utf-8")
        ctx.notice(
            "Talos patch: keep the data disk mounted across reboots", f"# {why}\n{patch}", str(path)
        )
        return f"{name} Ready ({node.os_image or 'unknown OS'}), namespace {ctx.config.cluster.namespace} allows privileged pods"
