from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.sandbox import Sandbox
from tests.support.services import Registry, Sshd, buildah_shim, start_registry, start_sshd

REQUIREMENTS = ("buildah", "docker-registry", "mkfs.xfs", "losetup")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not all(shutil.which(t) for t in REQUIREMENTS)
    or not Path("/usr/sbin/sshd").exists(),
    reason="the sandbox needs root, loop devices, sshd, buildah and docker-registry",
)

SSH_PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="session")
def build_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sshd, Registry, Path]]:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in REQUIREMENTS):
        pytest.skip("the sandbox needs root, loop devices, sshd, buildah and docker-registry")
    base = tmp_path_factory.mktemp("e2e-buildhost")
    shim = buildah_shim(base / "bin", delay_s=6.0)
    sshd = start_sshd(
        base / "sshd",
        passphrase=SSH_PASSPHRASE,
        env={"PATH": f"{shim}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    registry = start_registry(base / "registry")
    yield sshd, registry, shim
    sshd.stop()
    registry.stop()


@pytest.fixture
def sandbox_factory(build_host, tmp_path: Path) -> Iterator:
    made: list[Sandbox] = []

    def make(**kwargs) -> Sandbox:
        sshd, registry, shim = build_host
        box = Sandbox(
            tmp_path / f"box{len(made)}",
            sshd,
            registry,
            shim,
            tag=f"e2e-{uuid.uuid4().hex[:8]}",
            **kwargs,
        )
        made.append(box)
        return box

    yield make
    for box in made:
        box.close()


@pytest.fixture
def sandbox(sandbox_factory) -> Sandbox:
    return sandbox_factory()
