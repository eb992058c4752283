"""One whole bring-up against the sandbox, then a second run that only checks."""

from __future__ import annotations

import hashlib
import subprocess

from tests.e2e.conftest import SSH_PASSPHRASE, pytestmark  # noqa: F401
from tests.e2e.sandbox import HF_TOKEN, Sandbox
from tests.support.gguf_shards import FOLDER
from tests.support.validate import validate

STEPS = (
    "preflight.node",
    "preflight.model",
    "storage.probe",
    "storage.format",
    "storage.verify_host",
    "download.fetch",
    "build.image",
    "build.push",
    "deploy.apply",
    "deploy.health",
)


def test_bring_up_then_second_run_only_checks(sandbox: Sandbox) -> None:
    first = sandbox.run()
    assert first.code == 0, first.stdout[-3000:] + first.stderr
    state = sandbox.state()
    assert all(state["steps"][s]["status"] == "done" for s in STEPS), {
        s: state["steps"][s]["status"] for s in STEPS
    }
    # the loop device holds our XFS, mounted, with the shards verified on it
    assert sandbox.mounted_label() == ("xfs", "leviathan")
    assert sandbox.mkfs_calls() == 1
    for shard in sandbox.published["shards"]:
        on_disk = sandbox.data / "models" / "deepseek-v3-gguf" / "Q4_K_M" / shard.name
        assert (
            hashlib.sha256(on_disk.read_bytes()).hexdigest()
            == hashlib.sha256(shard.read_bytes()).hexdigest()
        )
    assert (sandbox.data / "models" / "deepseek-v3-gguf" / "config" / "config.json").exists()
    assert not list((sandbox.data / "models").rglob("*.safetensors"))
    # the registry holds the tag at the recorded digest
    digest = state["records"]["ImageRef"]["data"]["digest"]
    head = subprocess.run(
        [
            "curl",
            "-sI",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            f"http://{sandbox.registry.address}/v2/omni/engine/manifests/{sandbox.tag}",
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert digest in head
    assert sandbox.builds() == 1
    # the API holds the Deployment and Service as rendered, pinned to that digest
    dep = sandbox.kube.deployments[("ai-workloads", "leviathan-engine")]
    validate(dep, "1.30.0")
    assert (
        dep["spec"]["template"]["spec"]["containers"][0]["image"]
        == f"{sandbox.registry.address}/omni/engine@{digest}"
    )
    assert ("ai-workloads", "leviathan-engine") in sandbox.kube.services
    assert sandbox.kube.unimplemented == [] and sandbox.kube.rejected == []
    # the health step saw a real completion
    assert state["records"]["Health"]["data"]["reply"] == "Ready and listening."
    assert sandbox.engine.chats and sandbox.engine.chats[0]["model"] == "DeepSeek-V3"
    assert "/health" in [p for _, p in sandbox.engine.requests]

    served = sandbox.bytes_served()
    second = sandbox.run()
    assert second.code == 0, second.stdout[-2000:] + second.stderr
    for step in STEPS:
        assert f"{step:<20} skipped  already done" in second.stdout, step
    assert "nothing to do: every step already holds" in second.stdout
    assert sandbox.mkfs_calls() == 1 and sandbox.builds() == 1 and sandbox.bytes_served() == served

    # secrets: the HF token (Kubernetes Secret) and the SSH key passphrase appear nowhere we write
    render = subprocess.run(
        sandbox.command()[:3]
        + [
            "render",
            "--out",
            str(sandbox.root / "rendered"),
            "--config",
            str(sandbox.config_path),
            "--state-dir",
            str(sandbox.state_dir),
        ],
        capture_output=True,
        text=True,
        env=sandbox.env(),
    )
    assert render.returncode == 0, render.stderr
    places = (
        [p for p in sandbox.state_dir.rglob("*") if p.is_file()]
        + [p for p in (sandbox.root / "rendered").iterdir()]
        + [sandbox.replay_path, sandbox.config_path]
    )
    for secret in (HF_TOKEN, SSH_PASSPHRASE):
        for path in places:
            assert secret not in path.read_text(errors="replace"), (secret, path)
        for text in sandbox.transcript:
            assert secret not in text
    fetch_pod = [
        r
        for (ns, name), r in sandbox.kube.pods.items()
        if name.startswith("sysadmin-logistics-fetch")
    ]
    for run in fetch_pod:
        env = run.manifest["spec"]["containers"][0]["env"]
        token = next(e for e in env if e["name"] == "HF_TOKEN")
        assert "value" not in token and token["valueFrom"]["secretKeyRef"]["name"] == "hf-token"
    assert FOLDER
