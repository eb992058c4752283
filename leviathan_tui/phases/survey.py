"""The plan shown before anything changes: where Leviathan will act and what it will do there.

Read-only: the kubeconfig, the node and the namespace are read through the API, the build host's
key is looked up in known_hosts (no connection), the model is listed on the Hub. The TUI's plan
screen and `leviathan plan` print the same lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from leviathan_tui.config import ClusterConfig, Config, RegistryConfig, SshConfig
from leviathan_tui.errors import LeviathanError
from leviathan_tui.inference import engine_spec
from leviathan_tui.phases.download import KTRANSFORMERS_RAM_FRACTION
from leviathan_tui.phases.plan_line import PlanLine
from leviathan_tui.phases.preflight import PSA_ENFORCE, node_facts
from leviathan_tui.records import DataDisk, ModelFiles
from leviathan_tui.units import decimal_size, duration, human_size, rate


def example_addresses(config: Config) -> list[tuple[str, str]]:
    """(config key, value) that still hold the deployment plan's example values."""
    checks = [
        ("cluster.node_name", config.cluster.node_name, ClusterConfig().node_name),
        ("ssh.host", config.ssh.host, SshConfig().host),
        ("registry.address", config.registry.address, RegistryConfig().address),
    ]
    return [(key, value) for key, value, example in checks if value == example]


def _guard(topic: str, fn: Any) -> Iterator[PlanLine]:
    try:
        yield from fn()
    except LeviathanError as err:
        yield PlanLine(topic, err.message, "error", err.hint)
    except Exception as err:  # noqa: BLE001 - the plan never ends in a traceback
        yield PlanLine(topic, f"{type(err).__name__}: {err}", "error")


