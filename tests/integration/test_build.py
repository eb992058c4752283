"""The build phase against a real sshd on 127.0.0.1, buildah as the builder, and a real registry."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leviathan_tui.backends import real_backends
from leviathan_tui.config import Config
from leviathan_tui.errors import EXIT_OK, EXIT_STEP_FAILED, EXIT_UNANSWERED
from leviathan_tui.events import LogLine, StepFailed, StepSkipped
from leviathan_tui.phases.build import BuildImageStep, PushImageStep
from leviathan_tui.phases.stop import still_running, stop_work
from leviathan_tui.records import Gpu, ImageRef, NodeDisks, NodeFacts
from leviathan_tui.replay import ReplayAnswerer, ReplayFile
from leviathan_tui.runner import Runner
from leviathan_tui.state import State
from tests.support.services import (
    Registry,
    Sshd,
    buildah_shim,
    fingerprint,
    start_registry,
    start_sshd,
)

pytestmark = pytest.mark.skipif(
    not (
        shutil.which("buildah")
        and Path("/usr/sbin/sshd").exists()
        and shutil.which("docker-registry")
    ),
    reason="needs buildah, openssh-server and docker-registry",
)

DOCKERFILE = """\
ARG BASE_IMAGE=scratch
FROM ${BASE_IMAGE}
ARG KTRANSFORMERS_REF=v0.4.1
COPY hello.txt /hello.txt
LABEL ktransformers.ref=${KTRANSFORMERS_REF}
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sshd, Registry, Path]]:
    base = tmp_path_factory.mktemp("buildhost")
    shim = buildah_shim(base / "bin", delay_s=3.0)
    sshd = start_sshd(
        base / "sshd",
        env={"PATH": f"{shim}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    registry = start_registry(base / "registry")
    yield sshd, registry, shim
    sshd.stop()
    registry.stop()


def make_config(
    tmp_path: Path, sshd: Sshd, registry: Registry, dockerfile: str = DOCKERFILE, tag: str = "test"
) -> Config:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile.test").write_text(dockerfile)
    (context / "hello.txt").write_text("hello from the build context\n")
    (tmp_path / "ssh_config").write_text("")
    return Config.model_validate(
        {
            "ssh": {
                "host": "127.0.0.1",
                "port": sshd.port,
                "user": "root",
                "identity_file": str(sshd.client_key),
                "known_hosts": str(tmp_path / "known_hosts"),
                "ssh_config": str(tmp_path / "ssh_config"),
                "connect_timeout_s": 5,
            },
            "registry": {"address": registry.address, "scheme": "http"},
            "build": {
                "image": f"omni/engine:{tag}",
                "base_image": "scratch",
                "builder": "buildah",
                "builder_global_flags": ["--storage-driver", "vfs"],
                "build_flags": ["--isolation", "chroot"],
                "dockerfile": str(context / "Dockerfile.test"),
                "context_files": [str(context / "hello.txt")],
                "remote_dir": str(tmp_path / "remote"),
                "timeout_s": 300,
            },
        }
    )


def node_records(state: State, compute: str | None = "12.0", flags: str = "") -> None:
    """What the preflight and the probe would have published: the node's GPU and CPU."""
    labels = {"nvidia.com/gpu.product": "NVIDIA-RTX-PRO-6000", "nvidia.com/gpu.count": "1"}
    gpus = (Gpu("NVIDIA-RTX-PRO-6000", 1, 97887, compute),) if compute else ()
    state.publish(
        "preflight.node",
        NodeFacts(
            "gpu-0", True, "Talos (v1.11.2)", "", "", 64.0, 2**39, 1, gpus, tuple(labels.items())
        ),
    )
    cpu = (
        flags
        or Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split(":", 1)[1].splitlines()[0]
    )
    state.publish("storage.probe", NodeDisks((), tuple(cpu.split()), "test CPU"))


class Run:
    def __init__(
        self, tmp_path: Path, config: Config, answers: dict[str, str], compute: str | None = "12.0"
    ) -> None:
        self.events: list = []
        self.state = State.load(tmp_path / "state")
        if self.state.get(NodeFacts) is None:
            node_records(self.state, compute)
        self.engine = Runner(
            [BuildImageStep(), PushImageStep()],
            config=config,
            state=self.state,
            backends=real_backends(config),
            answerer=ReplayAnswerer(ReplayFile(None, {}, answers)),
            emit=self.events.append,
        )

    def go(self) -> int:
        return self.engine.run()

    def failures(self) -> list[StepFailed]:
        return [e for e in self.events if isinstance(e, StepFailed)]

    def log(self, step: str | None = None) -> list[str]:
        return [
            e.line
            for e in self.events
            if isinstance(e, LogLine) and (step is None or e.step_id == step)
        ]


def builds(shim: Path) -> int:
    return sum(
        1
        for line in (shim / "builder-calls.log").read_text().splitlines()
        if " build " in f" {line} "
    )


def manifest_digest(registry: Registry, repo: str, tag: str) -> str:
    out = subprocess.run(
        [
            "curl",
            "-sI",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            f"http://{registry.address}/v2/{repo}/manifests/{tag}",
        ],
        capture_output=True,
        text=True,
    ).stdout
    return next(
        line.split(":", 1)[1].strip()
        for line in out.splitlines()
        if line.lower().startswith("docker-content-digest")
    )


def test_unknown_host_key_is_a_question(host, tmp_path: Path) -> None:
    sshd, registry, _ = host
    run = Run(tmp_path, make_config(tmp_path, sshd, registry, tag="q"), {})
    assert run.go() == EXIT_UNANSWERED
    failure = run.failures()[0]
    assert "ssh.host_key" in failure.error and fingerprint(sshd) in failure.hint
    assert not (tmp_path / "known_hosts").exists()


def test_build_push_prove_then_resume_builds_nothing(host, tmp_path: Path) -> None:
    sshd, registry, shim = host
    before = builds(shim)
    config = make_config(tmp_path, sshd, registry, tag="happy")
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)})
    assert run.go() == EXIT_OK, run.failures()
    assert builds(shim) == before + 1
    digest = run.state.get(ImageRef).digest
    assert digest == manifest_digest(registry, "omni/engine", "happy")
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519" in (tmp_path / "known_hosts").read_text()
    assert any("Successfully tagged" in line or "COMMIT" in line for line in run.log())
    again = Run(tmp_path, config, {})
    assert again.go() == EXIT_OK
    assert {e.step_id for e in again.events if isinstance(e, StepSkipped)} == {
        "build.image",
        "build.push",
    }
    assert builds(shim) == before + 1


