"""The real kubernetes client, through backends/kube.py, against the local API stand-in."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leviathan_tui.backends.kube import KubeBackend, KubeError
from leviathan_tui.config import ClusterConfig, Config
from leviathan_tui.render.manifests import agent_configmap, agent_pod, namespace
from tests.support.kube_standin import StandIn


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandIn]:
    s = StandIn(workdir=tmp_path / "standin")
    s.workdir.mkdir()
    s.add_node("gpu-0")
    s.start()
    yield s
    s.stop()


def backend(standin: StandIn, tmp_path: Path, retries: int = 3) -> KubeBackend:
    kubeconfig = standin.kubeconfig(tmp_path / "kubeconfig")
    messages: list[str] = []
    kube = KubeBackend(
        ClusterConfig(kubeconfig=str(kubeconfig), api_retries=retries, node_name="gpu-0"),
        messages.append,
    )
    kube.retry_messages = messages  # type: ignore[attr-defined]
    return kube


def sandbox_config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "cluster": {"node_name": "gpu-0", "namespace": "ai-workloads"},
            "storage": {
                "host_mount": str(tmp_path / "data"),
                "pod_mount": str(tmp_path / "data"),
                "agent_mount": "/opt/leviathan",
            },
        }
    )


def test_nodes_namespace_and_psa_label(standin: StandIn, tmp_path: Path) -> None:
    kube = backend(standin, tmp_path)
    nodes = kube.list_nodes()
    assert [n.name for n in nodes] == ["gpu-0"]
    node = kube.get_node("gpu-0")
    assert (
        node
        and node.ready
        and node.gpus == 1
        and node.memory_bytes == 768 * 2**30
        and node.os_image == "Talos (v1.9.5)"
    )
    assert kube.get_node("nope") is None
    config = sandbox_config(tmp_path)
    assert "created namespace" in kube.ensure_namespace(namespace(config))
    assert "exists with" in kube.ensure_namespace(namespace(config))
    standin.namespaces["ai-workloads"]["metadata"]["labels"] = {
        "pod-security.kubernetes.io/enforce": "baseline"
    }
    message = kube.ensure_namespace(namespace(config))
    assert (
        "added pod-security.kubernetes.io/enforce=privileged" in message and "baseline" in message
    )
    assert standin.unimplemented == []


def test_privileged_pod_in_baseline_namespace_is_rejected_like_talos(
    standin: StandIn, tmp_path: Path
) -> None:
    kube = backend(standin, tmp_path)
    config = sandbox_config(tmp_path)
    standin.namespaces["ai-workloads"] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ai-workloads", "labels": {}},
    }
    kube.put_configmap(agent_configmap(config))
    with pytest.raises(KubeError) as err:
        kube.recreate_pod(agent_pod(config, "p", "probe", []))
    assert 'violates PodSecurity "baseline:latest": privileged' in err.value.message
    assert err.value.status == 403 and "RBAC" in err.value.hint or "forbidden" in err.value.message


def test_agent_pod_runs_and_logs_stream(standin: StandIn, tmp_path: Path) -> None:
    kube = backend(standin, tmp_path)
    config = sandbox_config(tmp_path)
    kube.ensure_namespace(namespace(config))
    kube.put_configmap(agent_configmap(config))
    kube.put_configmap(agent_configmap(config))  # the second time replaces
    pod = agent_pod(config, "probe-1", "probe", ["--label", "leviathan", "--no-blkid"])
    standin.start_delay_s = 3.0  # still ContainerCreating when its logs are asked for, however slow
    kube.recreate_pod(pod)
    with pytest.raises(KubeError, match="waiting to start"):
        list(kube.follow_logs("ai-workloads", "probe-1"))  # like a real API while ContainerCreating
    deadline = time.monotonic() + 10
    while (
        kube.pod_status("ai-workloads", "probe-1").phase == "Pending"
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    lines = list(kube.follow_logs("ai-workloads", "probe-1"))
    assert any(line.startswith(">> PROBING") for line in lines)
    assert '"event":"result"' in lines[-1]
    status = kube.pod_status("ai-workloads", "probe-1")
    assert status.phase == "Succeeded" and status.exit_code == 0
    events = [e["reason"] for e in kube.pod_events("ai-workloads", "probe-1")]
    assert events[:1] == ["Scheduled"] and "Started" in events
    kube.recreate_pod(pod)  # replaces the finished pod
    kube.delete_pod("ai-workloads", "probe-1")
    assert kube.get_pod("ai-workloads", "probe-1") is None
    assert standin.unimplemented == [] and standin.rejected == []


def test_transient_errors_retry_and_4xx_explain(standin: StandIn, tmp_path: Path) -> None:
    kube = backend(standin, tmp_path, retries=3)
    standin.fail_next = [500, 503, 429]
    assert kube.get_node("gpu-0") is not None
    assert len(kube.retry_messages) == 3  # type: ignore[attr-defined]
    standin.fail_next = [500] * 10
    with pytest.raises(KubeError, match="kept failing"):
        kube.get_node("gpu-0")
    standin.fail_next = []
    standin.forbid.add(("create", "pods"))
    config = sandbox_config(tmp_path)
    kube.ensure_namespace(namespace(config))
    with pytest.raises(KubeError) as err:
        kube.recreate_pod(agent_pod(config, "x", "probe", []))
    assert err.value.status == 403 and "verb 'create' on 'pods'" in err.value.hint


def test_invalid_object_gets_422_with_status(standin: StandIn, tmp_path: Path) -> None:
    kube = backend(standin, tmp_path)
    config = sandbox_config(tmp_path)
    kube.ensure_namespace(namespace(config))
    bad = agent_configmap(config)
    bad["apiVersion"] = "v2"  # passes the client's own model, not the schema
    with pytest.raises(KubeError) as err:
        kube.put_configmap(bad)
    assert err.value.status == 422 and "is invalid" in err.value.message
    assert standin.rejected


def test_unreachable_api_is_a_clear_message(tmp_path: Path) -> None:
    cfg = tmp_path / "kc"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: [{name: x, cluster: {server: 'http://127.0.0.1:9'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: x, user: u}}]\n"
    )
    kube = KubeBackend(ClusterConfig(kubeconfig=str(cfg), api_retries=1))
    with pytest.raises(KubeError, match="did not answer"):
        kube.list_nodes()
    kube = KubeBackend(ClusterConfig(kubeconfig=str(tmp_path / "missing")))
    with pytest.raises(KubeError, match="kubeconfig"):
        kube.list_nodes()
    assert sys.executable


def test_pod_stuck_pending_is_explained_within_the_timeout(
    standin: StandIn, tmp_path: Path
) -> None:
    from leviathan_tui.backends import Backends
    from leviathan_tui.events import StepFailed
    from leviathan_tui.phases import all_steps
    from leviathan_tui.records import NodeFacts
    from leviathan_tui.replay import ReplayAnswerer, ReplayFile
    from leviathan_tui.runner import Runner
    from leviathan_tui.state import State

    config = sandbox_config(tmp_path)
    config.cluster.node_name = "gpu-9"  # no such node: the pod is never scheduled
    config.cluster.pod_timeout_s = 2
    kube = backend(standin, tmp_path)
    kube.ensure_namespace(namespace(config))
    state = State.load(tmp_path / "state")
    state.set_status("preflight.node", "done")
    state.set_status("preflight.model", "done")
    state.publish(
        "preflight.node", NodeFacts("gpu-9", True, "Talos (v1.11.2)", "", "", 8.0, 2**34, 0)
    )
    events: list = []
    engine = Runner(
        all_steps(),
        config=config,
        state=state,
        backends=Backends(kube, None, None, None, None),
        answerer=ReplayAnswerer(ReplayFile(None, {}, {})),
        emit=events.append,
    )
    start = time.monotonic()
    assert engine.run(["storage"]) == 1
    assert time.monotonic() - start < 15
    failure = next(e for e in events if isinstance(e, StepFailed))
    assert failure.step_id == "storage.probe"
    assert "still Pending after 2 s" in failure.error and 'node "gpu-9" not found' in failure.error
    assert "cluster.node_name" in failure.hint