def survey(
    config: Config,
    backends: Any,
    dry_run: bool = False,
    disk: DataDisk | None = None,
    on_disk: ModelFiles | None = None,
) -> Iterator[PlanLine]:
    """The plan's lines; `disk` and `on_disk` are what a resumed session has recorded: the data
    disk and the model files already downloaded and verified."""
    kube, hub, ssh = backends.kube, backends.hub, backends.ssh
    facts_holder: list[Any] = []
    model_total: list[int] = []

    for key, value in example_addresses(config):
        if dry_run:
            yield PlanLine("config", f"{key} is the plan's example {value} (fine for a dry run)")
        else:
            yield PlanLine(
                "config",
                f"{key} is still the plan's example value {value}",
                "warn",
                f"set {key} in a config file and pass --config FILE",
            )

    def cluster() -> Iterator[PlanLine]:
        context, server = kube.describe()
        yield PlanLine("cluster", f"kube context {context} at {server}", "ok")

    def node() -> Iterator[PlanLine]:
        info = kube.get_node(config.cluster.node_name)
        if info is None:
            names = ", ".join(n.name for n in kube.list_nodes()) or "none"
            yield PlanLine(
                "node",
                f"{config.cluster.node_name} does not exist (nodes: {names})",
                "error",
                "set cluster.node_name to the GPU node's name",
            )
            return
        facts = node_facts(info)
        facts_holder.append(facts)
        talos = ".".join(map(str, facts.talos_version)) if facts.talos_version else "?"
        yield PlanLine(
            "node",
            f"{facts.name}: {'Ready' if facts.ready else 'NOT Ready'}, Talos {talos}, "
            f"{facts.cpu:g} CPUs, {human_size(facts.memory_bytes)} RAM",
            "ok" if facts.ready else "error",
        )
        for gpu in facts.gpus:
            memory = f"{gpu.memory_mib / 1024:.0f} GiB" if gpu.memory_mib else "memory unknown"
            yield PlanLine(
                "node",
                f"GPU {gpu.count} x {gpu.product}, {memory}, compute {gpu.compute or '?'}",
                "ok",
            )
        if not facts.gpu_count:
            yield PlanLine(
                "node",
                "no nvidia.com/gpu allocatable",
                "warn",
                "install the NVIDIA system extensions, RuntimeClass nvidia and the device plugin",
            )

    def namespace() -> Iterator[PlanLine]:
        ns = config.cluster.namespace
        labels = kube.namespace_labels(ns)
        if labels is None:
            yield PlanLine(
                "namespace",
                f"will create {ns} labelled {PSA_ENFORCE}=privileged (Talos enforces baseline elsewhere)",
            )
        elif labels.get(PSA_ENFORCE) != "privileged":
            yield PlanLine(
                "namespace",
                f"will label {ns} {PSA_ENFORCE}=privileged (now {labels.get(PSA_ENFORCE, 'unset')})",
                "warn",
            )
        else:
            yield PlanLine("namespace", f"{ns} already allows privileged pods", "ok")

    def build_host() -> Iterator[PlanLine]:
        if config.deploy.engine != "ktransformers":
            yield PlanLine("build host", f"not used: {config.deploy.engine} runs its own image")
            return
        known = ssh.known()
        yield PlanLine(
            "build host",
            f"{ssh.describe()}: "
            + (
                "host key known"
                if known
                else "host key not in known_hosts; you will be shown its fingerprint"
            ),
            "ok" if known else "info",
        )
        yield PlanLine(
            "registry",
            f"{config.registry.scheme}://{config.registry.address} ← {config.image_ref}",
        )

    def model() -> Iterator[PlanLine]:
        plan = hub.plan()
        model_total.append(plan.total)
        yield PlanLine(
            "model",
            f"{config.model.repo} {plan.folder}: {len(plan.gguf)} shards + {len(plan.config)} "
            f"config files, {decimal_size(plan.total)}"
            + ("" if plan.exact else " (a recorded listing: real sizes, no hashes)"),
            "ok",
        )
        yield PlanLine(
            "model",
            f"to {config.host_path(config.gguf_dir)} on "
            + (
                f"the recorded disk {disk.path} (never formatted again)"
                if disk
                else "the disk you choose"
            )
            + " (needs "
            f"{decimal_size(plan.total + config.storage.min_free_margin_gib * 2**30)} with margin)",
        )

    yield from _guard("cluster", cluster)
    yield from _guard("node", node)
    yield from _guard("namespace", namespace)
    yield from _guard("build host", build_host)
    yield from _guard("model", model)

    spec = engine_spec(config)
    yield PlanLine("engine", f"{spec.title}: {spec.image}")
    if model_total and facts_holder and config.deploy.engine != "vllm":
        need = int(model_total[0] * KTRANSFORMERS_RAM_FRACTION)
        have = facts_holder[0].memory_bytes
        if have < need:
            yield PlanLine(
                "engine",
                f"the node has {human_size(have)} RAM; the experts need about {decimal_size(need)}",
                "warn",
                "choose a smaller quant (model.quant) or a node with more RAM",
            )
    if on_disk is not None and on_disk.verified:
        yield PlanLine(
            "ETA",
            f"nothing to download: {on_disk.files} files, {decimal_size(on_disk.total)}, are on "
            "the disk and were verified (they are checked again); the build runs meanwhile",
            "ok",
        )
    elif model_total:
        bandwidth = config.download.expected_bytes_per_s
        if config.download.max_bytes_per_s:
            bandwidth = min(bandwidth, config.download.max_bytes_per_s)
        source = (
            "download.max_bytes_per_s"
            if bandwidth == config.download.max_bytes_per_s
            else "download.expected_bytes_per_s"
        )
        # the plan does not read the disk: on a resume, what is on it already is not fetched again
        bound, kept = ("at most ", "; what is on the disk already is kept") if disk else ("", "")
        yield PlanLine(
            "ETA",
            f"download {bound}about {duration(model_total[0] / bandwidth)} at {rate(bandwidth)} "
            f"({source}){kept}; the build runs meanwhile",
        )
