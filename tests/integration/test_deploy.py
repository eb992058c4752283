"""The deploy phase: server-side apply to the API stand-in, a rollout that explains itself, and a
health check that only passes on a real completion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from leviathan_tui.engine import Engine

from leviathan_tui.backends import real_backends
from leviathan_tui.config import Config
from leviathan_tui.errors import EXIT_OK, EXIT_STEP_FAILED, EXIT_UNANSWERED
from leviathan_tui.events import LogLine, StepFailed, StepSkipped
from leviathan_tui.phases import all_steps
from leviathan_tui.replay import ReplayAnswerer, ReplayFile
from leviathan_tui.state import State
from tests.support.engine_standin import EngineStandIn
from tests.support.gguf_shards import FOLDER, publish
from tests.support.hub_standin import HubStandIn
from tests.support.kube_standin import StandIn
from tests.support.validate import validate


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    kube = StandIn(workdir=tmp_path / "kube", version="1.30.0", deployment_pod_delay_s=0.2)
    kube.workdir.mkdir()
    kube.add_node("gpu-0", memory="768Gi", ip="127.0.0.1")
    kube.start()
    kube.namespaces["ai-workloads"] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "ai-workloads",
            "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
        },
    }
    hub = HubStandIn()
    info = publish(hub, tmp_path / "hub", shards=2, mib_per_shard=2)
    hub.start()
    engine = EngineStandIn(flavour="ktransformers", loading_s=0.5)
    url = engine.start()
    yield {"kube": kube, "hub": hub, "engine": engine, "url": url, "info": info, "tmp": tmp_path}
    kube.stop()
    hub.stop()
    engine.stop()


def config_for(w: dict[str, Any], **deploy: Any) -> Config:
    return Config.model_validate(
        {
            "cluster": {
                "kubeconfig": str(w["kube"].kubeconfig(w["tmp"] / "kubeconfig")),
                "node_name": "gpu-0",
                "pod_timeout_s": 3,
            },
            "model": {"endpoint": w["hub"].url},
            "deploy": {"health_url": w["url"], "health_timeout_s": 20, **deploy},
        }
    )


def seeded_state(w: dict[str, Any], memory: int = 768 * 2**30) -> State:
    state = State.load(w["tmp"] / "state")
    for step in ("preflight.node", "storage.verify_host", "download.fetch", "build.push"):
        state.set_status(step, "done")
    state.set_artifact("preflight.node", "memory_bytes", memory)
    state.set_artifact("preflight.node", "cpu", 64)
    state.set_artifact("preflight.node", "internal_ip", "127.0.0.1")
    state.set_artifact("download.fetch", "folder", FOLDER)
    state.set_artifact(
        "download.fetch",
        "plan",
        [{"name": p.name, "size": p.stat().st_size} for p in w["info"]["shards"]],
    )
    state.set_artifact("build.push", "digest", "sha256:" + "ab" * 32)
    return state


def run(
    w: dict[str, Any], config: Config, state: State, answers: dict[str, str] | None = None
) -> tuple[int, list]:
    events: list = []
    engine = Engine(
        all_steps(),
        config=config,
        state=state,
        backends=real_backends(config),
        answerer=ReplayAnswerer(ReplayFile(None, {}, answers or {})),
        emit=events.append,
    )
    return engine.run(["deploy"]), events


def failure(events: list) -> StepFailed:
    return next(e for e in events if isinstance(e, StepFailed))


def test_apply_rollout_health_and_rerun_only_checks(world) -> None:
    config = config_for(world)
    state = seeded_state(world)
    code, events = run(world, config, state)
    assert code == EXIT_OK, [e for e in events if isinstance(e, StepFailed)]
    dep = world["kube"].deployments[("ai-workloads", "leviathan-engine")]
    svc = world["kube"].services[("ai-workloads", "leviathan-engine")]
    validate(dep, "1.30.0")
    assert dep["metadata"]["managedFields"][0]["manager"] == "leviathan"
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith("@sha256:" + "ab" * 32)
    assert "--web" not in container["args"]
    assert container["resources"]["requests"]["memory"].endswith("Gi")
    assert svc["spec"]["ports"][0]["nodePort"] == 30000
    assert state.artifact("deploy.health", "reply") == "Ready and listening."
    logs = [e.line for e in events if isinstance(e, LogLine)]
    assert any("memory estimate from the GGUF tensor table" in line for line in logs)
    assert any(
        r.range == "bytes=0-1048575" for r in world["hub"].requests
    )  # headers only, by Range
    assert world["engine"].chats
    code, events = run(world, config, state)
    assert code == EXIT_OK
    assert {e.step_id for e in events if isinstance(e, StepSkipped)} == {
        "deploy.apply",
        "deploy.health",
    }
    assert world["kube"].unimplemented == [] and world["kube"].rejected == []


SCENARIOS = {
    "http-registry": (
        {
            "phase": "Pending",
            "waiting_reason": "ImagePullBackOff",
            "waiting_message": 'Back-off pulling image: failed to do request: Head "https://127.0.0.1:5000/v2/omni/engine/manifests/x": http: server gave HTTP response to HTTPS client',
            "events": [
                (
                    "Failed",
                    "Failed to pull image: http: server gave HTTP response to HTTPS client",
                    "Warning",
                )
            ],
        },
        "plain HTTP",
        "registry-mirror",
    ),
    "gpu": (
        {
            "phase": "Pending",
            "unschedulable": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
            "events": [
                (
                    "FailedScheduling",
                    "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                    "Warning",
                )
            ],
        },
        "no free NVIDIA GPU",
        "device plugin",
    ),
    "illegal": (
        {
            "phase": "Running",
            "waiting_reason": "CrashLoopBackOff",
            "last_terminated": "Error",
            "restarts": 3,
            "previous_log": "loading model\nIllegal instruction (core dumped)\n",
        },
        "CPU instructions",
        "cpu_instruct",
    ),
    "oom": (
        {
            "phase": "Running",
            "waiting_reason": "CrashLoopBackOff",
            "last_terminated": "OOMKilled",
            "restarts": 1,
            "previous_log": "loading layer 40 of 61\n",
        },
        "OOMKilled",
        "more RAM",
    ),
    "mount": (
        {
            "phase": "Pending",
            "waiting_reason": "ContainerCreating",
            "events": [
                (
                    "FailedMount",
                    'MountVolume.SetUp failed for volume "gguf" : hostPath type check failed: /var/mnt/data/models is not a directory',
                    "Warning",
                )
            ],
        },
        "hostPath volume",
        "storage phase",
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_rollout_failures_are_explained(world, name: str) -> None:
    script, cause_text, fix_text = SCENARIOS[name]
    world["kube"].deployment_pod_script = lambda manifest: script
    code, events = run(world, config_for(world), seeded_state(world))
    assert code == EXIT_STEP_FAILED
    fail = failure(events)
    assert fail.step_id == "deploy.apply"
    assert cause_text in fail.error, fail
    assert fix_text.lower() in fail.hint.lower(), fail
    if name == "illegal":
        assert any(
            "[previous container] Illegal instruction" in e.line
            for e in events
            if isinstance(e, LogLine)
        )


def test_model_bigger_than_node_ram_is_refused_and_close_calls_need_accepting(world) -> None:
    config = config_for(world, memory_overhead_gib=0)
    shards = sum(p.stat().st_size for p in world["info"]["shards"])
    code, events = run(world, config, seeded_state(world, memory=shards // 4))
    assert code == EXIT_STEP_FAILED and "short" in failure(events).error
    world["tmp"].joinpath("state").joinpath("state.json").unlink()
    code, events = run(world, config, seeded_state(world, memory=int(shards * 0.78)))
    assert code == EXIT_UNANSWERED and "deploy.accept_risk" in failure(events).error
    world["tmp"].joinpath("state").joinpath("state.json").unlink()
    code, events = run(
        world,
        config,
        seeded_state(world, memory=int(shards * 0.78)),
        {"deploy.accept_risk": "accept"},
    )
    assert code == EXIT_OK


def test_vllm_refused_when_gpus_cannot_hold_the_model(world) -> None:
    config = config_for(world, engine="vllm", gpu_memory_gib=0.001)
    code, events = run(world, config, seeded_state(world))
    assert (
        code == EXIT_STEP_FAILED and "vLLM keeps all weights in GPU memory" in failure(events).error
    )
