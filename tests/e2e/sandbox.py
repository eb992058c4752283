"""The local sandbox: every part of a bring-up, real where this machine can run it.

- the Kubernetes API stand-in, whose pods run the node agents as local processes;
- a real loop device as the node's NVMe (formatted and mounted by the agent);
- the Hub stand-in serving real GGUF shards and config files;
- a real sshd on 127.0.0.1 whose "build host" builds with buildah and pushes to a real registry;
- the engine on the NodePort: a stand-in with KTransformers' API shape for the default engine;
  for `deploy.engine: llamacpp` the real llama-server, run by the API stand-in as the
  Deployment's pod with exactly the rendered command and arguments (only the binary, the mount
  paths and the listen address mapped), serving the real DeepSeek-V3-shaped Q4_K_M shards the
  Hub stand-in served and the fetch agent downloaded onto the loop disk.

The wizard gets only a config file and a replay file pointing at these addresses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import leviathan_cmd, run_env
from tests.support.deepseek_gguf import ShardedModel
from tests.support.engine_standin import EngineStandIn
from tests.support.engines.base import StandInEngine
from tests.support.gguf_shards import FOLDER, GGUF_REPO, publish, write_config_files
from tests.support.hub_standin import HubStandIn
from tests.support.kube_standin import StandIn, local_container_command
from tests.support.services import Registry, Sshd, fingerprint

DOCKERFILE = """\
ARG BASE_IMAGE=scratch
FROM ${BASE_IMAGE}
ARG KTRANSFORMERS_REF=v0.4.1
COPY engine.txt /engine.txt
LABEL ktransformers.ref=${KTRANSFORMERS_REF}
"""

HF_TOKEN = "hf_sandboxSECRETtoken0123456789"
GFD_LABELS = {
    "nvidia.com/gpu.product": "NVIDIA-RTX-PRO-6000-Blackwell-Workstation-Edition",
    "nvidia.com/gpu.memory": "97887",
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.compute.major": "12",
    "nvidia.com/gpu.compute.minor": "0",
}
NODE = "sandbox-node"


def free_node_port() -> int:
    for port in range(31000, 32700):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in the NodePort range")


LSBLK_SHIM = """#!{python}
# The sandbox's node NVMe is a loop device: lsblk reports it as an NVMe disk with a serial, so the
# wizard's rules (only whole disks; identity by serial) apply to it as to a real one.
import json, subprocess, sys
out = subprocess.run(["{lsblk}", *sys.argv[1:]], capture_output=True, text=True)
if out.returncode or "-J" not in sys.argv:
    sys.stdout.write(out.stdout); sys.stderr.write(out.stderr); sys.exit(out.returncode)
data = json.loads(out.stdout)
def walk(devs):
    for d in devs:
        if d.get("path") == "{loop}" or d.get("name") == "{name}":
            d.update(type="disk", model="SANDBOX NVMe", tran="nvme",
                     serial=open("{serial}").read().strip())
        walk(d.get("children") or [])
