"""A small stand-in for the Kubernetes API, for tests only.

It speaks the API's JSON for the calls Leviathan makes — nodes, namespaces, config maps, pods
(phases that advance, logs that stream), events, deployments and services by server-side apply —
validates every object it receives against the official schema (kubernetes-validate, strict, the
version it reports) and answers 422 with a Status body like a real server. It enforces Pod
Security the way Talos does (baseline unless the namespace says privileged). Pods may run their
command as a local process, so the log stream is real. Any request it does not implement is
answered 501 and recorded, so a test can fail loudly on it.

A Deployment's pod may run a local process too (`deployment_process`, see
`local_container_command`): it is restarted when it exits, with a back-off, as the kubelet
restarts a container of a pod whose restartPolicy is Always (the `restartCount`, `lastState`
and previous log say so), and it is stopped when a new rollout replaces the pod.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate
import yaml

PSA = "pod-security.kubernetes.io/enforce"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


@dataclass
class PodRun:
    manifest: dict[str, Any]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    phase: str = "Pending"
    exit_code: int | None = None
    started: float = 0.0
    reason: str = ""
    waiting_reason: str = ""
    waiting_message: str = ""
    unschedulable: str = ""
    last_terminated: str = ""
    restarts: int = 0
    previous_log: str = ""
    removed: bool = False  # deleted or replaced: its process is not restarted


@dataclass
class StandIn:
    version: str = "1.30.0"
    nodes: list[dict[str, Any]] = field(default_factory=list)
    run_pods_locally: bool = True
    start_delay_s: float = 0.2
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kube-standin-")))
    deployment_pod_delay_s: float = 0.5
    deployment_pod_script: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    pod_env: dict[str, str] = field(default_factory=dict)  # extra environment of locally run pods
    on_deployment: Callable[[dict[str, Any]], None] | None = None
    # a Deployment's pod manifest -> the local process that runs its container (argv, env)
    deployment_process: Callable[[dict[str, Any]], tuple[list[str], dict[str, str]]] | None = None
    restart_backoff_s: float = 10.0  # the kubelet's first crash back-off

    def __post_init__(self) -> None:
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], PodRun] = {}
        self.events: list[dict[str, Any]] = []
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.unimplemented: list[str] = []
        self.rejected: list[str] = []
        self.fail_next: list[int] = []
        self.forbid: set[tuple[str, str]] = set()  # (verb, resource) answered 403
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.lock = threading.RLock()
        self.server: ThreadingHTTPServer | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> str:
        handler = type("Handler", (_Handler,), {"standin": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        with self.lock:
            runs = list(self.pods.values())
        for run in runs:
            run.removed = True
            if run.process and run.process.poll() is None:
                os.killpg(run.process.pid, 9)
                run.process.wait()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def kubeconfig(self, path: Path) -> Path:
        assert self.server is not None
        url = f"http://127.0.0.1:{self.server.server_address[1]}"
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "sandbox",
            "clusters": [{"name": "sandbox", "cluster": {"server": url}}],
            "users": [{"name": "tester", "user": {"token": "sandbox-token"}}],
            "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "tester"}}],
        }
        path.write_text(yaml.safe_dump(doc))
        return path

    def add_node(
        self,
        name: str,
        *,
        ready: bool = True,
        cpu: str = "64",
        memory: str = "768Gi",
        gpus: str = "1",
        os_image: str = "Talos (v1.9.5)",
        ip: str = "127.0.0.1",
    ) -> None:
        self.nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "status": {
                    "allocatable": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus},
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    "nodeInfo": {"osImage": os_image, "kubeletVersion": f"v{self.version}"},
                    "addresses": [
                        {"type": "InternalIP", "address": ip},
                        {"type": "Hostname", "address": name},
                    ],
                },
            }
        )

    # --- behaviour ------------------------------------------------------------------------

    def validate(self, obj: dict[str, Any]) -> str | None:
        try:
            kubernetes_validate.validate(obj, self.version, strict=True)
        except Exception as err:  # ValidationError, or no schema for that kind/version
            first = (getattr(err, "message", None) or str(err)).splitlines()[0]
            where = ".".join(map(str, getattr(err, "path", []) or []))
            return f"{first}{' at ' + where if where else ''}"
        return None

    def psa_violation(self, namespace: str, pod: dict[str, Any]) -> str | None:
        labels = (self.namespaces.get(namespace, {}).get("metadata") or {}).get("labels") or {}
        if labels.get(PSA, "baseline") == "privileged":
            return None
        problems = []
        privileged = [
            c["name"]
            for c in pod["spec"].get("containers", [])
            if (c.get("securityContext") or {}).get("privileged")
        ]
        if privileged:
            problems.append(
                f'privileged (container "{privileged[0]}" must not set securityContext.privileged=true)'
            )
        host_paths = [v["name"] for v in pod["spec"].get("volumes", []) if "hostPath" in v]
        if host_paths:
            problems.append(
                f"hostPath volumes (volumes {', '.join(repr(h).replace(chr(39), chr(34)) for h in host_paths)})"
            )
        if not problems:
            return None
        return f'pods "{pod["metadata"]["name"]}" is forbidden: violates PodSecurity "baseline:latest": {", ".join(problems)}'

    def event(
        self, namespace: str, name: str, reason: str, message: str, kind: str = "Normal"
    ) -> None:
        with self.lock:
            self.events.append(
                {
                    "metadata": {"name": f"{name}.{uuid.uuid4().hex[:8]}", "namespace": namespace},
                    "involvedObject": {"kind": "Pod", "name": name, "namespace": namespace},
                    "reason": reason,
                    "message": message,
                    "type": kind,
                    "count": 1,
                    "firstTimestamp": now(),
                    "lastTimestamp": now(),
                }
            )

    def create_pod(self, namespace: str, manifest: dict[str, Any]) -> PodRun:
        name = manifest["metadata"]["name"]
        manifest = copy.deepcopy(manifest)
        manifest["metadata"].update(
            namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now(), resourceVersion="1"
        )
        manifest["status"] = {"phase": "Pending"}
        run = PodRun(manifest, self.workdir / f"{namespace}-{name}-{uuid.uuid4().hex[:6]}.log")
        run.log_path.touch()
        with self.lock:
            self.pods[(namespace, name)] = run
        node = manifest["spec"].get("nodeName")
        if node and not any(n["metadata"]["name"] == node for n in self.nodes):
            self.event(
                namespace,
                name,
                "FailedScheduling",
                f'0/{len(self.nodes)} nodes are available: node "{node}" not found.',
                "Warning",
            )
            return run
        self.event(
            namespace, name, "Scheduled", f"Successfully assigned {namespace}/{name} to {node}"
        )
        threading.Thread(target=self._start_pod, args=(namespace, run), daemon=True).start()
        return run

    def _materialize(self, namespace: str, run: PodRun) -> dict[str, str]:
        """Container paths of configMap volumes -> local directories holding their files."""
        spec = run.manifest["spec"]
        mapping: dict[str, str] = {}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in spec["containers"][0].get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                with self.lock:
                    cm = self.configmaps.get((namespace, volume["configMap"]["name"]))
                if cm is None:
                    raise FileNotFoundError(f"configmap {volume['configMap']['name']} not found")
                target = run.log_path.with_suffix(".cm") / mount["name"]
                items = volume["configMap"].get("items") or [
                    {"key": k, "path": k} for k in cm["data"]
                ]
                for item in items:
                    dest = target / item["path"]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_text(cm["data"][item["key"]])
                mapping[mount["mountPath"]] = str(target)
        return mapping

    def _start_pod(self, namespace: str, run: PodRun) -> None:
        time.sleep(self.start_delay_s)
        name = run.manifest["metadata"]["name"]
        if not self.run_pods_locally:
            run.phase = "Running"
            return
        container = run.manifest["spec"]["containers"][0]
        try:
            mapping = self._materialize(namespace, run)
        except FileNotFoundError as err:
            self.event(
                namespace, name, "FailedMount", f"MountVolume.SetUp failed: {err}", "Warning"
            )
            return

        def local(text: str) -> str:
            for container_path, host_path in mapping.items():
                text = text.replace(container_path, host_path)
            return text

        env = dict(os.environ)
        env.update(self.pod_env)
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = local(item["value"])
            elif "valueFrom" in item:
                ref = item["valueFrom"]["secretKeyRef"]
                secret = self.secrets.get((namespace, ref["name"]), {})
                if ref["key"] in secret:
                    env[item["name"]] = secret[ref["key"]]
        command = [local(part) for part in container["command"] + container.get("args", [])]
        if command[0] in ("python3", "python"):
            command[0] = sys.executable  # the pod's Python is this machine's
        self.event(
            namespace,
            name,
            "Pulled",
            f'Container image "{container["image"]}" already present on machine',
        )
        with open(run.log_path, "ab") as log:
            run.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        run.phase = "Running"
        run.started = time.monotonic()
        self.event(namespace, name, "Started", f"Started container {container['name']}")
        code = run.process.wait()
        run.exit_code = code
        run.phase = "Succeeded" if code == 0 else "Failed"
        run.reason = "Completed" if code == 0 else "Error"

    def pod_json(self, run: PodRun) -> dict[str, Any]:
        obj = copy.deepcopy(run.manifest)
        container = obj["spec"]["containers"][0]["name"]
        scheduled = {"type": "PodScheduled", "status": "True"}
        if run.unschedulable:
            scheduled = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": run.unschedulable,
            }
        status: dict[str, Any] = {"phase": run.phase, "conditions": [scheduled]}
        if run.waiting_reason:
            state: dict[str, Any] = {
                "waiting": {"reason": run.waiting_reason, "message": run.waiting_message}
            }
        elif run.phase == "Pending":
            state = {"waiting": {"reason": "ContainerCreating"}}
        elif run.phase == "Running":
            state = {"running": {"startedAt": now()}}
        else:
            state = {"terminated": {"exitCode": run.exit_code, "reason": run.reason}}
        last = (
            {
                "terminated": {
                    "exitCode": 137 if run.last_terminated == "OOMKilled" else 1,
                    "reason": run.last_terminated,
                }
            }
            if run.last_terminated
            else {}
        )
        status["containerStatuses"] = [
            {
                "name": container,
                "ready": run.phase == "Running" and not run.waiting_reason,
                "restartCount": run.restarts,
                "state": state,
                "image": obj["spec"]["containers"][0]["image"],
                "imageID": "",
                "lastState": last,
            }
        ]
        if run.unschedulable:
            status.pop("containerStatuses")
        obj["status"] = status
        return obj

    def kill_pod_process(self, namespace: str, name: str) -> None:
        run = self.pods.get((namespace, name))
        if run and run.process and run.process.poll() is None:
            os.killpg(run.process.pid, 9)

    def supervise(
        self, namespace: str, name: str, run: PodRun, argv: list[str], env: dict[str, str]
    ) -> None:
        """Run a Deployment pod's container; restart it whenever it exits, until the pod goes."""
        container = run.manifest["spec"]["containers"][0]["name"]
        while not run.removed:
            with open(run.log_path, "ab") as log:
                run.process = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            run.waiting_reason = ""
            run.phase = "Running"
            run.started = time.monotonic()
            self.event(namespace, name, "Started", f"Started container {container}")
            code = run.process.wait()
            if run.removed:
                return
            run.restarts += 1
            run.last_terminated = "Completed" if code == 0 else "Error"
            run.previous_log = run.log_path.read_text(errors="replace")
            run.log_path.write_bytes(b"")
            run.waiting_reason = "CrashLoopBackOff"
            run.waiting_message = (
                f"back-off {self.restart_backoff_s:g}s restarting failed container={container}"
            )
            self.event(
                namespace, name, "BackOff", "Back-off restarting failed container", "Warning"
            )
            time.sleep(self.restart_backoff_s)


