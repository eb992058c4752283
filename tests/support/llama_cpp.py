"""The real llama.cpp for the tests: its binaries (built once by scripts/llama_cpp.sh, cached),
the tiny DeepSeek-V3-shaped shards made with them (cached), and a llama-server started on
127.0.0.1 with the container command and arguments Leviathan renders for `deploy.engine: llamacpp`.

Import the fixtures into a conftest: `from tests.support.llama_cpp import llama_cpp_bin, ...`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from leviathan_tui.config import Config
from leviathan_tui.inference import CONFIG_MOUNT, GGUF_MOUNT, engine_spec
from leviathan_tui.render.manifests import deployment
from tests.support.deepseek_gguf import ShardedModel, TinyDeepSeekV3, make_sharded_model

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "llama_cpp.sh"
TOOLS = ("llama-server", "llama-quantize", "llama-gguf-split", "ggml-rpc-server")
# a cold build of llama.cpp on 2 busy cores can take a quarter of an hour
BUILD_TIMEOUT_S = 2400


def cache_root() -> Path:
    return Path(os.environ.get("LEVIATHAN_CACHE") or Path.home() / ".cache" / "leviathan-tests")


def pinned_version() -> str:
    return subprocess.run(
        ["bash", str(SCRIPT), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _background_build(build: Path) -> Path:
    """Wait for the build scripts/test.sh started beside the suite (its status file, then its path)."""
    status = build / "status"
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while not status.is_file():
        if time.monotonic() > deadline:
            pytest.fail(
                f"the llama.cpp build has not finished after {BUILD_TIMEOUT_S} s: {build}/log"
            )
        time.sleep(2.0)
    log = (build / "log").read_text(errors="replace").strip().splitlines()
    if status.read_text().strip() != "0":
        pytest.fail(log[-1] if log else f"the llama.cpp build failed; see {build}/log")
    return Path((build / "out").read_text().strip().splitlines()[-1])


def provide_llama_cpp() -> Path:
    """LEVIATHAN_LLAMA_CPP_BIN when set; else the build scripts/test.sh runs beside the suite
    (LEVIATHAN_LLAMA_CPP_BUILD); else the script's cached build, building it if absent."""
    given = os.environ.get("LEVIATHAN_LLAMA_CPP_BIN")
    if given:
        missing = [t for t in TOOLS if not (Path(given) / t).is_file()]
        if missing:
            pytest.fail(f"LEVIATHAN_LLAMA_CPP_BIN={given} lacks {', '.join(missing)}")
        return Path(given)
    build = os.environ.get("LEVIATHAN_LLAMA_CPP_BUILD")
    if build:
        return _background_build(Path(build))
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    if done.returncode != 0:
        pytest.fail(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "build failed")
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def llama_cpp_bin() -> Path:
    return provide_llama_cpp()


@pytest.fixture(scope="session")
def deepseek_v3_shards(llama_cpp_bin: Path) -> ShardedModel:
    """The Q4_K_M shards, made once per parameter set and llama.cpp version, then reused."""
    params = TinyDeepSeekV3()
    where = cache_root() / f"deepseek-v3-tiny-{pinned_version()}-{params.fingerprint()}"
    return make_sharded_model(llama_cpp_bin, where, params)


# --- the server, as rendered ------------------------------------------------------------------


def llamacpp_config() -> Config:
    return Config.model_validate({"deploy": {"engine": "llamacpp"}})


def rendered_container(config: Config, first_shard: str, cpu_infer: int) -> list[str]:
    """command + args of the engine container in the Deployment Leviathan applies."""
    spec = engine_spec(config, cpu_infer=cpu_infer, first_shard=first_shard)
    container = deployment(config, spec=spec)["spec"]["template"]["spec"]["containers"][0]
    return [*container["command"], *container["args"]]


def localize(argv: list[str], bin_dir: Path, gguf_dir: Path, port: int) -> list[str]:
    """Map only what differs between the pod and this machine: the image's binary, the mount
    paths, and where the server listens (127.0.0.1 and a free port)."""
    out = [str(bin_dir / Path(argv[0]).name)]
    mounts = {GGUF_MOUNT: str(gguf_dir), CONFIG_MOUNT: str(gguf_dir.parent / "config")}
    previous = ""
    for arg in argv[1:]:
        if previous == "--host":
            arg = "127.0.0.1"
        elif previous == "--port":
            arg = str(port)
        for mount, local in mounts.items():
            if arg == mount or arg.startswith(mount + "/"):
                arg = local + arg[len(mount) :]
        out.append(arg)
        previous = arg if arg.startswith("-") else ""
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LlamaServer:
    argv: list[str]
    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout_s: float) -> float:
        """Seconds until GET /health answers 200; fails with the log's tail if it never does."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.process.poll() is not None:
                tail = "\n".join(self.log().splitlines()[-15:])
                pytest.fail(f"llama-server exited with {self.process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - start
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        pytest.fail(f"llama-server not healthy after {timeout_s} s:\n{self.log()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_llama_server(argv: list[str], port: int, log_path: Path) -> LlamaServer:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent)
    return LlamaServer(argv, f"http://127.0.0.1:{port}", log_path, process)


@pytest.fixture
def rendered_llama_server(
    llama_cpp_bin: Path, deepseek_v3_shards: ShardedModel, tmp_path: Path
) -> Iterator[tuple[Config, LlamaServer]]:
    """llama-server serving the shards with exactly the rendered command and arguments."""
    config = llamacpp_config()
    port = free_port()
    rendered = rendered_container(
        config, deepseek_v3_shards.first_shard.name, cpu_infer=os.cpu_count() or 1
    )
    argv = localize(rendered, llama_cpp_bin, deepseek_v3_shards.folder, port)
    server = start_llama_server(argv, port, tmp_path / "llama-server.log")
    try:
        yield config, server
    finally:
        server.stop()
