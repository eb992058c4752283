"""Real services on 127.0.0.1 for tests: OpenSSH's sshd and Debian's docker-registry."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Sshd:
    port: int
    directory: Path
    host_key: Path
    client_key: Path
    process: subprocess.Popen[bytes] | None = None
    passphrase: str | None = None

    def start(self) -> None:
        Path("/run/sshd").mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.directory / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "sshd.log", "ab"),
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process = None

    def kill_sessions(self) -> None:
        """Cut every open SSH connection (the per-connection sshd children), keep the listener."""
        if not self.process:
            return
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()
        for pid in out:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def new_host_key(self) -> None:
        self.host_key.unlink()
        self.host_key.with_suffix(".pub").unlink()
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)], check=True
        )
        self.stop()
        self.start()


def fingerprint(sshd: Sshd) -> str:
    """The SHA256 fingerprint of the test sshd's host key, as ssh-keygen prints it."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(sshd.host_key.with_suffix(".pub"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[1]


def start_sshd(
    directory: Path, passphrase: str | None = None, env: dict[str, str] | None = None
) -> Sshd:
    directory.mkdir(parents=True, exist_ok=True)
    host_key = directory / "ssh_host_ed25519_key"
    client_key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase or "", "-f", str(client_key)],
        check=True,
    )
    shutil.copy(client_key.with_suffix(".pub"), directory / "authorized_keys")
    port = free_port()
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp",
        f"PidFile {directory / 'sshd.pid'}",
        "LogLevel ERROR",
        "ClientAliveInterval 5",
    ]
    for key, value in (env or {}).items():
        lines.append(f"SetEnv {key}={value}")
    (directory / "sshd_config").write_text("\n".join(lines) + "\n")
    sshd = Sshd(port, directory, host_key, client_key, passphrase=passphrase)
    sshd.start()
    return sshd


@dataclass
class Registry:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(self.directory / "config.yml")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "registry.log", "ab"),
        )
        wait_port(self.port)
        urllib.request.urlopen(f"http://{self.address}/v2/", timeout=5).read()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def start_registry(directory: Path) -> Registry:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (directory / "config.yml").write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    registry = Registry(port, directory)
    registry.start()
    return registry


def buildah_shim(directory: Path, delay_s: float = 0.0) -> Path:
    """A `buildah` first in PATH on the build host: counts builds; a build's exit comes `delay_s`
    after its output, so a test has time to interrupt a build that is visibly running."""
    directory.mkdir(parents=True, exist_ok=True)
    real = shutil.which("buildah", path="/usr/bin:/usr/local/bin")
    log = directory / "builder-calls.log"
    log.touch()
    script = (
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        f'case " $* " in\n'
        f'  *" build "*) {real} "$@"; code=$?; sleep {delay_s}; exit $code ;;\n'
        f'  *) exec {real} "$@" ;;\n'
        f"esac\n"
    )
    (directory / "buildah").write_text(script)
    (directory / "buildah").chmod(0o755)
    return directory
