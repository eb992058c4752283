"""The dry run's build host: a directory in the world where the real remote-job scripts run in a
local shell, with a simulated container builder first on PATH. A build started by one dry run is
found running (or finished) by the next, exactly as on a real host."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from leviathan_tui.config import Config
from leviathan_tui.dryrun.world import World

DRY_FINGERPRINT = "SHA256:dRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNw"
BUILDERS = ("docker", "podman", "buildah")


class DrySession:
    alive = True

    def __init__(self, config: Config, world: World, actions: list[str], speed: float) -> None:
        self.config = config
        self.world = world
        self.actions = actions
        self.home = world.build_host_root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.bin = world.build_host_root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for name in BUILDERS:
            shim = self.bin / name
            shim.write_text(
                f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m leviathan_tui.dryrun.builder "$@"\n'
            )
            shim.chmod(0o755)
        self.env = {
            "HOME": str(self.home),
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "LEVIATHAN_DRY_WORLD": str(world.directory),
            "LEVIATHAN_DRY_RUN_SPEED": str(speed),
        }

    def _local(self, text: str) -> str:
        """Absolute remote paths (build.remote_dir may be one) land inside the simulated home."""
        remote = self.config.build.remote_dir.rstrip("/")
        if remote.startswith("/"):
            text = text.replace(remote, str(self.home / remote.lstrip("/")))
        return text

    def _path(self, remote_path: str) -> Path:
        local = self._local(remote_path)
        return Path(local) if local.startswith("/") else self.home / local

    def run(self, command: str, timeout: float = 120.0) -> tuple[int, str, str]:
        self.actions.append(f"would run on {self.config.ssh.host}: {command}")
        proc = subprocess.run(
            ["sh", "-c", self._local(command)],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return proc.returncode, proc.stdout, proc.stderr

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        self.actions.append(f"would upload {remote_path} ({len(data)} bytes)")
        path = self._path(remote_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)

    def read_from(self, remote_path: str, offset: int, limit: int = 4 << 20) -> bytes:
        try:
            with open(self._path(remote_path), "rb") as handle:
                handle.seek(offset)
                return handle.read(limit)
        except FileNotFoundError:
            return b""

    def close(self) -> None:
        pass


class DrySshConnector:
    def __init__(self, config: Config, world: World, actions: list[str], speed: float) -> None:
        self.config = config
        self.world = world
        self.actions = actions
        self.speed = speed

    def describe(self) -> str:
        return f"{self.config.ssh.host} (simulated)"

    def known(self, host: str | None = None) -> bool:
        entry = f"{host or self.config.ssh.host} {DRY_FINGERPRINT}"
        return entry in self.world.read()["known_hosts"]

    def connect(
        self,
        ask_host_key: Callable[[str, str, str], bool],
        ask_secret: Callable[[str], str],
        host: str | None = None,
    ) -> DrySession:
        name = host or self.config.ssh.host
        if not self.known(name):
            ask_host_key(name, "ssh-ed25519", DRY_FINGERPRINT)
            with self.world.edit() as data:
                data["known_hosts"].append(f"{name} {DRY_FINGERPRINT}")
        self.actions.append(f"would connect to {name} over SSH")
        return DrySession(self.config, self.world, self.actions, self.speed)