def go_until_the_build_starts(
    run: Run, shim: Path, before: int
) -> tuple[threading.Thread, list[int]]:
    """Run in a thread until the builder has been called; the thread's exit code lands in the list."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run.go()))
    thread.start()
    deadline = time.monotonic() + 60
    while builds(shim) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert builds(shim) > before, "the builder was not called within 60 s"
    return thread, result


def test_connection_cut_mid_build_reattaches_to_the_same_build(host, tmp_path: Path) -> None:
    sshd, registry, shim = host
    before = builds(shim)
    config = make_config(tmp_path, sshd, registry, tag="cut")
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)})
    thread, result = go_until_the_build_starts(run, shim, before)
    time.sleep(0.5)
    sshd.kill_sessions()
    thread.join(120)
    assert result == [EXIT_OK], run.failures()
    assert builds(shim) == before + 1
    assert any("SSH connection lost" in line for line in run.log())
    remote_log = next((tmp_path / "remote").glob("*/build.log")).read_text().splitlines()
    streamed = [line for line in run.log("build.image") if line in remote_log]
    assert streamed == remote_log  # every line, once, in order


def test_wizard_killed_mid_build_reattaches_on_resume(host, tmp_path: Path) -> None:
    sshd, registry, shim = host
    before = builds(shim)
    config = make_config(tmp_path, sshd, registry, tag="resume")
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)})
    thread, result = go_until_the_build_starts(run, shim, before)
    run.engine.cancel()
    thread.join(60)
    assert result == [130]
    again = Run(tmp_path, config, {})
    assert again.go() == EXIT_OK, again.failures()
    assert builds(shim) == before + 1
    assert any("reattaching" in line or "already finished" in line for line in again.log())


def test_a_stopped_build_is_stopped_once_and_started_again_on_resume(host, tmp_path: Path) -> None:
    sshd, registry, shim = host
    before = builds(shim)
    config = make_config(tmp_path, sshd, registry, tag="stopped")
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)})
    thread, result = go_until_the_build_starts(run, shim, before)
    run.engine.cancel()
    thread.join(60)
    assert result == [130] and builds(shim) == before + 1
    backends = real_backends(config)
    assert [item for item in still_running(run.state, config, False) if "image build" in item]
    first = stop_work(config, backends, run.state, lambda line: None)
    assert still_running(run.state, config, False) == []  # stopped: no longer "may be running"
    second = stop_work(config, backends, run.state, lambda line: None)
    assert first == ["stopped the build on 127.0.0.1"]
    assert second == []
    again = Run(tmp_path, config, {})
    assert again.go() == EXIT_OK, again.failures()
    assert builds(shim) == before + 2
    assert any("was stopped (exit 143); starting it again" in line for line in again.log())


def test_changed_host_key_is_refused_even_with_an_answer(host, tmp_path: Path) -> None:
    sshd, registry, _ = host
    config = make_config(tmp_path, sshd, registry, tag="changed")
    (tmp_path / "known_hosts").write_text(
        f"[127.0.0.1]:{sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)})
    assert run.go() == EXIT_STEP_FAILED
    assert "HOST KEY CHANGED" in run.failures()[0].error


def test_http_registry_refused_by_the_builder_gets_both_fixes(host, tmp_path: Path) -> None:
    sshd, registry, _ = host
    broken = DOCKERFILE.replace(
        "ARG BASE_IMAGE=scratch", f"ARG BASE_IMAGE={registry.address}/omni/engine:base"
    )
    config = make_config(tmp_path, sshd, registry, dockerfile=broken, tag="http")
    config.build.base_image = f"{registry.address}/omni/engine:base"
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)})
    assert run.go() == EXIT_STEP_FAILED
    failure = run.failures()[0]
    assert (
        "plain HTTP" in failure.error
        and "server gave HTTP response to HTTPS client" in failure.error
    )
    assert f'"insecure-registries": ["{registry.address}"]' in failure.hint
    assert (
        f"{registry.address}:" in failure.hint and f"http://{registry.address}" in failure.hint
    )  # the Talos mirror patch


def test_base_image_pull_failure_gets_the_hint(host, tmp_path: Path) -> None:
    sshd, registry, _ = host
    broken = DOCKERFILE.replace(
        "ARG BASE_IMAGE=scratch", f"ARG BASE_IMAGE={registry.address}/omni/engine:does-not-exist"
    )
    config = make_config(tmp_path, sshd, registry, dockerfile=broken, tag="broken")
    config.build.base_image = f"{registry.address}/omni/engine:does-not-exist"
    config.build.build_flags = ["--isolation", "chroot", "--tls-verify=false"]
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)})
    assert run.go() == EXIT_STEP_FAILED
    failure = run.failures()[0]
    assert "base image could not be pulled" in failure.error, failure
    assert "build.base_image" in failure.hint


def test_registry_down_at_push_then_resume(host, tmp_path: Path) -> None:
    sshd, registry, shim = host
    config = make_config(tmp_path, sshd, registry, tag="regdown")
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)})
    registry.stop()
    try:
        assert run.go() == EXIT_STEP_FAILED
        failure = run.failures()[0]
        assert failure.step_id == "build.push" and "unreachable" in failure.error
    finally:
        registry.start()
    builds_before = builds(shim)
    again = Run(tmp_path, config, {})
    assert again.go() == EXIT_OK, again.failures()
    assert builds(shim) == builds_before  # the image was not built again
    assert again.state.get(ImageRef).digest == manifest_digest(registry, "omni/engine", "regdown")
    assert json.dumps(again.state.to_json())


def make_base_image(tmp_path: Path, name: str, os_release: str, cuda: str) -> str:
    """A base image on the build host holding only the files Leviathan reads from it."""
    root = tmp_path / f"rootfs-{name}"
    (root / "etc").mkdir(parents=True)
    (root / "usr/local/cuda").mkdir(parents=True)
    (root / "etc/os-release").write_text(os_release)
    (root / "usr/local/cuda/version.json").write_text(f'{{"cuda": {{"version": "{cuda}"}}}}')
    buildah = ["buildah", "--storage-driver", "vfs"]
    ctr = subprocess.run(
        [*buildah, "from", "scratch"], check=True, capture_output=True, text=True
    ).stdout.strip()
    subprocess.run([*buildah, "copy", ctr, str(root), "/"], check=True, capture_output=True)
    image = f"localhost/leviathan-test-base:{name}"
    subprocess.run([*buildah, "commit", "-q", ctr, image], check=True, capture_output=True)
    subprocess.run([*buildah, "rm", ctr], check=True, capture_output=True)
    return image


def test_a_base_cuda_too_old_for_the_nodes_gpu_is_refused_before_building(
    host, tmp_path: Path
) -> None:
    sshd, registry, shim = host
    before = builds(shim)
    config = make_config(tmp_path, sshd, registry, tag="oldcuda")
    config.build.base_image = make_base_image(
        tmp_path,
        "cuda121",
        'ID=ubuntu\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n',
        "12.1.1",
    )
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)}, compute="12.0")
    assert run.go() == EXIT_STEP_FAILED
    failure = run.failures()[0]
    assert "CUDA 12.1, which cannot build 12.0" in failure.error and "12.8" in failure.error
    assert builds(shim) == before  # refused before anything was built


def test_the_build_targets_the_nodes_gpu_cpu_and_the_bases_distribution(
    host, tmp_path: Path
) -> None:
    sshd, registry, shim = host
    config = make_config(tmp_path, sshd, registry, tag="noble")
    config.build.base_image = make_base_image(
        tmp_path,
        "noble",
        'ID=ubuntu\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n',
        "12.8.1",
    )
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)}, compute="12.0")
    assert run.go() == EXIT_OK, run.failures()
    calls = (shim / "builder-calls.log").read_text().splitlines()
    build = next(line for line in reversed(calls) if " build " in f" {line} ")
    assert "TORCH_CUDA_ARCH_LIST=12.0+PTX" in build and "LIBAIO_PACKAGE=libaio1t64" in build
    assert "TARGET_MARCH=x86-64-v" in build and "CPU_INSTRUCT=" in build
    assert any("Ubuntu 24.04.1 LTS, CUDA 12.8" in line for line in run.log("build.image"))


def test_without_gpu_labels_the_architecture_is_a_question(host, tmp_path: Path) -> None:
    sshd, registry, _ = host
    config = make_config(tmp_path, sshd, registry, tag="nolabels")
    run = Run(tmp_path, config, {"ssh.host_key": fingerprint(sshd)}, compute=None)
    assert run.go() == EXIT_UNANSWERED
    assert "build.gpu_arch" in run.failures()[0].error
    answered = Run(tmp_path, config, {"build.gpu_arch": "9.0a 10.0"}, compute=None)
    assert answered.go() == EXIT_OK, answered.failures()
    calls = (registry_calls := (host[2] / "builder-calls.log").read_text())
    assert "TORCH_CUDA_ARCH_LIST=9.0a 10.0" in calls, registry_calls[-500:]
