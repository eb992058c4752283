"""Preflight: the node exists and is Ready, what it has (CPU, RAM, GPUs with their architecture),
and the namespace allows privileged pods."""

from __future__ import annotations

from typing import Any

from leviathan_tui.errors import StepError
from leviathan_tui.phases.talos_patch import announce_patch
from leviathan_tui.records import Gpu, NodeFacts
from leviathan_tui.render.manifests import namespace
from leviathan_tui.runner import Step, StepContext
from leviathan_tui.units import human_size

GFD_PRODUCT = "nvidia.com/gpu.product"
GFD_MEMORY = "nvidia.com/gpu.memory"  # MiB
GFD_COUNT = "nvidia.com/gpu.count"
GFD_MAJOR = "nvidia.com/gpu.compute.major"
GFD_MINOR = "nvidia.com/gpu.compute.minor"
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"


def gpus_from_labels(labels: dict[str, str], allocatable: int) -> tuple[Gpu, ...]:
    """NVIDIA GPU Feature Discovery labels -> the node's GPU model (GFD labels one model per node)."""
    product = labels.get(GFD_PRODUCT, "")
    if not product:
        return ()
    try:
        memory = int(labels[GFD_MEMORY]) if labels.get(GFD_MEMORY) else None
    except ValueError:
        memory = None
    major, minor = labels.get(GFD_MAJOR, ""), labels.get(GFD_MINOR, "")
    compute = f"{major}.{minor}" if major.isdigit() and minor.isdigit() else None
    try:
        count = int(labels.get(GFD_COUNT) or allocatable or 0)
    except ValueError:
        count = allocatable
    return (Gpu(product, count, memory, compute),)


def node_facts(info: Any) -> NodeFacts:
    return NodeFacts(
        name=info.name,
        ready=info.ready,
        os_image=info.os_image,
        kubelet_version=info.kubelet_version,
        internal_ip=info.internal_ip,
        cpu=info.cpu,
        memory_bytes=info.memory_bytes,
        gpu_count=info.gpus,
        gpus=gpus_from_labels(info.labels, info.gpus),
        labels=tuple(sorted(info.labels.items())),
    )


class NodePreflightStep(Step):
    id = "preflight.node"
    title = "Check the node and namespace"
    phase = "preflight"
    publishes = (NodeFacts,)

    def check(self, ctx: StepContext) -> str | None:
        if ctx.get(NodeFacts) is None or ctx.state.status(self.id) not in ("done", "skipped"):
            return None
        node = ctx.backends.kube.get_node(ctx.config.cluster.node_name)
        labels = ctx.backends.kube.namespace_labels(ctx.config.cluster.namespace)
        if node is None or not node.ready or (labels or {}).get(PSA_ENFORCE) != "privileged":
            return None
        ctx.publish(node_facts(node))  # allocatable memory or GPUs may have changed
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
        facts = node_facts(node)
        ctx.log(
            f"node {name}: {node.os_image or 'unknown OS'}, {node.cpu:g} CPUs, "
            f"{human_size(node.memory_bytes)} RAM, {node.gpus} nvidia.com/gpu allocatable"
        )
        for gpu in facts.gpus:
            memory = f"{gpu.memory_mib / 1024:.0f} GiB" if gpu.memory_mib else "memory unknown"
            ctx.log(
                f"GPU: {gpu.count} x {gpu.product}, {memory}, compute capability {gpu.compute or 'unknown'}"
            )
        if node.gpus and not facts.gpus:
            ctx.log(
                "the node has no NVIDIA GPU Feature Discovery labels (nvidia.com/gpu.product, "
                ".compute.major/minor): the build will ask for the GPU architecture",
                "warn",
            )
        if node.gpus and ctx.config.deploy.gpus > node.gpus:
            raise StepError(
                f"deploy.gpus is {ctx.config.deploy.gpus} but node {name} has {node.gpus} "
                "nvidia.com/gpu allocatable: the engine's pod could never be scheduled",
                f"set deploy.gpus to at most {node.gpus}",
            )
        if node.gpus == 0:
            ctx.log(
                f"node {name} advertises no nvidia.com/gpu: the engine cannot be scheduled until the NVIDIA "
                "system extensions, RuntimeClass nvidia and the device plugin are installed",
                "warn",
            )
        ctx.publish(facts)
        announce_patch(ctx, facts, None)  # the kubelet mount is needed before the storage phase
        message = kube.ensure_namespace(namespace(ctx.config))
        ctx.log(message, "warn" if "added" in message else "info")
        return f"{name} Ready, {node.os_image or 'unknown OS'}, namespace {ctx.config.cluster.namespace} allows privileged pods"
