"""Session state: per-step status, answers and artifacts, saved atomically on every change.

The file is JSON with a schema version. A save writes a temp file in the same directory, fsyncs
it, renames it over the old one and fsyncs the directory, so a kill at any instant leaves the old
or the new version, never a mix. Progress-only changes are coalesced (at most one write per
`coalesce_s`), so a download emitting hundreds of events a second costs a few writes a second.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leviathan_tui.errors import UsageError

SCHEMA_VERSION = 1
STATE_FILE = "state.json"
LOCK_FILE = "session.lock"
REPLAY_FILE = "replay.yaml"

STATUSES = ("pending", "running", "done", "failed", "skipped")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class StepRecord:
    status: str = "pending"
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    summary: str | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "summary": self.summary,
            "artifacts": self.artifacts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepRecord:
        status = data.get("status", "pending")
        if status not in STATUSES:
            raise ValueError(f"unknown step status {status!r}")
        return cls(
            status=status,
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            error=data.get("error"),
            summary=data.get("summary"),
            artifacts=dict(data.get("artifacts") or {}),
        )


class SessionLock:
    """An exclusive lock on the state directory; the holder's PID is written inside."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(
                f"another Leviathan (PID {holder}) is driving the session in {self.path.parent}",
                "wait for it to finish, stop it, or use another --state-dir",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SessionLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class State:
    """The saved session. Thread-safe: steps run in worker threads."""

    def __init__(self, directory: Path, coalesce_s: float = 1.0) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        self.coalesce_s = coalesce_s
        self.steps: dict[str, StepRecord] = {}
        self.answers: dict[str, Any] = {}
        self.created_at = now_iso()
        self.updated_at = self.created_at
        self.notices: list[str] = []
        self.saves = 0
        self._lock = threading.RLock()
        self._dirty = False
        self._last_save = 0.0

    # --- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path, coalesce_s: float = 1.0) -> State:
        state = cls(directory, coalesce_s)
        if not state.path.exists():
            return state
        try:
            raw = json.loads(state.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            version = raw.get("schema")
            if version != SCHEMA_VERSION:
                raise ValueError(
                    f"schema version {version!r}, this Leviathan reads {SCHEMA_VERSION}"
                )
            state.steps = {k: StepRecord.from_json(v) for k, v in (raw.get("steps") or {}).items()}
            state.answers = dict(raw.get("answers") or {})
            state.created_at = raw.get("created_at") or state.created_at
            state.updated_at = raw.get("updated_at") or state.updated_at
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as err:
            aside = state.path.with_name(
                f"{STATE_FILE}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}"
            )
            os.replace(state.path, aside)
            state.notices.append(
                f"the saved session could not be read ({err}); it was moved aside to {aside} "
                "and a new session was started"
            )
            state.steps, state.answers = {}, {}
        return state

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def has_progress(self) -> bool:
        return any(r.status != "pending" for r in self.steps.values()) or bool(self.answers)

    # --- mutation ------------------------------------------------------------------------

    def record(self, step_id: str) -> StepRecord:
        with self._lock:
            return self.steps.setdefault(step_id, StepRecord())

    def set_status(
        self, step_id: str, status: str, *, error: str | None = None, summary: str | None = None
    ) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        with self._lock:
            rec = self.record(step_id)
            rec.status = status
            if status == "running":
                rec.started_at = now_iso()
                rec.finished_at = None
                rec.error = None
            elif status in ("done", "failed", "skipped"):
                rec.finished_at = now_iso()
            if error is not None or status != "failed":
                rec.error = error
            if summary is not None:
                rec.summary = summary
            self.save()

    def set_artifact(self, step_id: str, key: str, value: Any, *, coalesce: bool = False) -> None:
        with self._lock:
            self.record(step_id).artifacts[key] = value
            self.save(coalesce=coalesce)

    def artifact(self, step_id: str, key: str, default: Any = None) -> Any:
        with self._lock:
            rec = self.steps.get(step_id)
            return default if rec is None else rec.artifacts.get(key, default)

    def set_answer(self, question_id: str, value: Any) -> None:
        with self._lock:
            self.answers[question_id] = value
            self.save()

    def forget_answer(self, question_id: str) -> None:
        with self._lock:
            if self.answers.pop(question_id, None) is not None:
                self.save()

    def status(self, step_id: str) -> str:
        with self._lock:
            rec = self.steps.get(step_id)
            return rec.status if rec else "pending"

    # --- saving --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "steps": {k: v.to_json() for k, v in self.steps.items()},
            "answers": self.answers,
        }

    def save(self, *, coalesce: bool = False) -> None:
        with self._lock:
            self._dirty = True
            if coalesce and time.monotonic() - self._last_save < self.coalesce_s:
                return
            self._write()

    def flush(self) -> None:
        with self._lock:
            if self._dirty:
                self._write()

    def _write(self) -> None:
        self.updated_at = now_iso()
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self.to_json(), indent=2, sort_keys=True).encode())
        self._dirty = False
        self._last_save = time.monotonic()
        self.saves += 1

    def reset(self) -> None:
        with self._lock:
            self.steps.clear()
            self.answers.clear()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def iter_steps(self) -> Iterator[tuple[str, StepRecord]]:
        with self._lock:
            yield from list(self.steps.items())
