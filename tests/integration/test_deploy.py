"""The deploy phase: server-side apply to the API stand-in, a rollout that explains itself, and a
health check that only passes on a real completion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from leviathan_tui.backends import real_backends
from leviathan_tui.config import Config
from leviathan_tui.errors import EXIT_OK, EXIT_STEP_FAILED, EXIT_UNANSWERED
from leviathan_tui.estimate import read_local_header
from leviathan_tui.events import Explanation, LogLine, StepFailed, StepSkipped
from leviathan_tui.phases import all_steps
from leviathan_tui.phases.deploy import offer_fallback
from leviathan_tui.questions import QUESTIONS
from leviathan_tui.records import (
    Health,
    ImageRef,
    ModelFile,
    ModelFiles,
    ModelPlan,
    MountProof,
    NodeFacts,
    Rollout,
)
from leviathan_tui.replay import ReplayAnswerer, ReplayFile
from leviathan_tui.runner import Runner
from leviathan_tui.state import State
from tests.conftest import ROOT, leviathan_cmd, run_env
from tests.support.deepseek_gguf import ShardedModel
from tests.support.engine_standin import EngineStandIn
from tests.support.gguf_shards import FOLDER, GGUF_REPO, publish
from tests.support.hub_standin import HubStandIn
from tests.support.kube_standin import PSA, StandIn
from tests.support.validate import OLDEST, newest, validate


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
    """The records the deploy phase reads, as the earlier phases would have published them."""
    state = State.load(w["tmp"] / "state")
    steps = (
        "preflight.node",
        "preflight.model",
        "storage.verify_host",
        "download.fetch",
        "build.push",
    )
    for step in steps:
        state.set_status(step, "done")
    state.publish(
        "preflight.node",
        NodeFacts("gpu-0", True, "Talos (v1.11.2)", "v1.33.4", "127.0.0.1", 64.0, memory, 1),
    )
    files = tuple(
        ModelFile(
            p.name, f"{FOLDER}/{p.name}", "unsloth/DeepSeek-V3-GGUF", p.stat().st_size, None, "gguf"
        )
        for p in w["info"]["shards"]
    )
    state.publish(
        "preflight.model",
        ModelPlan(
            "unsloth/DeepSeek-V3-GGUF",
            "main",
            "Q4_K_M",
            "deepseek-ai/DeepSeek-V3",
            "main",
            FOLDER,
            files,
        ),
    )
    state.publish("storage.verify_host", MountProof("token", "S1"))
    state.publish(
        "download.fetch", ModelFiles(FOLDER, len(files), sum(f.size for f in files), True)
    )
    state.publish("build.push", ImageRef("r/i:t", "sha256:" + "ab" * 32, "oci", "b1"))
    return state


def engine_home(dep: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "engine-home")


def run(
    w: dict[str, Any], config: Config, state: State, answers: dict[str, str] | None = None
) -> tuple[int, list]:
    events: list = []
    engine = Runner(
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
    for version in (OLDEST, newest()):
        validate(dep, version)
    assert dep["metadata"]["managedFields"][0]["manager"] == "leviathan"
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith("@sha256:" + "ab" * 32)
    assert "--web" not in container["args"]
    assert container["resources"]["requests"]["memory"].endswith("Gi")
    assert svc["spec"]["ports"][0]["nodePort"] == 30000
    # the engine's HOME (FlashInfer's JIT cache, Triton's, ~/.ktransformers) is on the data disk
    assert {"name": "HOME", "value": "/engine-home"} in container["env"]
    home = engine_home(dep)
    assert home["hostPath"]["path"].startswith("/var/mnt/data/engine-home/ktransformers-")
    assert home["hostPath"]["type"] == "DirectoryOrCreate"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["engine-home"]["mountPath"] == "/engine-home"
    assert not mounts["engine-home"].get("readOnly")
    assert mounts["gguf"]["readOnly"] and mounts["model-config"]["readOnly"]
    health = state.get(Health)
    assert health.reply == "Ready and listening."
    bench = dict(health.bench)
    assert bench["rates from"] == "KTransformers usage", bench
    assert bench["4 streams: decode per stream"].endswith(" tok/s")
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


# --- llama.cpp: the upstream image, no build -------------------------------------------------


def test_llamacpp_deploys_its_upstream_image_while_the_build_has_failed(world) -> None:
    llama = EngineStandIn(flavour="llamacpp", loading_s=0.5)
    url = llama.start()
    try:
        config = config_for(world, engine="llamacpp", health_url=url, max_batch_size=3)
        state = seeded_state(world)
        state.drop(ImageRef)
        state.set_status("build.push", "failed", error="the registry refused the push")
        code, events = run(world, config, state)
    finally:
        llama.stop()
    assert code == EXIT_OK, [e for e in events if isinstance(e, StepFailed)]
    dep = world["kube"].deployments[("ai-workloads", "leviathan-engine")]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/ggml-org/llama.cpp:server-cuda-b11434"
    assert container["command"] == ["/app/llama-server"]
    args = container["args"]
    flags = {a: b for a, b in zip(args, args[1:], strict=False) if a.startswith("--")}
    assert flags["--parallel"] == "3" and flags["--ctx-size"] == str(3 * 8192)
    assert flags["--load-mode"] == "none" and flags["--n-predict"] == "1024"
    assert engine_home(dep)["hostPath"]["path"].startswith("/var/mnt/data/engine-home/llamacpp-")
    for version in (OLDEST, newest()):
        validate(dep, version)
    assert dict(state.get(Health).bench)["rates from"] == "llama.cpp timings"
    logs = [e.line for e in events if isinstance(e, LogLine)]
    # the estimate sizes the KV cache of all three slots
    assert any("memory estimate from the GGUF tensor table" in line for line in logs)


def test_the_completion_has_its_own_budget_after_a_long_load(world) -> None:
    # the load takes ~5 s (two polls) and the completion ~3 s: more than health_timeout_s in all
    slow = EngineStandIn(flavour="llamacpp", loading_s=4.0, reply_tokens=30, decode_tps=10.0)
    url = slow.start()
    try:
        config = config_for(
            world, health_url=url, health_timeout_s=7, completion_timeout_s=10, bench_timeout_s=0
        )
        code, events = run(world, config, seeded_state(world))
        assert code == EXIT_OK, [e for e in events if isinstance(e, StepFailed)]
        logs = [e.line for e in events if isinstance(e, LogLine)]
        assert "serving benchmark skipped (deploy.bench_timeout_s is 0)" in logs
        world["tmp"].joinpath("state", "state.json").unlink()
        config = config_for(world, health_url=url, completion_timeout_s=1, bench_timeout_s=0)
        code, events = run(world, config, seeded_state(world))
    finally:
        slow.stop()
    assert code == EXIT_STEP_FAILED
    fail = failure(events)
    assert fail.step_id == "deploy.health" and "completion_timeout_s is 1 s" in fail.error, fail
    assert "raise deploy.completion_timeout_s" in fail.hint


def test_a_benchmark_out_of_time_leaves_health_proven(world) -> None:
    slow = EngineStandIn(flavour="vllm", reply_tokens=10, decode_tps=20.0)  # 0.5 s a request
    url = slow.start()
    try:
        config = config_for(world, health_url=url, bench_timeout_s=1.5)
        state = seeded_state(world)
        code, events = run(world, config, state)
    finally:
        slow.stop()
    assert code == EXIT_OK, [e for e in events if isinstance(e, StepFailed)]
    health = state.get(Health)
    assert health.reply and health.bench[0][0] == "benchmark"
    assert health.bench[0][1].startswith("failed: ")
    assert any(isinstance(e, Explanation) and e.rule == "bench" for e in events)


# --- after a failed build, through the CLI's dry run ------------------------------------------

DRY_REPLAY = ROOT / "examples" / "dry-run-replay.yaml"


def dry_run(tmp_path: Path, deploy: dict[str, Any], answers: dict[str, str]) -> Any:
    tmp_path.mkdir(exist_ok=True)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"build": {"dockerfile": str(tmp_path / "missing")}, "deploy": deploy})
    )
    replay = yaml.safe_load(DRY_REPLAY.read_text())
    replay["answers"].update(answers)
    replay_path = tmp_path / "replay.yaml"
    replay_path.write_text(yaml.safe_dump(replay))
    return subprocess.run(
        leviathan_cmd()
        + ["--dry-run", "--state-dir", str(tmp_path / "state"), "--config", str(config)]
        + ["--replay", str(replay_path)],
        capture_output=True,
        text=True,
        env=run_env(LEVIATHAN_DRY_RUN_SPEED="50"),
        timeout=180,
    )


def steps_status(tmp_path: Path) -> dict[str, str]:
    state = json.loads((tmp_path / "state" / "dry-run" / "state.json").read_text())
    return {k: v["status"] for k, v in state["steps"].items()}


def test_dry_run_llamacpp_deploys_with_no_build(tmp_path: Path) -> None:
    """The Dockerfile is missing: a build would fail, but llama.cpp needs none and runs none."""
    done = dry_run(tmp_path, {"engine": "llamacpp"}, {})
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    status = steps_status(tmp_path)
    assert status["build.image"] == "skipped" and status["build.push"] == "skipped"
    assert "not needed: deploy.engine is llamacpp" in done.stdout
    assert status["deploy.apply"] == "done" and status["deploy.health"] == "done"
    state = json.loads((tmp_path / "state" / "dry-run" / "state.json").read_text())
    assert state["records"]["Rollout"]["data"]["engine"] == "llamacpp"
    assert "ImageRef" not in state["records"]


def test_dry_run_failed_build_offers_llamacpp_and_the_replay_takes_it(tmp_path: Path) -> None:
    declined = dry_run(tmp_path / "a", {}, {})
    assert declined.returncode == EXIT_STEP_FAILED
    assert "deploy.fallback_engine: llamacpp" in declined.stderr, declined.stderr
    assert steps_status(tmp_path / "a").get("deploy.apply") != "done"

    taken = dry_run(tmp_path / "b", {}, {"deploy.fallback_engine": "llamacpp"})
    assert taken.returncode == EXIT_OK, taken.stdout + taken.stderr
    assert "build.image failed; deploying llama.cpp's upstream image instead" in taken.stderr
    status = steps_status(tmp_path / "b")
    assert status["build.image"] == "failed"
    assert status["deploy.apply"] == "done" and status["deploy.health"] == "done"
    assert "llama.cpp:server-cuda-b11434" in taken.stdout


def test_fallback_is_offered_only_after_a_failed_ktransformers_build(world) -> None:
    state = seeded_state(world)
    config = config_for(world)
    assert offer_fallback(config, state) is None  # the build is done
    state.set_status("build.image", "failed", error="x")
    offer = offer_fallback(config, state)
    assert offer is not None and offer.failed_step == "build.image"
    assert offer.config.deploy.engine == "llamacpp" and offer.only == ("deploy",)
    assert offer.question().id in QUESTIONS
    assert offer.question().check("llamacpp") is None and offer.question().check("vllm")
    assert offer_fallback(config_for(world, engine="llamacpp"), state) is None
    state.set_status("download.fetch", "failed", error="x")
    assert offer_fallback(config, state) is None  # the deploy phase could not run anyway


# --- vLLM: the shards merged in a pod ----------------------------------------------------------


@pytest.fixture
def merge_world(
    tmp_path: Path, llama_cpp_bin: Path, deepseek_v3_shards: ShardedModel
) -> Iterator[dict[str, Any]]:
    """Pods run locally with the real llama-gguf-split on PATH, as the merge image has it; the
    data disk's node path and the pods' path are one directory, as in the sandbox."""
    data = tmp_path / "data"
    gguf = data / "models" / "deepseek-v3-gguf" / "Q4_K_M"
    gguf.mkdir(parents=True)
    shards = [Path(shutil.copy(p, gguf / p.name)) for p in deepseek_v3_shards.shards]
    kube = StandIn(
        workdir=tmp_path / "kube",
        version="1.30.0",
        deployment_pod_delay_s=0.2,
        pod_env={"PATH": f"{llama_cpp_bin}:{os.environ['PATH']}"},
    )
    kube.workdir.mkdir()
    kube.add_node("gpu-0", memory="768Gi", ip="127.0.0.1")
    kube.start()
    kube.namespaces["ai-workloads"] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ai-workloads", "labels": {PSA: "privileged"}},
    }
    hub = HubStandIn()
    for path in shards:
        hub.add_file(GGUF_REPO, f"{FOLDER}/{path.name}", path)
    hub.start()
    engine = EngineStandIn(flavour="vllm")
    url = engine.start()
    w = {"kube": kube, "hub": hub, "url": url, "tmp": tmp_path, "info": {"shards": shards}}
    w["data"], w["gguf"] = data, gguf
    yield w
    kube.stop()
    hub.stop()
    engine.stop()


def vllm_config(w: dict[str, Any], **storage: Any) -> Config:
    config = config_for(w, engine="vllm", bench_timeout_s=0)
    data = str(w["data"])
    update = {"host_mount": data, "pod_mount": data, **storage}
    return config.model_copy(
        update={
            "storage": config.storage.model_copy(update=update),
            "model": config.model.model_copy(
                update={"model_dir": f"{data}/models/deepseek-v3-gguf"}
            ),
        }
    )


@pytest.mark.slow
def test_vllm_gets_one_merged_gguf_made_in_a_pod(merge_world) -> None:
    w = merge_world
    state = seeded_state(w)
    code, events = run(w, vllm_config(w), state)
    assert code == EXIT_OK, [e for e in events if isinstance(e, StepFailed)]
    merged = w["gguf"].parent / "Q4_K_M-merged" / "DeepSeek-V3-Q4_K_M.gguf"
    header = read_local_header(str(merged))
    shard_tensors = [t for p in w["info"]["shards"] for t in read_local_header(str(p)).tensors]
    assert sorted(t.name for t in header.tensors) == sorted(t.name for t in shard_tensors)
    assert sum(t.nbytes for t in header.tensors) == sum(t.nbytes for t in shard_tensors)
    assert not list(w["gguf"].glob("*merged*"))  # KTransformers loads every .gguf in its dir
    dep = w["kube"].deployments[("ai-workloads", "leviathan-engine")]
    validate(dep, OLDEST)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "vllm/vllm-openai:v0.23.0"
    assert container["args"][:2] == ["serve", "/models/gguf/DeepSeek-V3-Q4_K_M.gguf"]
    gguf = next(v for v in pod["volumes"] if v["name"] == "gguf")
    assert gguf["hostPath"]["path"] == str(merged.parent)
    merge_pod = next(r for (_, n), r in w["kube"].pods.items() if n == "sysadmin-logistics-merge")
    spec = merge_pod.manifest["spec"]
    assert spec["containers"][0]["image"] == "ghcr.io/ggml-org/llama.cpp:full-b11434"
    assert "securityContext" not in spec["containers"][0]
    assert all(v["name"] != "dev" for v in spec["volumes"])
    logs = [e.line for e in events if isinstance(e, LogLine)]
    assert any(line.startswith("merge: gguf_merge: ") for line in logs), logs

    made = merged.stat().st_mtime_ns
    state.drop(Rollout)  # apply again: the merge is found done, not redone
    code, events = run(w, vllm_config(w), state)
    assert code == EXIT_OK, [e for e in events if isinstance(e, StepFailed)]
    assert merged.stat().st_mtime_ns == made
    assert any("merged by an earlier run" in e.line for e in events if isinstance(e, LogLine)), (
        events
    )


@pytest.mark.slow
def test_vllm_merge_refused_when_the_disk_cannot_hold_it(merge_world) -> None:
    w = merge_world
    config = vllm_config(w, min_free_margin_gib=10**6)
    code, events = run(w, config, seeded_state(w))
    assert code == EXIT_STEP_FAILED
    fail = failure(events)
    assert fail.step_id == "deploy.apply"
    assert fail.error.startswith("cannot merge the shards for vLLM: the merged file needs"), fail
    assert "deploy.engine llamacpp" in fail.hint
    assert not (w["gguf"].parent / "Q4_K_M-merged" / "DeepSeek-V3-Q4_K_M.gguf").exists()
    assert ("ai-workloads", "leviathan-engine") not in w["kube"].deployments


def test_dry_run_vllm_merges_the_shards_with_the_real_merge_agent(tmp_path: Path) -> None:
    """The dry run's pod runs the real merge agent; only the merge itself is simulated."""
    from leviathan_tui.dryrun.world import World

    world, _ = World.open(tmp_path / "state" / "dry-run" / "world", None)
    with world.edit() as data:  # vLLM holds every weight in VRAM: a node with 8 H200s
        data["node"]["gpus"] = 8
        data["node"]["labels"].update(
            {
                "nvidia.com/gpu.product": "NVIDIA-H200",
                "nvidia.com/gpu.memory": "143771",
                "nvidia.com/gpu.count": "8",
                "nvidia.com/gpu.compute.major": "9",
            }
        )
    done = dry_run(tmp_path, {"engine": "vllm", "gpus": 8, "gpu_memory_gib": 141}, {})
    # build.dockerfile is missing here: vLLM, like llama.cpp, needs no build and runs none
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    status = steps_status(tmp_path)
    assert status["deploy.apply"] == "done" and status["deploy.health"] == "done", status
    assert "needed (merged file and reserve)" in done.stdout
    assert ">> MERGED /data/models/deepseek-v3-gguf/Q4_K_M-merged/DeepSeek-V3-Q4_K_M.gguf" in (
        done.stdout
    )
    merged = list((tmp_path / "state" / "dry-run").rglob("Q4_K_M-merged/DeepSeek-V3-Q4_K_M.gguf"))
    assert len(merged) == 1 and merged[0].stat().st_size > 0
