from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.llama_cpp import (  # noqa: F401  (fixtures for the real llama.cpp)
    deepseek_v3_shards,
    llama_cpp_bin,
    rendered_llama_server,
)

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("mkfs.xfs") is None,
    reason="needs root, losetup and mkfs.xfs",
)


def _detach(device: str, mountpoints: list[Path]) -> None:
    for mp in mountpoints:
        subprocess.run(["umount", "-l", str(mp)], capture_output=True)
    found = subprocess.run(
        ["findmnt", "-n", "-o", "TARGET", "--source", device], capture_output=True, text=True
    ).stdout.split()
    for target in found:
        subprocess.run(["umount", "-l", target], capture_output=True)
    subprocess.run(["losetup", "-d", device], capture_output=True)


class LoopDevice:
    def __init__(self, path: str, image: Path, size: int) -> None:
        self.path, self.image, self.size = path, image, size
        self.mountpoints: list[Path] = []


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[LoopDevice]:
    yield from make_loop(tmp_path, 512 * 2**20)


def make_loop(tmp_path: Path, size: int) -> Iterator[LoopDevice]:
    image = tmp_path / "disk.img"
    subprocess.run(["truncate", "-s", str(size), str(image)], check=True)
    path = subprocess.run(
        ["losetup", "-f", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    dev = LoopDevice(path, image, size)
    try:
        yield dev
    finally:
        _detach(path, dev.mountpoints)


@pytest.fixture
def mkfs_counter(tmp_path: Path) -> Iterator[Path]:
    """A PATH shim that counts mkfs.xfs invocations before running the real one."""
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    log = tmp_path / "mkfs-calls.log"
    real = shutil.which("mkfs.xfs")
    (shim_dir / "mkfs.xfs").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    (shim_dir / "mkfs.xfs").chmod(0o755)
    log.touch()
    yield shim_dir
