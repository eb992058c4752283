"""A detached job on the build host that outlives the SSH session.

The job runs under `setsid nohup`, writes its output to `<name>.log` and, when it ends, its exit
code to `<name>.exit`. The wizard tails the log over SFTP from a byte offset; when the connection
drops it reconnects and continues from the same offset, and a wizard started later finds the
running job (or its exit code) instead of starting another.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

from leviathan_tui.errors import StepError
from leviathan_tui.events import Question
from leviathan_tui.render.remote_job import (
    job_script,
    mkdir_command,
    start_command,
    status_command,
    stop_command,
)
from leviathan_tui.runner import StepContext

Connect = Callable[[], Any]


def _host_key_file(key_type: str) -> str:
    """'ssh-ed25519' -> 'ed25519', 'ecdsa-sha2-nistp256' -> 'ecdsa': sshd's host key file names."""
    return key_type.removeprefix("ssh-").split("-")[0]


def ssh_connect(ctx: StepContext) -> Any:
    """Connect to the build host, asking about unknown host keys and passphrases."""

    def ask_host_key(name: str, key_type: str, fp: str) -> bool:
        def validate(answer: Any) -> str | None:
            if str(answer).strip() != fp:
                return (
                    f"{answer!r} is not the fingerprint {name} presents now ({fp}); "
                    "compare that one with the host's key, then type or paste it to accept it"
                )
            return None

        ctx.ask(
            Question(
                "ssh.host_key",
                f"The build host {name} is not in known_hosts. It presents a {key_type} key with fingerprint {fp}. "
                "Accept it? (type or paste the fingerprint)",
                presented=fp,
                expected=fp,
                check_first=(
                    f"compare it first with the key {name} holds (on the build host: "
                    f"ssh-keygen -lf /etc/ssh/ssh_host_{_host_key_file(key_type)}_key.pub); "
                    "only if they match, "
                ),
                validate=validate,
            )
        )
        return True

    def ask_secret(prompt: str) -> str:
        return str(ctx.ask(Question("ssh.passphrase", prompt, secret=True)))

    return ctx.backends.ssh.connect(ask_host_key, ask_secret)


class RemoteJob:
    def __init__(self, ctx: StepContext, directory: str, name: str, connect: Connect) -> None:
        self.ctx = ctx
        self.dir = directory
        self.name = name
        self._connect = connect
        self.session: Any = None
        self.tail: collections.deque[str] = collections.deque(maxlen=3000)
        self.lines = 0

    @property
    def log_path(self) -> str:
        return f"{self.dir}/{self.name}.log"

    def session_(self) -> Any:
        if self.session is not None and not self.session.alive:
            self.ctx.log(
                f"SSH connection lost; reconnecting — the {self.name} goes on on the build host",
                "warn",
            )
            self.session.close()
            self.session = None
        if self.session is None:
            self.session = self._connect()
        return self.session

    def run(self, command: str, timeout: float = 120.0) -> tuple[int, str, str]:
        return self.session_().run(command, timeout)

    def status(self) -> tuple[str, int | None]:
        """('done', code) | ('running', None) | ('absent', None)."""
        code, out, err = self.run(status_command(self.dir, self.name))
        words = out.split()
        if code != 0 or not words:
            raise StepError(
                f"cannot read the {self.name} job's state on the build host: {err.strip() or out.strip()}"
            )
        if words[0] == "done":
            return "done", int(words[1]) if len(words) > 1 and words[1].lstrip("-").isdigit() else 1
        return words[0], None

    def start(self, command: str, files: dict[str, bytes]) -> None:
        """Upload files, then start `command` detached in the job directory."""
        session = self.session_()
        code, _, err = session.run(mkdir_command(self.dir))
        if code != 0:
            raise StepError(f"cannot create {self.dir} on the build host: {err.strip()}")
        for name, data in files.items():
            session.put_bytes(data, f"{self.dir}/{name}")
        n = self.name
        session.put_bytes(job_script(n, command).encode(), f"{self.dir}/{n}.sh", 0o755)
        code, _, err = session.run(start_command(self.dir, n))
        if code != 0:
            raise StepError(f"cannot start the {n} job on the build host: {err.strip()}")

    def follow(self, on_line: Callable[[str], None], timeout_s: float) -> int:
        """Tail the log until the exit code appears; survive dropped connections. Returns the code."""
        offset = 0
        partial = b""
        deadline = time.monotonic() + timeout_s
        outage_started: float | None = None
        attempt = 0
        while True:
            self.ctx.check_cancelled()
            try:
                session = self.session_()
                data = session.read_from(self.log_path, offset)
                outage_started, attempt = None, 0
                if data:
                    offset += len(data)
                    chunk = partial + data
                    *complete, partial = chunk.split(b"\n")
                    for raw in complete:
                        line = raw.decode("utf-8", errors="replace")
                        self.tail.append(line)
                        self.lines += 1
                        on_line(line)
                    if len(data) >= (4 << 20) - 1:
                        continue  # more is waiting: read again at once
                state, code = self.status()
                if state == "done":
                    rest = session.read_from(self.log_path, offset)
                    if rest:
                        offset += len(rest)
                        partial += rest
                        continue
                    if partial:
                        line = partial.decode("utf-8", errors="replace")
                        self.tail.append(line)
                        on_line(line)
                    return int(code or 0)
                if state == "absent":
                    raise StepError(
                        f"the {self.name} job on the build host stopped without an exit code (host rebooted?)",
                        "run again to start it anew",
                    )
            except ConnectionError as err:
                self.session = None
                now = time.monotonic()
                outage_started = outage_started or now
                attempt += 1
                if now - outage_started > 600:
                    raise StepError(
                        f"lost the SSH connection to the build host for {now - outage_started:.0f} s: {err}",
                        f"the {self.name} goes on there; run Leviathan again to reattach",
                    ) from None
                delay = min(10.0, 0.5 * 2 ** min(attempt, 5))
                self.ctx.log(
                    f"SSH connection lost ({err}); reconnecting in {delay:.0f} s — the {self.name} goes on",
                    "warn",
                )
                self.ctx.sleep(delay)
                continue
            except StepError as err:
                if "SSH" in err.message and "refused" not in err.message:
                    self.session = None
                    attempt += 1
                    self.ctx.log(f"reconnect failed: {err.message}", "warn")
                    self.ctx.sleep(min(10.0, 0.5 * 2 ** min(attempt, 5)))
                    continue
                raise
            if time.monotonic() > deadline:
                raise StepError(
                    f"the {self.name} has run for {timeout_s / 60:.0f} min without finishing",
                    "it goes on on the build host; run again to reattach",
                )
            self.ctx.sleep(0.5)

    def stop(self) -> str:
        """Stop the job on the build host; returns 'stopped' or 'absent'."""
        code, out, err = self.run(stop_command(self.dir, self.name))
        if code != 0:
            raise StepError(f"cannot stop the {self.name} on the build host: {err.strip()}")
        return out.strip() or "absent"

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
