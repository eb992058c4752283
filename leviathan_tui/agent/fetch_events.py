"""The fetch agent's progress events (rate-limited) and the CPU it spends, split by activity."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from leviathan_tui.agent._emit import emit

PROGRESS_EVERY_S = 0.5


class CpuStats:
    """CPU seconds of the transfer threads, the hash threads and event output."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.seconds = {"transfer": 0.0, "hashing": 0.0, "events": 0.0}

    def add(self, kind: str, seconds: float) -> None:
        with self._lock:
            self.seconds[kind] += seconds

    def add_events(self, seconds: float) -> None:
        self.add("events", seconds)
        self._local.events = getattr(self._local, "events", 0.0) + seconds

    @contextmanager
    def thread(self, kind: str) -> Iterator[None]:
        """Count the calling thread's CPU as `kind`, minus what it spent writing events."""
        started = time.thread_time()
        events_before = getattr(self._local, "events", 0.0)
        try:
            yield
        finally:
            events = getattr(self._local, "events", 0.0) - events_before
            self.add(kind, max(0.0, time.thread_time() - started - events))

    def summary(self) -> dict[str, float]:
        with self._lock:
            out = {k: round(v, 3) for k, v in self.seconds.items()}
        out["process"] = round(time.process_time(), 3)
        return out


class Reporter:
    """Progress at most once per file every PROGRESS_EVERY_S; the CPU spent writing events is
    counted apart from the thread that wrote them."""

    def __init__(self, stats: CpuStats, started: float) -> None:
        self.stats = stats
        self.started = started
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self.first_byte_seen = threading.Event()

    def event(self, kind: str, **fields: Any) -> None:
        before = time.thread_time()
        emit(kind, **fields)
        self.stats.add_events(time.thread_time() - before)

    def progress(self, name: str, done: int, total: int, force: bool = False, **extra: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last.get(name, 0.0) < PROGRESS_EVERY_S:
                return
            self._last[name] = now
        self.event("progress", file=name, done=done, total=total, **extra)

    def first_byte(self, name: str, offset: int) -> None:
        """Once per run: how long from the agent's start to the first new byte on disk."""
        with self._lock:
            if self.first_byte_seen.is_set():
                return
            self.first_byte_seen.set()
        self.event(
            "first_byte",
            file=name,
            offset=offset,
            since_start_s=round(time.monotonic() - self.started, 3),
        )
