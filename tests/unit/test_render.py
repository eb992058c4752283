import subprocess
from pathlib import Path

import pytest
import yaml

from leviathan_tui.config import Config
from leviathan_tui.inference import engine_spec
from leviathan_tui.render.bundle import render_all
from leviathan_tui.render.manifests import deployment, service
from leviathan_tui.render.talos import talos_storage_patch
from tests.conftest import leviathan_cmd, run_env
from tests.support.validate import OLDEST, newest, validate


@pytest.mark.parametrize("version", [OLDEST, newest()])
def test_render_writes_valid_manifests(tmp_path: Path, version: str) -> None:
    result = subprocess.run(
        leviathan_cmd() + ["render", "--out", str(tmp_path), "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    kube_files = [p for p in tmp_path.glob("*.yaml") if not p.name.startswith("talos-")]
    assert {p.name for p in kube_files} >= {
        "namespace.yaml",
        "sysadmin-logistics.yaml",
        "leviathan-deploy.yaml",
        "leviathan-service.yaml",
        "leviathan-agent-configmap.yaml",
    }
    for path in kube_files:
        validate(yaml.safe_load(path.read_text()), version)
    assert (
        (tmp_path / "Dockerfile.leviathan").read_text().startswith("# syntax=docker/dockerfile:1")
    )
    for name in (
        "talos-storage-patch-1.9.yaml",
        "talos-storage-patch-1.10.yaml",
        "talos-registry-patch.yaml",
    ):
        assert yaml.safe_load((tmp_path / name).read_text())


def test_privileged_pod_fields() -> None:
    from leviathan_tui.render.manifests import agent_pod

    pod = agent_pod(Config(), "sysadmin-logistics", "probe", [])
    container = pod["spec"]["containers"][0]
    assert container["securityContext"]["privileged"] is True
    assert pod["spec"]["nodeName"] == "talos-node-0"
    data = next(v for v in pod["spec"]["volumes"] if v["name"] == "data")
    assert data["hostPath"] == {"path": "/var/mnt/data", "type": "DirectoryOrCreate"}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert mount == {"name": "data", "mountPath": "/data", "mountPropagation": "Bidirectional"}
    assert any(
        v["name"] == "dev" and v["hostPath"]["path"] == "/dev" for v in pod["spec"]["volumes"]
    )


def test_deployment_fields_that_matter() -> None:
    c = Config()
    spec = engine_spec(c, digest="sha256:" + "a" * 64, cpu_infer=62)
    dep = deployment(c, spec=spec, memory_request_bytes=400 * 2**30)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "192.168.3.10:5000/omni/engine@sha256:" + "a" * 64
    assert pod["runtimeClassName"] == "nvidia"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["memory"] == "400Gi"
    assert container["command"] == ["python3", "-m", "ktransformers.server.main"]
    args = container["args"]
    assert "--web" not in args
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert (
        flags["--port"] == "30000" and flags["--host"] == "0.0.0.0" and flags["--cpu_infer"] == "62"
    )
    assert flags["--backend_type"] == "balance_serve"
    assert int(flags["--cache_lens"]) > int(flags["--max_batch_size"]) * int(
        flags["--max_new_tokens"]
    )
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models"
    assert (
        container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"]
        >= 3600
    )
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert volumes["gguf"]["hostPath"]["path"] == "/var/mnt/data/models/deepseek-v3-gguf/Q4_K_M"
    assert all(
        m["readOnly"] for m in container["volumeMounts"] if m["name"] in ("gguf", "model-config")
    )
    svc = service(c)
    assert svc["spec"]["type"] == "NodePort" and svc["spec"]["ports"][0]["nodePort"] == 30000
    validate(dep, newest())
    validate(svc, newest())


def test_llamacpp_engine_uses_first_shard_and_cpu_moe() -> None:
    c = Config.model_validate({"deploy": {"engine": "llamacpp"}})
    spec = engine_spec(c, first_shard="DeepSeek-V3-Q4_K_M-00001-of-00009.gguf")
    assert (
        "--cpu-moe" in spec.args
        and "/models/gguf/DeepSeek-V3-Q4_K_M-00001-of-00009.gguf" in spec.args
    )
    assert spec.health_paths == ("/health",)
    validate(deployment(c, spec=spec), OLDEST)


def _docs(patch: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(patch) if d]


@pytest.mark.parametrize("version", [(1, 9), (1, 10), None])
def test_talos_up_to_1_10_gets_the_kubelet_mount_and_says_what_a_reboot_needs(version) -> None:
    """siderolabs/talos: 1.9 binds no /var/mnt into the kubelet, 1.10 binds it read-only
    (kubelet.go); UserVolumeConfig never adopts a whole-disk XFS (volumes/disk.go)."""
    why, patch = talos_storage_patch(Config(), version, "S64HNE0R812345")
    docs = _docs(patch)
    assert len(docs) == 1
    mount = docs[0]["machine"]["kubelet"]["extraMounts"][0]
    assert mount["destination"] == "/var/mnt" and mount["options"] == ["bind", "rshared", "rw"]
    assert "UserVolumeConfig" not in patch and "transport" not in patch  # never "any NVMe"
    assert "does not survive a reboot" in why and "leviathan --only storage" in why


def test_talos_1_11_gets_an_existing_volume_pinned_to_our_filesystem_and_disk() -> None:
    """ExistingVolumeConfig (v1.11.0+): a CEL selector over volume.* and disk.*, mounted at
    /var/mnt/<name> (volume_config.go handleExistingVolumeConfig), never formatting."""
    why, patch = talos_storage_patch(Config(), (1, 11), "S64HNE0R812345")
    kubelet, volume = _docs(patch)
    assert kubelet["machine"]["kubelet"]["extraMounts"][0]["options"] == ["bind", "rshared", "rw"]
    assert volume["kind"] == "ExistingVolumeConfig" and volume["name"] == "data"
    match = volume["discovery"]["volumeSelector"]["match"]
    assert (
        match
        == 'volume.name == "xfs" && volume.label == "leviathan" && disk.serial == "S64HNE0R812345"'
    )
    assert volume["mount"] == {"readOnly": False}
    assert "every boot" in why and "never formats" in why
    _, later = talos_storage_patch(Config(), (1, 12))
    assert 'volume.label == "leviathan"' in later  # before a disk is chosen: our label alone


def test_an_existing_volume_needs_the_mount_under_var_mnt() -> None:
    c = Config.model_validate({"storage": {"host_mount": "/srv/models"}})
    why, patch = talos_storage_patch(c, (1, 11), "S1")
    assert "ExistingVolumeConfig" not in patch and "not /var/mnt/<name>" in why
    assert _docs(patch)[0]["machine"]["kubelet"]["extraMounts"][0]["source"] == "/srv"


def test_render_all_in_process_matches_dockerfile_asset() -> None:
    files = render_all(Config())
    assert "KTRANSFORMERS_REF=v0.4.1" in files["Dockerfile.leviathan"]
