"""One writer per destination: an flock on a lock file that names its holder.

Pods on one node share a hostPath's inode, so two agents (an old pod still running, a new one
started by a second wizard) that lock the same file there exclude each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator


class Held(Exception):
    """Another agent holds the lock: `holder` says who (pid and host/pod name)."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(f"{path} is held by {holder}")
        self.path = path
        self.holder = holder


def _identity() -> str:
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"pid {os.getpid()} on {host}"


@contextlib.contextmanager
def hold(path: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lock at `path` (created if missing); wait up to `wait_s`, then raise Held."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    locked = False
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.lseek(fd, 0, os.SEEK_SET)
                    holder = os.read(fd, 200).decode(errors="replace").strip() or "another agent"
                    raise Held(path, holder) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, _identity().encode(), 0)
        yield
    finally:
        if locked:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        os.close(fd)