def local_container_command(
    pod: dict[str, Any], binaries: dict[str, str], scratch: Path
) -> tuple[list[str], dict[str, str]]:
    """The container's command and args, exactly, as a local process: only the image's binary,
    the volume mount paths (hostPath: the same path here, since the node is this machine;
    emptyDir: a directory under `scratch`) and a 0.0.0.0 listen address (127.0.0.1) differ."""
    spec = pod["spec"]
    container = spec["containers"][0]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "hostPath" in volume:
            local = volume["hostPath"]["path"]
            if volume["hostPath"].get("type") == "DirectoryOrCreate":
                Path(local).mkdir(parents=True, exist_ok=True)  # as the kubelet does
        elif "emptyDir" in volume:
            local = str(scratch / mount["name"])
            Path(local).mkdir(parents=True, exist_ok=True)
        else:
            continue
        mounts[mount["mountPath"]] = local

    def mapped(text: str) -> str:
        for mount_path in sorted(mounts, key=len, reverse=True):
            if text == mount_path or text.startswith(mount_path + "/"):
                return mounts[mount_path] + text[len(mount_path) :]
        return text

    command = [*container["command"], *container.get("args", [])]
    argv = [binaries[command[0]]]
    for previous, arg in zip(command, command[1:], strict=False):
        argv.append("127.0.0.1" if previous == "--host" and arg == "0.0.0.0" else mapped(arg))
    env = {e["name"]: mapped(e["value"]) for e in container.get("env", []) if "value" in e}
    return argv, env


