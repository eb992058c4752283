"""The dry run's cluster: helper pods run the real agents as local processes against the simulated
node; applied objects and namespace labels are kept in the world; the engine's pod comes up on a
simulated schedule."""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leviathan_tui.backends.kube import NodeInfo, PodStatus
from leviathan_tui.config import Config
from leviathan_tui.dryrun.world import World

DEVICE_PATHS = ("/dev", "/sys", "/proc", "/run/udev")  # answered by the simulated node


@dataclass
class LocalPod:
    manifest: dict[str, Any]
    process: subprocess.Popen[bytes]
    log_path: Path
    paths: dict[str, str]  # pod path -> local path


class DryKube:
    def __init__(
        self,
        config: Config,
        world: World,
        actions: list[str],
        speed: float,
        rescale: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        rescale_text: Callable[[str], str] | None = None,
    ) -> None:
        self.config = config
        self.world = world
        self.actions = actions
        self.speed = speed
        self.rescale = rescale or (lambda event: event)
        self.rescale_text = rescale_text or (lambda line: line)
        self.pods: dict[str, LocalPod] = {}
        self._lock = threading.Lock()

    def _do(self, text: str) -> None:
        with self._lock:
            self.actions.append(text)

    def describe(self) -> tuple[str, str]:
        return "dry-run", f"a simulated API server (world in {self.world.directory})"

    # --- the node ----------------------------------------------------------------------------

    def get_node(self, name: str) -> NodeInfo | None:
        if name != self.config.cluster.node_name:
            return None
        node = self.world.read()["node"]
        return NodeInfo(
            name,
            True,
            {"kubernetes.io/hostname": name, **node["labels"]},
            float(node["cpu"]),
            int(node["memory_bytes"]),
            int(node["gpus"]),
            node["os_image"],
            node["kubelet_version"],
            node["internal_ip"],
            {"Ready": "True"},
        )

    def list_nodes(self) -> list[NodeInfo]:
        node = self.get_node(self.config.cluster.node_name)
        return [node] if node else []

    def ensure_namespace(self, manifest: dict[str, Any]) -> str:
        name = manifest["metadata"]["name"]
        labels = dict(manifest["metadata"].get("labels") or {})
        with self.world.edit() as data:
            existed = name in data["namespaces"]
            data["namespaces"][name] = labels
        self._do(f"would create namespace {name} with {labels}")
        if existed:
            return f"dry-run: namespace {name} allows privileged pods"
        return (
            f"dry-run: namespace {name} created with pod-security.kubernetes.io/enforce=privileged"
        )

    def namespace_labels(self, name: str) -> dict[str, str] | None:
        return self.world.read()["namespaces"].get(name)

    def put_configmap(self, manifest: dict[str, Any]) -> None:
        self._do(
            f"would apply ConfigMap {manifest['metadata']['name']} ({len(manifest['data'])} agent files)"
        )

    # --- helper pods: the real agents as local processes -------------------------------------

    def _local_paths(self, manifest: dict[str, Any]) -> dict[str, str]:
        """Pod mount path -> where that hostPath lives in the simulated node."""
        spec = manifest["spec"]
        host_paths = {
            v["name"]: v["hostPath"]["path"]
            for v in spec.get("volumes", [])
            if "hostPath" in v and v["hostPath"]["path"].rstrip("/") not in DEVICE_PATHS
        }
        mapping = {}
        for mount in spec["containers"][0].get("volumeMounts", []):
            if mount["name"] in host_paths:
                local = self.world.node_root / host_paths[mount["name"]].lstrip("/")
                local.mkdir(parents=True, exist_ok=True)
                mapping[mount["mountPath"].rstrip("/")] = str(local)
        return mapping

    @staticmethod
    def _map(text: str, mapping: dict[str, str]) -> str:
        for pod_path, local in mapping.items():
            if text == pod_path or text.startswith(pod_path + "/"):
                return local + text[len(pod_path) :]
        return text

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        pod = self.pods.get(name)
        if pod is None:
            return None
        manifest = copy.deepcopy(pod.manifest)
        manifest["status"] = {"phase": self.pod_status(namespace, name).phase}
        return manifest

    def recreate_pod(self, manifest: dict[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        self.delete_pod(manifest["metadata"]["namespace"], name)
        container = manifest["spec"]["containers"][0]
        command = list(container["command"]) + list(container.get("args") or [])
        self._do(f"would create pod {name}: {shlex.join(command)}")
        mapping = self._local_paths(manifest)
        module = command[3]  # python3 -m leviathan_tui.agent.bootstrap MODULE ARGS...
        local_args = [self._map(arg, mapping) for arg in command[4:]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = self._map(str(item["value"]), mapping)
        if env.get("PYTHONPATH") == self.config.storage.agent_mount:
            # the ConfigMap a real pod mounts there holds this Leviathan's agents: so does this
            env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        env["HOSTNAME"] = name
        logs = self.world.directory / "pods"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "leviathan_tui.dryrun.agent_host",
                    str(self.world.directory),
                    module,
                    *local_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.world.directory,
            )
        self.pods[name] = LocalPod(manifest, process, log_path, mapping)

    def delete_pod(self, namespace: str, name: str, wait_s: float = 60.0) -> None:
        pod = self.pods.pop(name, None)
        if pod is None:
            return
        self._do(f"would delete pod {name}")
        if pod.process.poll() is None:
            pod.process.terminate()
            try:
                pod.process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                pod.process.kill()
                pod.process.wait()

    def pod_status(self, namespace: str, name: str) -> PodStatus:
        pod = self.pods.get(name)
        if pod is None:
            return PodStatus(name, "Missing")
        code = pod.process.poll()
        if code is None:
            return PodStatus(name, "Running", node=self.config.cluster.node_name)
        return PodStatus(
            name,
            "Succeeded" if code == 0 else "Failed",
            exit_code=code,
            reason="Completed" if code == 0 else "Error",
            node=self.config.cluster.node_name,
        )

    def follow_logs(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        previous: bool = False,
        follow: bool = True,
    ) -> Iterator[str]:
        pod = self.pods.get(name)
        if pod is None:
            return iter(())
        return self._tail(pod, follow)

    def _tail(self, pod: LocalPod, follow: bool) -> Iterator[str]:
        with open(pod.log_path, "rb") as handle:
            partial = b""
            while True:
                chunk = handle.readline()
                if chunk:
                    partial += chunk
                    if partial.endswith(b"\n"):
                        yield self._as_pod(
                            pod, partial.decode("utf-8", errors="replace").rstrip("\n")
                        )
                        partial = b""
                    continue
                if not follow or pod.process.poll() is not None:
                    rest = handle.read()
                    for line in (partial + rest).decode("utf-8", errors="replace").splitlines():
                        yield self._as_pod(pod, line)
                    return
                time.sleep(0.05)

    def _as_pod(self, pod: LocalPod, line: str) -> str:
        """The line as the pod would print it: pod paths, real byte counts."""
        for pod_path, local in pod.paths.items():
            line = line.replace(local, pod_path)
        if line.startswith(">> "):  # a milestone's sizes, as the real files'
            return self.rescale_text(line)
        if not line.startswith("{"):
            return line
        try:
            event = json.loads(line)
        except ValueError:
            return line
        return json.dumps(self.rescale(event)) if isinstance(event, dict) else line

    def pod_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        events = [
            {
                "type": "Normal",
                "reason": "Scheduled",
                "message": f"Successfully assigned {namespace}/{name} to {self.config.cluster.node_name}",
            }
        ]
        if name.startswith(self.config.deploy.name):
            elapsed = self._engine_elapsed()
            image = self._deployment_image()
            if elapsed > 0.5:
                events.append(
                    {"type": "Normal", "reason": "Pulling", "message": f"Pulling image {image}"}
                )
            if elapsed > 1.5:
                events.append(
                    {
                        "type": "Normal",
                        "reason": "Pulled",
                        "message": "Successfully pulled image in 41.2s (41.2s including waiting)",
                    }
                )
                events.append(
                    {"type": "Normal", "reason": "Started", "message": "Started container engine"}
                )
        return events

    # --- the engine's Deployment --------------------------------------------------------------

    def _engine_elapsed(self) -> float:
        applied = float(self.world.read().get("deployment_applied_at") or 0.0)
        return (time.time() - applied) * self.speed if applied else 0.0

    def _deployment_image(self) -> str:
        dep = self.get_deployment(self.config.cluster.namespace, self.config.deploy.name) or {}
        try:
            return dep["spec"]["template"]["spec"]["containers"][0]["image"]
        except (KeyError, IndexError):
            return "?"

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        if self.get_deployment(namespace, self.config.deploy.name) is None:
            return []
        elapsed = self._engine_elapsed()
        running = elapsed > 2.0
        state: dict[str, Any] = (
            {"running": {}} if running else {"waiting": {"reason": "ContainerCreating"}}
        )
        return [
            {
                "metadata": {
                    "name": f"{self.config.deploy.name}-7d9f8c6b5-x2k4q",
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                },
                "spec": {"nodeName": self.config.cluster.node_name},
                "status": {
                    "phase": "Running" if running else "Pending",
                    "containerStatuses": [{"ready": running, "restartCount": 0, "state": state}],
                },
            }
        ]

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        self._do(f"would server-side apply {kind} {name}")
        with self.world.edit() as data:
            if kind == "Deployment" and data["applied"].get(f"{kind}/{name}") != manifest:
                data["deployment_applied_at"] = time.time()
            data["applied"][f"{kind}/{name}"] = manifest
        return manifest

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.world.read()["applied"].get(f"Deployment/{name}")

    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.world.read()["applied"].get(f"Service/{name}")

    def close(self) -> None:
        for name in list(self.pods):
            self.delete_pod(self.config.cluster.namespace, name, wait_s=5.0)
