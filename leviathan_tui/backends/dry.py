"""Dry-run twins of every backend: they record what they would do and simulate success with
realistic progress (scaled time), so a newcomer can walk every screen with no cluster, no SSH
host and no network. The node's disks come from `--machine` (lsblk -J -b output)."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from importlib.resources import files
from typing import Any

from leviathan_tui.agent.lsblk import BlockDevice, assess, device_event, parse_lsblk
from leviathan_tui.backends.hub import DownloadPlan, PlanFile
from leviathan_tui.backends.kube import NodeInfo, PodStatus
from leviathan_tui.backends.registry import ManifestInfo
from leviathan_tui.config import Config
from leviathan_tui.errors import StepError

DRY_FINGERPRINT = "SHA256:dRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNw"
DRY_NODE_IP = "192.168.3.20"  # shown, never contacted


def default_machine() -> dict[str, Any]:
    return json.loads(
        (files("leviathan_tui") / "data" / "dry-run-machine.json").read_text(encoding="utf-8")
    )


def hub_listing() -> dict[str, Any]:
    return json.loads(
        (files("leviathan_tui") / "data" / "dry-run-hub-listing.json").read_text(encoding="utf-8")
    )


def _line(event: str, **fields: Any) -> str:
    return json.dumps({"event": event, **fields})


class DryKube:
    def __init__(
        self, config: Config, actions: list[str], machine: dict[str, Any] | None, speed: float
    ) -> None:
        self.config = config
        self.actions = actions
        self.machine = machine or default_machine()
        self.devices = parse_lsblk(self.machine)
        self.speed = speed
        self.pods: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, Callable[[], Iterator[str]]] = {}
        self.finished: dict[str, int] = {}
        self.applied: dict[str, dict[str, Any]] = {}
        self.marker = ""
        self.engine_started = 0.0
        self._lock = threading.Lock()

    def _do(self, text: str) -> None:
        with self._lock:
            self.actions.append(text)

    def get_node(self, name: str) -> NodeInfo | None:
        return NodeInfo(
            name,
            True,
            {"kubernetes.io/hostname": name},
            64.0,
            768 * 2**30,
            1,
            "Talos (v1.9.5)",
            "v1.32.3",
            DRY_NODE_IP,
            {"Ready": "True"},
        )

    def list_nodes(self) -> list[NodeInfo]:
        node = self.get_node(self.config.cluster.node_name)
        return [node] if node else []

    def ensure_namespace(self, manifest: dict[str, Any]) -> str:
        self._do(
            f"would create namespace {manifest['metadata']['name']} (pod-security: privileged)"
        )
        return f"dry-run: namespace {manifest['metadata']['name']} would be created with pod-security.kubernetes.io/enforce=privileged"

    def namespace_labels(self, name: str) -> dict[str, str] | None:
        return {"pod-security.kubernetes.io/enforce": "privileged"}

    def put_configmap(self, manifest: dict[str, Any]) -> None:
        self._do(
            f"would apply ConfigMap {manifest['metadata']['name']} ({len(manifest['data'])} agent files)"
        )

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def recreate_pod(self, manifest: dict[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        command = manifest["spec"]["containers"][0]["command"]
        self._do(f"would create pod {name}: {shlex.join(command)}")
        self.pods[name] = manifest
        self.finished.pop(name, None)
        self.logs[name] = lambda: self._simulate(name, command)

    def delete_pod(self, namespace: str, name: str, wait_s: float = 60.0) -> None:
        self._do(f"would delete pod {name}")

    def pod_status(self, namespace: str, name: str) -> PodStatus:
        if name not in self.pods:
            return PodStatus(name, "Missing")
        if name in self.finished:
            return PodStatus(
                name,
                "Succeeded" if self.finished[name] == 0 else "Failed",
                exit_code=self.finished[name],
            )
        return PodStatus(name, "Running")

    def follow_logs(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        previous: bool = False,
        follow: bool = True,
    ) -> Iterator[str]:
        if name not in self.logs:
            return iter(())
        return self.logs[name]()

    def pod_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        if name.startswith(self.config.deploy.name):
            elapsed = (time.monotonic() - self.engine_started) * self.speed
            events = [
                ("Normal", "Scheduled", f"Successfully assigned to {self.config.cluster.node_name}")
            ]
            if elapsed > 0.5:
                events.append(("Normal", "Pulling", f"Pulling image {self.config.image_ref}"))
            if elapsed > 1.5:
                events.append(
                    (
                        "Normal",
                        "Pulled",
                        "Successfully pulled image in 41.2s (41.2s including waiting)",
                    )
                )
                events.append(("Normal", "Started", "Started container engine"))
            return [{"type": t, "reason": r, "message": m} for t, r, m in events]
        return [
            {
                "type": "Normal",
                "reason": "Scheduled",
                "message": f"Successfully assigned to {self.config.cluster.node_name}",
            }
        ]

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        elapsed = (time.monotonic() - self.engine_started) * self.speed
        phase = "Running" if elapsed > 2.0 else "Pending"
        waiting = {} if phase == "Running" else {"waiting": {"reason": "ContainerCreating"}}
        return [
            {
                "metadata": {
                    "name": f"{self.config.deploy.name}-7d9f8c6b5-x2k4q",
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                },
                "spec": {"nodeName": self.config.cluster.node_name},
                "status": {
                    "phase": phase,
                    "containerStatuses": [
                        {"ready": False, "restartCount": 0, "state": waiting or {"running": {}}}
                    ],
                },
            }
        ]

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self._do(f"would server-side apply {manifest['kind']} {manifest['metadata']['name']}")
        self.applied[manifest["kind"]] = manifest
        if manifest["kind"] == "Deployment":
            self.engine_started = time.monotonic()
        return manifest

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.applied.get("Deployment")

    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.applied.get("Service")

    # --- simulated agents -------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.speed)

    def _simulate(self, pod: str, command: list[str]) -> Iterator[str]:
        module = command[2].rsplit(".", 1)[-1]
        args = command[3:]
        handler = {
            "probe": self._probe,
            "disk": self._disk,
            "hostcheck": self._hostcheck,
            "fetch": self._fetch,
        }[module]
        code = 0
        for line in handler(args):
            if line.startswith('{"event": "result"'):
                status = json.loads(line)["status"]
                code = {"done": 0, "refused": 3}.get(status, 1)
            yield line
        self.finished[pod] = code

    def _probe(self, args: list[str]) -> Iterator[str]:
        label = args[args.index("--label") + 1] if "--label" in args else "leviathan"
        yield ">> PROBING block devices"
        self._sleep(0.4)
        for dev in self.devices:
            yield _line("device", **device_event(dev, label))
        yield _line("result", status="done", reason="", devices=[d.to_json() for d in self.devices])

    def _find(self, path: str) -> BlockDevice | None:
        return next((d for d in self.devices if d.path == path), None)

    def _disk(self, args: list[str]) -> Iterator[str]:
        parser = argparse.ArgumentParser()
        for flag in ("--device", "--serial", "--size", "--label", "--mountpoint"):
            parser.add_argument(flag)
        parser.add_argument("--allow-foreign-fs", action="store_true")
        parser.add_argument("--check", action="store_true")
        opts = parser.parse_args(args)
        dev = self._find(opts.device)
        if opts.check:
            yield _line(
                "result",
                status="refused",
                reason="dry-run: nothing is mounted in the simulated world",
            )
            return
        yield f">> CHECKING {opts.device}"
        self._sleep(0.3)
        if dev is None:
            yield _line(
                "result", status="refused", reason=f"{opts.device} does not exist on this node"
            )
            return
        if dev.serial != opts.serial or str(dev.size) != opts.size:
            yield _line("result", status="refused", reason=f"serial/size mismatch on {opts.device}")
            return
        verdict = assess(dev, opts.label)
        if not verdict.selectable:
            yield _line("result", status="refused", reason=f"{opts.device}: {verdict.reason}")
            return
        if verdict.foreign and not opts.allow_foreign_fs:
            yield _line(
                "result", status="refused", reason=f"{opts.device} carries {verdict.foreign}"
            )
            return
        if not verdict.ours:
            yield f">> FORMATTING {opts.device} as XFS (label {opts.label})..."
            self._do(
                f"would run mkfs.xfs -L {opts.label}{' -f' if verdict.foreign else ''} {opts.device}"
            )
            self._sleep(1.0)
            yield _line("format", device=opts.device, formatted=True)
        yield f">> MOUNTING {opts.device} to {opts.mountpoint}..."
        self._do(
            f"would mount {opts.device} at {opts.mountpoint} (host {self.config.storage.host_mount})"
        )
        self._sleep(0.4)
        free = int(dev.size * 0.99)
        yield _line(
            "result",
            status="done",
            reason="",
            device=opts.device,
            serial=dev.serial,
            size=dev.size,
            by_id=[f"nvme-{dev.model}_{dev.serial}"],
            formatted=not verdict.ours,
            free_bytes=free,
            fs_bytes=free,
        )

    def _hostcheck(self, args: list[str]) -> Iterator[str]:
        self._sleep(0.3)
        if "--write" in args:
            self.marker = args[args.index("--write") + 1]
            yield _line("result", status="done", reason="", marker=self.marker)
        else:
            yield _line("result", status="done", reason="", marker=self.marker, fstype="xfs")

    def _fetch(self, args: list[str]) -> Iterator[str]:
        if "--check" in args:
            yield _line(
                "result",
                status="refused",
                reason="dry-run: nothing was downloaded in the simulated world",
            )
            return
        if "--verify-only" in args:
            listing = hub_listing()
            for f in listing["files"] + listing["config_files"]:
                self._sleep(0.1)
                yield _line("verified", file=f["path"].rsplit("/", 1)[-1])
            self._do("would hash every model file again in the pod and check the GGUF headers")
            yield _line("result", status="done", reason="", verified=True)
            return
        listing = hub_listing()
        entries = [
            (f["path"].rsplit("/", 1)[-1], f["size"])
            for f in listing["files"] + listing["config_files"]
        ]
        total = sum(size for _, size in entries)
        yield _line("plan", files=[{"name": n, "size": s} for n, s in entries], total=total)
        yield f">> DOWNLOADING {len(entries)} files ({total / 1e9:.1f} GB to go)"
        self._do(
            f"would download {len(entries)} files ({total / 1e9:.1f} GB) into {self.config.gguf_dir} and {self.config.config_dir}"
        )
        steps = 20
        shards = [e for e in entries if e[0].endswith(".gguf")]
        small = [e for e in entries if not e[0].endswith(".gguf")]
        for name, size in small:
            yield _line("file_done", file=name, size=size, verified=True)
        for group_start in range(0, len(shards), 3):
            group = shards[group_start : group_start + 3]
            for i in range(1, steps + 1):
                self._sleep(0.08)
                for name, size in group:
                    yield _line("progress", file=name, done=size * i // steps, total=size)
            for name, size in group:
                yield _line("file_done", file=name, size=size, verified=True)
        yield _line(
            "result", status="done", reason="", files=len(entries), total=total, verified=True
        )


class DryHub:
    def __init__(self, config: Config, actions: list[str]) -> None:
        self.config = config
        self.actions = actions

    def plan(self) -> DownloadPlan:
        listing = hub_listing()
        gguf = [
            PlanFile(listing["repo"], f["path"], f["size"], f["sha256"]) for f in listing["files"]
        ]
        config = [
            PlanFile(listing["config_repo"], f["path"], f["size"], f["sha256"])
            for f in listing["config_files"]
        ]
        self.actions.append(
            f"would list {self.config.model.repo} and {self.config.model.config_repo} on the Hub"
        )
        return DownloadPlan(
            "DeepSeek-V3-Q4_K_M",
            gguf,
            config,
            dict(listing["quants"]),
            source=f"offline listing captured {listing['captured']}",
            exact=bool(listing.get("exact")),
        )

    def head_bytes(self, path: str, nbytes: int) -> bytes:
        raise StepError("dry-run: GGUF headers are not available offline")


class DryRegistry:
    def __init__(self, config: Config, actions: list[str]) -> None:
        self.config = config
        self.actions = actions
        self.base = f"{config.registry.scheme}://{config.registry.address}"

    def _digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.config.image_ref.encode()).hexdigest()

    def ping(self) -> None:
        self.actions.append(f"would check {self.base}/v2/")

    def tags(self, repository: str) -> list[str]:
        return [self.config.build.tag]

    def manifest(self, repository: str, reference: str) -> ManifestInfo | None:
        return ManifestInfo(self._digest(), "application/vnd.oci.image.manifest.v1+json", 1234)


class DrySession:
    """A pretend build host: remembers files and detached jobs; jobs print a canned log."""

    BUILD_LOG = [
        "STEP 1/9: FROM {base}",
        "STEP 2/9: ARG KTRANSFORMERS_REF=v0.4.1",
        "STEP 5/9: RUN apt-get update && apt-get install -y --no-install-recommends git ... libnuma-dev",
        "Setting up libtbb-dev:amd64 (2021.8.0-2) ...",
        "STEP 7/9: RUN git clone --branch v0.4.1 --depth 1 https://github.com/kvcache-ai/ktransformers.git ktransformers",
        "Cloning into 'ktransformers'...",
        "STEP 8/9: RUN bash install.sh",
        "-- The CXX compiler identification is GNU 11.4.0",
        "-- CPU_INSTRUCT: AVX512",
        "[ 12%] Building CXX object csrc/ktransformers_ext/CMakeFiles/cpuinfer_ext.dir/cpu_backend/cpuinfo.cpp.o",
        "[ 48%] Building CUDA object csrc/balance_serve/CMakeFiles/sched_ext.dir/sched.cu.o",
        "[ 87%] Linking CXX shared module cpuinfer_ext.cpython-311-x86_64-linux-gnu.so",
        "Successfully installed ktransformers-0.4.1",
        'STEP 9/9: ENTRYPOINT ["python3", "-m", "ktransformers.server.main"]',
        "COMMIT {image}",
        "Successfully tagged {image}",
    ]
    PUSH_LOG = [
        "Getting image source signatures",
        "Copying blob sha256:4f4fb700ef54 done",
        "Writing manifest to image destination",
    ]

    def __init__(self, config: Config, actions: list[str], speed: float) -> None:
        self.config = config
        self.actions = actions
        self.speed = speed
        self.jobs: dict[str, float] = {}

    alive = True

    def run(self, command: str, timeout: float = 120.0) -> tuple[int, str, str]:
        started = re.search(r"setsid nohup sh (\w+)\.sh", command)
        if started:
            self.jobs[started.group(1)] = time.monotonic()
            return 0, "started\n", ""
        status = re.search(r"if \[ -f (\w+)\.exit \]", command)
        if status:
            job = status.group(1)
            if job not in self.jobs:
                return 0, "absent\n", ""
            if self._lines(job) >= len(self._log(job)):
                return 0, "done 0\n", ""
            return 0, "running\n", ""
        self.actions.append(f"would run on {self.config.ssh.host}: {command}")
        return 0, "", ""

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        self.actions.append(f"would upload {remote_path} ({len(data)} bytes)")
        if remote_path.endswith(".sh"):
            body = data.decode()
            inner = re.search(r"\( (.*) \) >", body)
            if inner:
                self.actions.append(
                    f"would run detached on {self.config.ssh.host}: {inner.group(1)}"
                )

    def _log(self, job: str) -> list[str]:
        template = self.BUILD_LOG if job == "build" else self.PUSH_LOG
        return [
            t.format(base=self.config.build.base_image, image=self.config.image_ref)
            for t in template
        ]

    def _lines(self, job: str) -> int:
        elapsed = (time.monotonic() - self.jobs[job]) * self.speed
        return min(len(self._log(job)), int(elapsed / 0.25))

    def read_from(self, remote_path: str, offset: int, limit: int = 4 << 20) -> bytes:
        job = remote_path.rsplit("/", 1)[-1].split(".")[0]
        if job not in self.jobs:
            return b""
        text = "".join(line + "\n" for line in self._log(job)[: self._lines(job)]).encode()
        return text[offset : offset + limit]

    def close(self) -> None:
        pass


class DrySshConnector:
    def __init__(self, config: Config, actions: list[str], speed: float) -> None:
        self.config = config
        self.actions = actions
        self.speed = speed
        self.session: DrySession | None = None

    def describe(self) -> str:
        return f"{self.config.ssh.host} (simulated)"

    def connect(
        self,
        ask_host_key: Callable[[str, str, str], bool],
        ask_secret: Callable[[str], str],
        host: str | None = None,
    ) -> DrySession:
        if self.session is None:
            ask_host_key(self.config.ssh.host, "ssh-ed25519", DRY_FINGERPRINT)
            self.actions.append(f"would connect to {self.config.ssh.host} over SSH")
            self.session = DrySession(self.config, self.actions, self.speed)
        return self.session


class DryHttp:
    def __init__(self, config: Config, actions: list[str], speed: float) -> None:
        self.config = config
        self.actions = actions
        self.speed = speed
        self.first: float | None = None

    def request(self, method: str, url: str, payload: Any = None, timeout: float = 10.0) -> Any:
        from leviathan_tui.backends.http import HttpResult

        self.first = self.first or time.monotonic()
        if url.endswith("/health") and self.config.deploy.engine == "ktransformers":
            return HttpResult(404, b'{"detail":"Not Found"}')
        if (time.monotonic() - self.first) * self.speed < 3.0:
            return HttpResult(0, b"", "connection refused")
        if url.endswith("/v1/models"):
            return HttpResult(
                200,
                json.dumps(
                    [{"id": self.config.deploy.model_name, "name": self.config.deploy.model_name}]
                ).encode(),
            )
        return HttpResult(200, b"{}")

    def chat(self, base: str, model: str, timeout_s: float) -> tuple[str, float, float]:
        self.actions.append(f"would POST {base}/v1/chat/completions (model {model})")
        time.sleep(0.5 / self.speed)
        return "Yes, I am ready. (simulated reply: dry-run)", 0.42 / self.speed, 0.5 / self.speed
