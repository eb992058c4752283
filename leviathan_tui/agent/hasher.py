"""Hashing that keeps up with the download instead of following it.

`PrefixHasher` runs in its own thread and hashes the contiguous prefix of a partial file as it
grows, reading the just-written pages of the page cache through a read-only mmap window (no copy
into a Python buffer; hashlib releases the GIL on large updates), so the digest is ready a moment
after the last byte lands, whatever order the segments arrive in.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leviathan_tui.agent.fetch_plan import PlannedFile
    from leviathan_tui.agent.segments import SegmentTable

WINDOW = 64 << 20  # bytes mapped at a time
STEP = 4 << 20  # wait for this much new prefix before hashing (fewer, larger updates)


def new_hasher(file: PlannedFile) -> Any:
    if file.sha256:
        return hashlib.sha256()
    hasher = hashlib.sha1()
    hasher.update(f"blob {file.size}\0".encode())  # git blob id of a small, non-LFS file
    return hasher


def hash_range(fd: int, hasher: Any, start: int, end: int) -> None:
    """Feed bytes [start, end) of the file to the hasher, through mmap windows (read() where the
    filesystem cannot map)."""
    position = start
    while position < end:
        base = position - position % mmap.ALLOCATIONGRANULARITY
        length = min(end, base + WINDOW) - base
        try:
            window = mmap.mmap(fd, length, prot=mmap.PROT_READ, offset=base)
        except (OSError, ValueError):
            _hash_by_read(fd, hasher, position, end)
            return
        try:
            with memoryview(window) as view:
                hasher.update(view[position - base :])
        finally:
            window.close()
        position = base + length


def _hash_by_read(fd: int, hasher: Any, start: int, end: int) -> None:
    buffer = bytearray(8 << 20)
    view = memoryview(buffer)
    position = start
    while position < end:
        n = os.preadv(fd, [view[: min(len(buffer), end - position)]], position)
        if n <= 0:
            raise OSError(f"file ends at {position}, expected {end} bytes")
        hasher.update(view[:n])
        position += n


def hash_file(path: Path, file: PlannedFile) -> str:
    hasher = new_hasher(file)
    fd = os.open(path, os.O_RDONLY)
    try:
        hash_range(fd, hasher, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    return hasher.hexdigest()


class PrefixHasher:
    """Follows `table.prefix()` in a thread; `digest()` returns once the whole file is hashed."""

    def __init__(self, path: Path, file: PlannedFile, table: SegmentTable) -> None:
        self.path = path
        self.file = file
        self.table = table
        self.hashed = 0
        self.cpu_s = 0.0
        self.error: BaseException | None = None
        self._hasher = new_hasher(file)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"hash {file.name}", daemon=True)

    def start(self) -> PrefixHasher:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.table.changed:
            self._stopped = True
            self.table.changed.notify_all()
        self._thread.join()

    def digest(self, timeout: float | None = None) -> str:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        if self._thread.is_alive() or self.hashed != self.file.size:
            raise TimeoutError(f"{self.file.name}: hashing did not finish")
        return self._hasher.hexdigest()

    def _ready(self) -> int | None:
        """Bytes of prefix to hash next, None when stopped; waits for STEP bytes or the end."""
        size = self.file.size
        with self.table.changed:
            while True:
                if self._stopped:
                    return None
                prefix = self.table._prefix()
                if prefix - self.hashed >= STEP or (prefix == size and prefix > self.hashed):
                    return prefix
                if self.hashed == size:
                    return None
                self.table.changed.wait(1.0)

    def _run(self) -> None:
        started = time.thread_time()
        fd = None
        try:
            while self.hashed < self.file.size:
                prefix = self._ready()
                if prefix is None:
                    return
                if fd is None:
                    fd = os.open(self.path, os.O_RDONLY)
                hash_range(fd, self._hasher, self.hashed, prefix)
                self.hashed = prefix
        except BaseException as err:  # surfaced by digest()
            self.error = err
        finally:
            if fd is not None:
                os.close(fd)
            self.cpu_s = time.thread_time() - started