walk(data.get("blockdevices") or [])
json.dump(data, sys.stdout)
"""


def dress_loop_as_nvme(bin_dir: Path, loop: str, serial_file: Path) -> None:
    shim = bin_dir / "lsblk"
    shim.write_text(
        LSBLK_SHIM.format(
            python=sys.executable,
            lsblk=shutil.which("lsblk"),
            loop=loop,
            name=loop.rsplit("/", 1)[-1],
            serial=serial_file,
        )
    )
    shim.chmod(0o755)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass
class Sandbox:
    root: Path
    sshd: Sshd
    registry: Registry
    shim: Path
    tag: str
    loop_size: int = 512 * 2**20
    shard_mib: int = 8
    hub_rate: float | None = None
    engine_name: str = "ktransformers"
    llama_bin: Path | None = None  # llama.cpp's binaries, for engine_name "llamacpp"
    model: ShardedModel | None = None  # the real shards the Hub serves, for "llamacpp"
    kube: StandIn = field(init=False)
    hub: HubStandIn = field(init=False)
    engine: StandInEngine | None = field(init=False, default=None)
    loop: str = field(init=False, default="")
    transcript: list[str] = field(
        init=False, default_factory=list
    )  # every run's output, for the secrets scan

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.data = self.root / "data"
        self.data.mkdir()
        self.state_dir = self.root / "state"
        mkfs_dir = self.root / "bin"
        mkfs_dir.mkdir()
        self.mkfs_log = self.root / "mkfs-calls.log"
        self.mkfs_log.touch()
        (mkfs_dir / "mkfs.xfs").write_text(
            f'#!/bin/sh\necho "$@" >> {self.mkfs_log}\nexec {shutil.which("mkfs.xfs")} "$@"\n'
        )
        (mkfs_dir / "mkfs.xfs").chmod(0o755)
        self.serial_file = self.root / "disk-serial"
        self.serial_file.write_text(f"SANDBOX{self.tag[-8:].upper()}")
        image = self.root / "nvme.img"
        subprocess.run(["truncate", "-s", str(self.loop_size), str(image)], check=True)
        self.loop = subprocess.run(
            ["losetup", "-f", "--show", str(image)], check=True, capture_output=True, text=True
        ).stdout.strip()
        dress_loop_as_nvme(mkfs_dir, self.loop, self.serial_file)
        self.kube = StandIn(
            workdir=self.root / "kube",
            version="1.30.0",
            start_delay_s=0.1,
            deployment_pod_delay_s=0.3,
            pod_env={"PATH": f"{mkfs_dir}:{os.environ['PATH']}", "STANDIN": "1"},
        )
        self.kube.workdir.mkdir()
        self.node_port = free_node_port()
        self.kube.add_node(NODE, ip="127.0.0.1", memory="768Gi")
        self.kube.nodes[-1]["metadata"]["labels"].update(
            GFD_LABELS
        )  # the node's GPU, as GFD reports it
        self.kube.secrets[("ai-workloads", "hf-token")] = {"token": HF_TOKEN}
        self.kube.start()
        self.hub = HubStandIn()
        self.hub.rate_bytes_s = self.hub_rate
        if self.engine_name == "llamacpp":
            self.published = self._publish_real_model()
            self.kube.deployment_process = self._llama_server
            self.kube.restart_backoff_s = 5.0
        else:
            self.published = publish(
                self.hub, self.root / "hub", shards=3, mib_per_shard=self.shard_mib
            )
            self.engine = EngineStandIn(flavour="ktransformers", loading_s=3.0, port=self.node_port)
            self.engine.start()
            self.kube.on_deployment = self._engine_restarts
        self.hub.start()
        self.write_files()

    def _publish_real_model(self) -> dict[str, Any]:
        assert self.model is not None and self.llama_bin is not None
        for path in self.model.shards:
            self.hub.add_file(GGUF_REPO, f"{FOLDER}/{path.name}", path)
        for path in write_config_files(self.root / "hub" / "config"):
            self.hub.add_file("deepseek-ai/DeepSeek-V3", path.name, path)
        return {
            "shards": self.model.shards,
            "total": sum(p.stat().st_size for p in self.model.shards),
        }

    def _llama_server(self, pod: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """The Deployment's container, run here: the image's /app/llama-server is the cached build."""
        assert self.llama_bin is not None
        scratch = self.root / "pod-scratch"
        scratch.mkdir(exist_ok=True)
        return local_container_command(
            pod, {"/app/llama-server": str(self.llama_bin / "llama-server")}, scratch
        )

    def engine_pod(self) -> Any:
        """The Deployment's current pod as the API stand-in runs it."""
        runs = [
            r
            for (ns, name), r in self.kube.pods.items()
            if ns == "ai-workloads" and name.startswith("leviathan-engine-")
        ]
        assert len(runs) == 1, [r.manifest["metadata"]["name"] for r in runs]
        return runs[0]

    def _engine_restarts(self, deployment: dict[str, Any]) -> None:
        """A new rollout: the engine loads the model again before it answers."""
        assert self.engine is not None
        if self.engine.chats:
            return  # once it has answered, a re-apply of the same spec does not restart it
        self.engine.reload()

    # --- files the wizard gets -------------------------------------------------------------

    def write_files(self, **overrides: Any) -> None:
        ctx = self.root / "build-context"
        ctx.mkdir(exist_ok=True)
        (ctx / "Dockerfile.sandbox").write_text(DOCKERFILE)
        (ctx / "engine.txt").write_text(f"sandbox engine {self.tag}\n")
        (self.root / "ssh_config").write_text("")
        config: dict[str, Any] = {
            "cluster": {
                "kubeconfig": str(self.kube.kubeconfig(self.root / "kubeconfig")),
                "node_name": NODE,
                "pod_timeout_s": 20,
            },
            "storage": {
                "host_mount": str(self.data),
                "pod_mount": str(self.data),
                "label": "leviathan",
                "min_free_margin_gib": 0.01,
            },
            "model": {
                "endpoint": self.hub.url,
                "model_dir": str(self.data / "models" / "deepseek-v3-gguf"),
                "hf_token_secret": "hf-token",
                "retry_for_s": 120,
            },
            "ssh": {
                "host": "127.0.0.1",
                "port": self.sshd.port,
                "user": "root",
                "identity_file": str(self.sshd.client_key),
                "known_hosts": str(self.root / "known_hosts"),
                "ssh_config": str(self.root / "ssh_config"),
                "connect_timeout_s": 5,
            },
            "registry": {"address": self.registry.address, "scheme": "http"},
            "build": {
                "image": f"omni/engine:{self.tag}",
                "base_image": "scratch",
                "builder": "buildah",
                "builder_global_flags": ["--storage-driver", "vfs"],
                "build_flags": ["--isolation", "chroot"],
                "dockerfile": str(ctx / "Dockerfile.sandbox"),
                "context_files": [str(ctx / "engine.txt")],
                "remote_dir": str(self.root / "remote"),
                "timeout_s": 300,
            },
            "deploy": {
                "engine": self.engine_name,
                "node_port": self.node_port,
                "service_port": self.node_port,
                "health_timeout_s": 60,
                "bench_timeout_s": 240,
                "cpu_infer": 2,
            },
        }
        for dotted, value in overrides.items():
            section, key = dotted.split(".")
            config[section][key] = value
        self.config_path = self.root / "sandbox.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.replay_path = self.root / "answers.yaml"
        self.replay_path.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "answers": {
                        "storage.device": self.loop,
                        "storage.confirm_format": self.loop.rsplit("/", 1)[-1],
                        "ssh.host_key": fingerprint(self.sshd),
                    },
                }
            )
        )

    # --- running the wizard ----------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = run_env(HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1")
        if self.sshd.passphrase:
            env["LEVIATHAN_SSH_PASSPHRASE"] = self.sshd.passphrase
        return env

    def command(self, *extra: str) -> list[str]:
        return leviathan_cmd() + [
            "--config",
            str(self.config_path),
            "--state-dir",
            str(self.state_dir),
            "--replay",
            str(self.replay_path),
            *extra,
        ]

    def run(self, *extra: str, timeout: float = 300) -> Result:
        proc = subprocess.run(
            self.command(*extra), capture_output=True, text=True, env=self.env(), timeout=timeout
        )
        self.transcript.append(proc.stdout + proc.stderr)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def run_until(
        self, pattern: str | list[str], sig: int, timeout: float = 120
    ) -> tuple[int, str]:
        """Start the wizard, wait for a line containing `pattern` (or any of a list), send `sig`;
        return (exit, output)."""
        patterns = [pattern] if isinstance(pattern, str) else pattern
        proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env(),
        )
        seen = []
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if any(p in line for p in patterns):
                proc.send_signal(sig)
                break
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        output = "".join(seen) + (rest or "")
        self.transcript.append(output)
        return proc.returncode, output

    # --- what the world holds --------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "state.json").read_text())

    def mkfs_calls(self) -> int:
        return len(self.mkfs_log.read_text().splitlines())

    def builds(self) -> int:
        image = f"{self.registry.address}/omni/engine:{self.tag}"
        return sum(
            1
            for line in (self.shim / "builder-calls.log").read_text().splitlines()
            if " build " in f" {line} " and image in line
        )

    def bytes_served(self) -> int:
        return sum(v for k, v in self.hub.bytes_served.items() if k.endswith(".gguf"))

    def shard_total(self) -> int:
        return int(self.published["total"])

    def mounted_label(self) -> tuple[str, str]:
        out = subprocess.run(
            ["blkid", "-p", "-o", "export", self.loop], capture_output=True, text=True
        ).stdout
        info = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return info.get("TYPE", ""), info.get("LABEL", "")

    def close(self) -> None:
        for run in list(self.kube.pods.values()):
            if run.process and run.process.poll() is None:
                os.killpg(run.process.pid, signal.SIGKILL)
        self.kube.stop()
        self.hub.stop()
        if self.engine is not None:
            self.engine.stop()
        for _ in range(3):
            subprocess.run(["umount", "-l", str(self.data)], capture_output=True)
        subprocess.run(["losetup", "-d", self.loop], capture_output=True)
