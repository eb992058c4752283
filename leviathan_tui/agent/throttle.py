"""Shared limits of one fetch run: a byte rate across all connections and a connection budget."""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """At most `rate` bytes per second summed over every caller. A caller takes what it has just
    read; the bucket may go into debt and the caller sleeps it off, so the long-run rate holds
    with any number of connections (TCP flow control slows the senders while nobody reads)."""

    def __init__(self, rate: float | None, burst: float | None = None) -> None:
        self.rate = rate if rate and rate > 0 else None
        self.burst = burst if burst is not None else (self.rate or 0) / 4
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> None:
        if self.rate is None:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= nbytes
            debt = -self._tokens
        if debt > 0:
            time.sleep(debt / self.rate)


class ConnectionBudget:
    """Connections beyond each file's first one (those are bounded by --parallel)."""

    def __init__(self, extra: int) -> None:
        self._free = max(0, extra)
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._free <= 0:
                return False
            self._free -= 1
            return True

    def release(self) -> None:
        with self._lock:
            self._free += 1