class _Handler(BaseHTTPRequestHandler):
    standin: StandIn
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    # --- plumbing -------------------------------------------------------------------------

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if "yaml" in (self.headers.get("Content-Type") or ""):
            return yaml.safe_load(raw)
        return json.loads(raw) if raw else None

    def _route(self, method: str) -> None:
        s = self.standin
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/")
        with s.lock:
            s.requests.append((method, self.path))
            if s.fail_next:
                code = s.fail_next.pop(0)
                self._send(code, status_body(code, "InternalError", "stand-in: injected failure"))
                return
        for pattern, verb, handler in ROUTES:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                kube_verb, resource = _rbac(method, path)
                if (kube_verb, resource) in s.forbid:
                    self._send(
                        403,
                        status_body(
                            403,
                            "Forbidden",
                            f'{resource} is forbidden: User "tester" cannot {kube_verb} resource "{resource}" in API group "" in the namespace "{path.split("/")[4] if "/namespaces/" in path else ""}"',
                        ),
                    )
                    return
                handler(self, *match.groups(), query=query)
                return
        s.unimplemented.append(f"{method} {self.path}")
        self._send(
            501, status_body(501, "NotImplemented", f"stand-in does not implement {method} {path}")
        )

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _invalid(self, obj: dict[str, Any]) -> bool:
        problem = self.standin.validate(obj)
        if problem:
            self.standin.rejected.append(problem)
            kind = obj.get("kind", "Object")
            name = obj.get("metadata", {}).get("name", "")
            self._send(
                422,
                status_body(
                    422,
                    "Invalid",
                    f'{kind} "{name}" is invalid: {problem}',
                    {"name": name, "kind": kind},
                ),
            )
            return True
        return False

    def _not_found(self, resource: str, name: str) -> None:
        self._send(
            404,
            status_body(
                404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource}
            ),
        )

    # --- handlers -------------------------------------------------------------------------

    def version(self, query: dict[str, str]) -> None:
        major, minor, _ = self.standin.version.split(".")
        self._send(200, {"major": major, "minor": minor, "gitVersion": f"v{self.standin.version}"})

    def list_nodes(self, query: dict[str, str]) -> None:
        self._send(
            200,
            {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": self.standin.nodes},
        )

    def get_node(self, name: str, query: dict[str, str]) -> None:
        node = next((n for n in self.standin.nodes if n["metadata"]["name"] == name), None)
        self._send(200, node) if node else self._not_found("nodes", name)

    def get_namespace(self, name: str, query: dict[str, str]) -> None:
        ns = self.standin.namespaces.get(name)
        self._send(200, ns) if ns else self._not_found("namespaces", name)

    def create_namespace(self, query: dict[str, str]) -> None:
        obj = self._body()
        if self._invalid(obj):
            return
        name = obj["metadata"]["name"]
        if name in self.standin.namespaces:
            self._send(
                409, status_body(409, "AlreadyExists", f'namespaces "{name}" already exists')
            )
            return
        obj["status"] = {"phase": "Active"}
        self.standin.namespaces[name] = obj
        self._send(201, obj)

    def patch_namespace(self, name: str, query: dict[str, str]) -> None:
        ns = self.standin.namespaces.get(name)
        if ns is None:
            self._not_found("namespaces", name)
            return
        patch = self._body()
        ns["metadata"].setdefault("labels", {}).update(
            (patch.get("metadata") or {}).get("labels") or {}
        )
        self._send(200, ns)

    def get_configmap(self, ns: str, name: str, query: dict[str, str]) -> None:
        cm = self.standin.configmaps.get((ns, name))
        self._send(200, cm) if cm else self._not_found("configmaps", name)

    def create_configmap(self, ns: str, query: dict[str, str]) -> None:
        obj = self._body()
        if self._invalid(obj):
            return
        self.standin.configmaps[(ns, obj["metadata"]["name"])] = obj
        self._send(201, obj)

    def replace_configmap(self, ns: str, name: str, query: dict[str, str]) -> None:
        obj = self._body()
        if self._invalid(obj):
            return
        self.standin.configmaps[(ns, name)] = obj
        self._send(200, obj)

    def list_pods(self, ns: str, query: dict[str, str]) -> None:
        selector = query.get("labelSelector", "")
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        items = []
        with self.standin.lock:
            runs = [r for (n, _), r in self.standin.pods.items() if n == ns]
        for run in runs:
            labels = run.manifest["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in wanted.items()):
                items.append(self.standin.pod_json(run))
        self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    def create_pod(self, ns: str, query: dict[str, str]) -> None:
        obj = self._body()
        if self._invalid(obj):
            return
        if ns not in self.standin.namespaces:
            self._not_found("namespaces", ns)
            return
        violation = self.standin.psa_violation(ns, obj)
        if violation:
            self.standin.rejected.append(violation)
            self._send(403, status_body(403, "Forbidden", violation))
            return
        if (ns, obj["metadata"]["name"]) in self.standin.pods:
            self._send(
                409,
                status_body(
                    409, "AlreadyExists", f'pods "{obj["metadata"]["name"]}" already exists'
                ),
            )
            return
        run = self.standin.create_pod(ns, obj)
        self._send(201, self.standin.pod_json(run))

    def get_pod(self, ns: str, name: str, query: dict[str, str]) -> None:
        run = self.standin.pods.get((ns, name))
        self._send(200, self.standin.pod_json(run)) if run else self._not_found("pods", name)

    def delete_pod(self, ns: str, name: str, query: dict[str, str]) -> None:
        with self.standin.lock:
            run = self.standin.pods.pop((ns, name), None)
        if run is None:
            self._not_found("pods", name)
            return
        run.removed = True
        if run.process and run.process.poll() is None:
            os.killpg(run.process.pid, 9)
        self._send(200, self.standin.pod_json(run))

    def pod_log(self, ns: str, name: str, query: dict[str, str]) -> None:
        run = self.standin.pods.get((ns, name))
        if run is None:
            self._not_found("pods", name)
            return
        if run.phase == "Pending":
            self._send(
                400,
                status_body(
                    400,
                    "BadRequest",
                    f'container "{run.manifest["spec"]["containers"][0]["name"]}" in pod "{name}" is waiting to start: ContainerCreating',
                ),
            )
            return
        follow = query.get("follow") == "true"
        if query.get("previous") == "true":
            if not run.previous_log:
                self._send(
                    400,
                    status_body(
                        400,
                        "BadRequest",
                        f'previous terminated container "engine" in pod "{name}" not found',
                    ),
                )
                return
            data = run.previous_log.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        offset = 0
        try:
            while True:
                with open(run.log_path, "rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                if chunk:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    offset += len(chunk)
                    continue
                if (
                    not follow
                    or run.phase in ("Succeeded", "Failed")
                    or (ns, name) not in self.standin.pods
                ):
                    break
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def list_events(self, ns: str, query: dict[str, str]) -> None:
        selector = query.get("fieldSelector", "")
        name = (
            selector.split("involvedObject.name=", 1)[1].split(",")[0]
            if "involvedObject.name=" in selector
            else None
        )
        with self.standin.lock:
            items = [
                e
                for e in self.standin.events
                if e["metadata"]["namespace"] == ns
                and (name is None or e["involvedObject"]["name"] == name)
            ]
        self._send(200, {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items})

    def _apply(
        self,
        store: dict[tuple[str, str], dict[str, Any]],
        ns: str,
        name: str,
        query: dict[str, str],
    ) -> dict[str, Any] | None:
        if "apply-patch" not in (self.headers.get("Content-Type") or ""):
            self._send(
                415, status_body(415, "UnsupportedMediaType", "stand-in expects server-side apply")
            )
            return None
        if not query.get("fieldManager"):
            self._send(
                422, status_body(422, "Invalid", "fieldManager is required for apply requests")
            )
            return None
        obj = self._body()
        if self._invalid(obj):
            return None
        existing = store.get((ns, name))
        obj["metadata"]["namespace"] = ns
        obj["metadata"]["generation"] = (existing or {}).get("metadata", {}).get(
            "generation", 0
        ) + (0 if existing and existing.get("spec") == obj.get("spec") else 1)
        obj["metadata"]["managedFields"] = [
            {"manager": query["fieldManager"], "operation": "Apply"}
        ]
        store[(ns, name)] = obj
        return obj

    def apply_deployment(self, ns: str, name: str, query: dict[str, str]) -> None:
        obj = self._apply(self.standin.deployments, ns, name, query)
        if obj is None:
            return
        self._send(200, obj)
        if self.standin.on_deployment:
            self.standin.on_deployment(obj)
        self._roll_out(ns, obj)

    def _roll_out(self, ns: str, dep: dict[str, Any]) -> None:
        s = self.standin
        template = dep["spec"]["template"]
        pod_name = f"{dep['metadata']['name']}-{uuid.uuid4().hex[:9]}-{uuid.uuid4().hex[:5]}"
        with s.lock:
            replaced = [
                s.pods.pop(k)
                for k, r in list(s.pods.items())
                if k[0] == ns
                and (r.manifest["metadata"].get("labels") or {}) == template["metadata"]["labels"]
            ]
        for old_run in replaced:  # the old pod terminates
            old_run.removed = True
            if old_run.process and old_run.process.poll() is None:
                os.killpg(old_run.process.pid, 9)
                old_run.process.wait()
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": ns,
                "labels": dict(template["metadata"]["labels"]),
            },
            "spec": copy.deepcopy(template["spec"]),
        }
        run = PodRun(manifest, s.workdir / f"{pod_name}.log")
        run.log_path.touch()
        manifest["metadata"]["creationTimestamp"] = now()
        with s.lock:
            s.pods[(ns, pod_name)] = run
        s.event(
            ns,
            pod_name,
            "Scheduled",
            f"Successfully assigned {ns}/{pod_name} to {template['spec'].get('nodeName')}",
        )

        def advance() -> None:
            time.sleep(s.deployment_pod_delay_s)
            s.event(
                ns,
                pod_name,
                "Pulling",
                f'Pulling image "{template["spec"]["containers"][0]["image"]}"',
            )
            if s.deployment_pod_script:
                outcome = s.deployment_pod_script(manifest)
                for reason, message, kind in outcome.get("events", []):
                    s.event(ns, pod_name, reason, message, kind)
                for key in (
                    "reason",
                    "exit_code",
                    "waiting_reason",
                    "waiting_message",
                    "unschedulable",
                    "last_terminated",
                    "restarts",
                    "previous_log",
                ):
                    if key in outcome:
                        setattr(run, key, outcome[key])
                run.phase = outcome.get("phase", "Running")
                if outcome.get("log"):
                    run.log_path.write_text(outcome["log"])
                return
            s.event(ns, pod_name, "Pulled", "Successfully pulled image in 1.2s")
            if s.deployment_process:
                argv, env = s.deployment_process(manifest)
                env = {**os.environ, **s.pod_env, **env}
                s.supervise(ns, pod_name, run, argv, env)
                return
            s.event(ns, pod_name, "Started", "Started container engine")
            run.phase = "Running"

        threading.Thread(target=advance, daemon=True).start()

    def get_deployment(self, ns: str, name: str, query: dict[str, str]) -> None:
        obj = self.standin.deployments.get((ns, name))
        self._send(200, obj) if obj else self._not_found("deployments.apps", name)

    def apply_service(self, ns: str, name: str, query: dict[str, str]) -> None:
        obj = self._apply(self.standin.services, ns, name, query)
        if obj is not None:
            self._send(200, obj)

    def get_service(self, ns: str, name: str, query: dict[str, str]) -> None:
        obj = self.standin.services.get((ns, name))
        self._send(200, obj) if obj else self._not_found("services", name)


RESOURCES = ("nodes", "namespaces", "configmaps", "pods", "events", "deployments", "services")


def _rbac(method: str, path: str) -> tuple[str, str]:
    parts = [p for p in path.split("/") if p]
    index = max((i for i, p in enumerate(parts) if p in RESOURCES), default=0)
    resource = parts[index]
    if parts[-1] == "log":
        resource = "pods/log"
    named = index + 1 < len(parts)
    verb = {
        "GET": "get" if named else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }[method]
    return verb, resource


N = r"([a-z0-9][-a-z0-9.]*)"
ROUTES: list[tuple[str, str, Callable[..., None]]] = [
    (r"/version", "GET", _Handler.version),
    (r"/api/v1/nodes", "GET", _Handler.list_nodes),
    (rf"/api/v1/nodes/{N}", "GET", _Handler.get_node),
    (r"/api/v1/namespaces", "POST", _Handler.create_namespace),
    (rf"/api/v1/namespaces/{N}", "GET", _Handler.get_namespace),
    (rf"/api/v1/namespaces/{N}", "PATCH", _Handler.patch_namespace),
    (rf"/api/v1/namespaces/{N}/configmaps", "POST", _Handler.create_configmap),
    (rf"/api/v1/namespaces/{N}/configmaps/{N}", "GET", _Handler.get_configmap),
    (rf"/api/v1/namespaces/{N}/configmaps/{N}", "PUT", _Handler.replace_configmap),
    (rf"/api/v1/namespaces/{N}/pods", "GET", _Handler.list_pods),
    (rf"/api/v1/namespaces/{N}/pods", "POST", _Handler.create_pod),
    (rf"/api/v1/namespaces/{N}/pods/{N}", "GET", _Handler.get_pod),
    (rf"/api/v1/namespaces/{N}/pods/{N}", "DELETE", _Handler.delete_pod),
    (rf"/api/v1/namespaces/{N}/pods/{N}/log", "GET", _Handler.pod_log),
    (rf"/api/v1/namespaces/{N}/events", "GET", _Handler.list_events),
    (rf"/apis/apps/v1/namespaces/{N}/deployments/{N}", "PATCH", _Handler.apply_deployment),
    (rf"/apis/apps/v1/namespaces/{N}/deployments/{N}", "GET", _Handler.get_deployment),
    (rf"/api/v1/namespaces/{N}/services/{N}", "PATCH", _Handler.apply_service),
    (rf"/api/v1/namespaces/{N}/services/{N}", "GET", _Handler.get_service),
]
