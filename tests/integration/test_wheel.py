"""A wheel built as `pip install .` builds it (build isolation) and installed with its declared
dependencies in a fresh virtual environment finds its assets (manifests, Dockerfile)."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_renders_from_packaged_assets(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    wheel = next(dist.glob("leviathan_tui-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=False, with_pip=True)
    python = env_dir / "bin" / "python"
    # as a user installs it: the wheel and its declared dependencies, nothing borrowed
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=600,
    )
    out = tmp_path / "rendered"
    code = (
        "import leviathan_tui, leviathan_tui.assets as a; "
        "print(leviathan_tui.__file__); print(a.assets_root())"
    )
    where = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    ).stdout.split()
    assert where[0].startswith(str(env_dir)), where
    assert where[1].endswith("leviathan_tui/_assets"), where
    result = subprocess.run(
        [
            str(env_dir / "bin" / "leviathan"),
            "render",
            "--out",
            str(out),
            "--state-dir",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "Dockerfile.leviathan").read_text().startswith("# syntax=docker/dockerfile:1")
    assert "sysadmin-logistics" in (out / "sysadmin-logistics.yaml").read_text()
