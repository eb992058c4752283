"""SSH to the build host with paramiko: ~/.ssh/config, the agent, key files, known_hosts.

An unknown host key is shown (SHA256 fingerprint) and must be accepted explicitly; a changed key
is refused, always. Passphrases are asked through a callback and never stored.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leviathan_tui.config import SshConfig
from leviathan_tui.errors import StepError

DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")

# ask_host_key(host_label, key_type, fingerprint) -> True to accept; ask_secret(prompt) -> text
AskHostKey = Callable[[str, str, str], bool]
AskSecret = Callable[[str], str]


class SshError(StepError):
    pass


def fingerprint(key: Any) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass
class Target:
    hostname: str
    port: int
    user: str
    identity_files: list[str] = field(default_factory=list)
    proxy_jump: str | None = None
    label: str = ""  # what known_hosts calls it: host or [host]:port

    @property
    def known_hosts_name(self) -> str:
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def resolve_target(cfg: SshConfig, host: str | None = None) -> Target:
    import paramiko

    host = host or cfg.host
    entry: dict[str, Any] = {}
    path = Path(os.path.expanduser(cfg.ssh_config))
    if path.exists():
        try:
            entry = paramiko.SSHConfig.from_path(str(path)).lookup(host)
        except Exception as err:  # a broken ssh config should say so, not crash
            raise SshError(f"cannot read {path}: {err}") from None
    hostname = entry.get("hostname", host)
    port = (
        int(cfg.port or entry.get("port", 22)) if host == cfg.host else int(entry.get("port", 22))
    )
    user = (cfg.user if host == cfg.host else None) or entry.get("user") or "root"
    identities = []
    if cfg.identity_file and host == cfg.host:
        identities.append(os.path.expanduser(cfg.identity_file))
    identities += [os.path.expanduser(p) for p in entry.get("identityfile", [])]
    target = Target(hostname, port, user, identities, entry.get("proxyjump"))
    target.label = target.known_hosts_name
    return target


class SshSession:
    """A connected, authenticated session: run commands, move files."""

    def __init__(self, transport: Any, target: Target, jump: SshSession | None = None) -> None:
        self.transport = transport
        self.target = target
        self.jump = jump
        self._sftp: Any = None

    @property
    def alive(self) -> bool:
        return bool(self.transport and self.transport.is_active())

    def run(self, command: str, timeout: float = 120.0) -> tuple[int, str, str]:
        try:
            channel = self.transport.open_session(timeout=timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            stdout = channel.makefile("rb").read().decode(errors="replace")
            stderr = channel.makefile_stderr("rb").read().decode(errors="replace")
            code = channel.recv_exit_status()
            channel.close()
            if code == -1:  # the server never sent an exit status: the connection went away
                raise ConnectionError("SSH connection lost while a command ran")
            return code, stdout, stderr
        except (OSError, EOFError) as err:
            raise ConnectionError(f"SSH connection lost: {err}") from err
        except Exception as err:
            if type(err).__module__.startswith("paramiko"):
                raise ConnectionError(f"SSH connection lost: {err}") from err
            raise

    def sftp(self) -> Any:
        if self._sftp is None:
            import paramiko

            self._sftp = paramiko.SFTPClient.from_transport(self.transport)
        return self._sftp

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        try:
            with self.sftp().open(remote_path + ".tmp", "wb") as handle:
                handle.write(data)
            self.sftp().posix_rename(remote_path + ".tmp", remote_path)
            self.sftp().chmod(remote_path, mode)
        except (OSError, EOFError) as err:
            raise ConnectionError(f"SFTP upload of {remote_path} failed: {err}") from err

    def read_from(self, remote_path: str, offset: int, limit: int = 4 << 20) -> bytes:
        """Bytes of a remote file from `offset` (b'' if it does not exist yet)."""
        try:
            with self.sftp().open(remote_path, "rb") as handle:
                handle.seek(offset)
                return handle.read(limit)
        except FileNotFoundError:
            return b""
        except OSError as err:
            if getattr(err, "errno", None) == 2:
                return b""
            raise ConnectionError(f"SFTP read of {remote_path} failed: {err}") from err
        except EOFError as err:
            raise ConnectionError(f"SFTP read of {remote_path} failed: {err}") from err

    def close(self) -> None:
        try:
            if self._sftp is not None:
                self._sftp.close()
            self.transport.close()
        except (
            Exception
        ):  # closing a dead connection may fail in many ways; it is closed either way
            pass
        if self.jump:
            self.jump.close()


class SshConnector:
    def __init__(self, cfg: SshConfig) -> None:
        self.cfg = cfg

    def describe(self) -> str:
        return f"{self.cfg.user + '@' if self.cfg.user else ''}{self.cfg.host}{':' + str(self.cfg.port) if self.cfg.port else ''}"

    def known(self, host: str | None = None) -> bool:
        """Whether known_hosts holds a key for the build host (read-only: no connection)."""
        import paramiko

        target = resolve_target(self.cfg, host)
        path = Path(os.path.expanduser(self.cfg.known_hosts))
        try:
            keys = paramiko.HostKeys(str(path)) if path.is_file() else paramiko.HostKeys()
        except (OSError, paramiko.SSHException):
            return False
        return keys.lookup(target.known_hosts_name) is not None

    def connect(
        self, ask_host_key: AskHostKey, ask_secret: AskSecret, host: str | None = None
    ) -> SshSession:
        import paramiko

        target = resolve_target(self.cfg, host)
        jump: SshSession | None = None
        try:
            if target.proxy_jump and host is None:
                jump = self.connect(ask_host_key, ask_secret, host=target.proxy_jump.split(",")[0])
                sock: Any = jump.transport.open_channel(
                    "direct-tcpip", (target.hostname, target.port), ("127.0.0.1", 0)
                )
            else:
                sock = socket.create_connection(
                    (target.hostname, target.port), timeout=self.cfg.connect_timeout_s
                )
        except ConnectionRefusedError:
            raise SshError(
                f"SSH to {target.hostname}:{target.port} refused",
                "is sshd running on the build host, and is ssh.port right?",
            ) from None
        except TimeoutError:
            raise SshError(
                f"SSH to {target.hostname}:{target.port} timed out after {self.cfg.connect_timeout_s:.0f} s",
                "check the address and that a firewall lets port 22 through",
            ) from None
        except socket.gaierror as err:
            raise SshError(
                f"cannot resolve {target.hostname}: {err.strerror}",
                "check ssh.host (or HostName in ~/.ssh/config)",
            ) from None
        except OSError as err:
            raise SshError(
                f"cannot reach {target.hostname}:{target.port}: {err.strerror or err}"
            ) from None

        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=self.cfg.connect_timeout_s)
            self._verify_host_key(transport.get_remote_server_key(), target, ask_host_key)
            self._authenticate(transport, target, ask_secret)
        except Exception:
            transport.close()
            if jump:
                jump.close()
            raise
        transport.set_keepalive(15)
        return SshSession(transport, target, jump)

    # --- host keys --------------------------------------------------------------------------

    def _verify_host_key(self, key: Any, target: Target, ask: AskHostKey) -> None:
        import paramiko

        path = Path(os.path.expanduser(self.cfg.known_hosts))
        known = paramiko.HostKeys()
        if path.exists():
            try:
                known.load(str(path))
            except Exception as err:  # a garbled known_hosts must not become "unknown host"
                raise SshError(f"cannot read {path}: {err}", "fix or move the file") from None
        name = target.known_hosts_name
        entries = known.lookup(name)
        fp = fingerprint(key)
        if entries is not None and key.get_name() in entries:
            if entries[key.get_name()] == key:
                return
            raise SshError(
                f"HOST KEY CHANGED for {name}: it now presents {key.get_name()} {fp}, which does not match {path}. "
                "Someone may be intercepting the connection, or the host was reinstalled.",
                f"if you know why it changed, remove the old key (ssh-keygen -R '{name}' -f {path}) and run again",
            )
        if entries is not None and len(entries):
            raise SshError(
                f"HOST KEY CHANGED for {name}: it now presents a {key.get_name()} key ({fp}); {path} holds {', '.join(entries.keys())}",
                f"if you know why it changed, remove the old key (ssh-keygen -R '{name}' -f {path}) and run again",
            )
        if not ask(name, key.get_name(), fp):
            raise SshError(
                f"host key of {name} ({fp}) not accepted",
                "accept the fingerprint after checking it on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")

    # --- authentication ---------------------------------------------------------------------

    def _authenticate(self, transport: Any, target: Target, ask_secret: AskSecret) -> None:
        import paramiko

        tried: list[str] = []
        try:
            agent_keys = list(paramiko.Agent().get_keys())
        except Exception:  # no agent socket, or a broken one
            agent_keys = []
        candidates: list[tuple[str, Any]] = [
            (f"agent key {fingerprint(k)}", lambda k=k: k) for k in agent_keys
        ]
        files = list(target.identity_files) or [
            os.path.expanduser(f"~/.ssh/{n}") for n in DEFAULT_KEYS
        ]
        candidates += [
            (f"key {f}", lambda f=f: self._load_key(f, ask_secret))
            for f in files
            if os.path.exists(f)
        ]
        for label, load in candidates:
            key = load()
            if key is None:
                continue
            tried.append(label)
            try:
                transport.auth_publickey(target.user, key)
                return
            except paramiko.AuthenticationException:
                continue
            except paramiko.SSHException as err:
                raise SshError(f"SSH authentication to {target.label} failed: {err}") from None
        raise SshError(
            f"SSH authentication as {target.user}@{target.label} failed; tried: {', '.join(tried) or 'nothing (no agent keys, no key files)'}",
            "load your key into ssh-agent (ssh-add), or set ssh.identity_file / IdentityFile in ~/.ssh/config, and check the user",
        )

    @staticmethod
    def _load_key(path: str, ask_secret: AskSecret) -> Any:
        import paramiko

        try:
            return paramiko.PKey.from_path(path)
        except (
            paramiko.PasswordRequiredException,
            TypeError,
        ):  # paramiko 4+ raises TypeError for encrypted keys
            passphrase = os.environ.get("LEVIATHAN_SSH_PASSPHRASE") or ask_secret(
                f"Passphrase for {path}"
            )
            try:
                return paramiko.PKey.from_path(path, password=passphrase.encode())
            except (paramiko.SSHException, ValueError, TypeError):
                raise SshError(
                    f"wrong passphrase for {path}", "type it again, or add the key to ssh-agent"
                ) from None
        except (paramiko.SSHException, OSError, ValueError):
            return None
