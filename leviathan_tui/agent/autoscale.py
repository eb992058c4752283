"""How many connections per file: a fixed number, or "auto" measured in the first seconds.

Auto starts with one connection per file and doubles the count while doubling raises the total
rate by at least GAIN: a faster total means each connection was capped below the link (a CDN's
per-connection limit), the usual case on the real Hub. When a doubling brings nothing, the link
(or --max-bytes-per-s) is the limit and the count goes back to what it was.
"""

from __future__ import annotations

import threading
import time

from leviathan_tui.agent.fetch_events import Reporter

WARMUP_S = 0.5
WINDOW_S = 1.0
SETTLE_S = 0.25
GAIN = 1.2


class ConnectionPlanner:
    def __init__(
        self,
        reporter: Reporter,
        fixed: int | None,
        ceiling: int,
        rate_cap: float | None,
        initial: int = 1,
    ) -> None:
        self.reporter = reporter
        self.fixed = fixed
        self.ceiling = max(1, ceiling)
        self.rate_cap = rate_cap
        self._target = fixed if fixed else max(1, min(initial, self.ceiling))
        self._bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def target(self) -> int:
        return self._target

    def count(self, nbytes: int) -> None:
        with self._lock:
            self._bytes += nbytes

    def start(self) -> None:
        if not self.fixed and self._target < self.ceiling:
            threading.Thread(target=self._run, name="autoscale", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _received(self) -> int:
        with self._lock:
            return self._bytes

    def _measure(self) -> float | None:
        """Bytes per second over WINDOW_S; None when stopped."""
        before, started = self._received(), time.monotonic()
        if self._stop.wait(WINDOW_S):
            return None
        return (self._received() - before) / (time.monotonic() - started)

    def _decide(self, per_file: int, rate: float, reason: str) -> None:
        self._target = per_file
        self.reporter.event("connections", per_file=per_file, rate=round(rate), reason=reason)

    def _run(self) -> None:
        while self._received() == 0:  # the clock starts with the first bytes
            if self._stop.wait(0.1):
                return
        if self._stop.wait(WARMUP_S):
            return
        rate = self._measure()
        while rate is not None and self._target < self.ceiling:
            if self.rate_cap and rate >= 0.85 * self.rate_cap:
                self._decide(self._target, rate, "at the --max-bytes-per-s cap")
                return
            previous = self._target
            self._decide(min(self.ceiling, previous * 2), rate, "probing: more connections")
            if self._stop.wait(SETTLE_S):
                return
            faster = self._measure()
            if faster is None:
                return
            if faster < rate * GAIN:
                self._decide(
                    previous, faster, f"{self._target} connections per file were no faster"
                )
                return
            rate = faster
        if rate is not None:
            self._decide(self._target, rate, "the most connections per file allowed")
