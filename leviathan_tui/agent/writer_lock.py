"""One writer per destination directory: an flock on `<dir>/.leviathan/writer.lock`.

The kernel drops the lock when its holder dies (kill -9 included), so a stale lock file never
blocks anyone; pods on the same node share the kernel and so the lock. The holder writes who it is
into the file (pid, host name, which in a pod is the pod's name, start time, command), so a second
agent can say whom it waits for or refuses.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from leviathan_tui.agent.fetch_records import meta_dir

POLL_S = 0.5


class LockBusy(Exception):
    def __init__(self, directory: Path, holder: dict[str, Any]) -> None:
        super().__init__(f"{directory} is being written by {describe(holder)}")
        self.directory = directory
        self.holder = holder


def describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process (it has not said who it is yet)"
    since = holder.get("since")
    when = (
        time.strftime("%H:%M:%S UTC", time.gmtime(since)) if isinstance(since, int | float) else "?"
    )
    return f"pid {holder.get('pid')} on {holder.get('host')} (since {when})"


class WriterLock:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = meta_dir(directory) / "writer.lock"
        self._fd: int | None = None

    def holder(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        identity = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": round(time.time(), 3),
            "command": " ".join(sys.argv[:1] + sys.argv[1:8])[:300],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(identity).encode(), 0)
        self._fd = fd
        return True

    def acquire(self, wait_s: float, on_wait: Any = None) -> None:
        """Take the lock, waiting up to `wait_s` for the holder to finish; LockBusy after that.
        `on_wait(holder)` is called once when the lock is found taken."""
        deadline = time.monotonic() + max(0.0, wait_s)
        told = False
        while not self.try_acquire():
            holder = self.holder()
            if time.monotonic() >= deadline:
                raise LockBusy(self.directory, holder)
            if not told and on_wait is not None:
                on_wait(holder)
                told = True
            time.sleep(POLL_S)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
