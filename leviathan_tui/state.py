"""Session state: per-step status, the records steps publish, and answers — saved atomically.

The file is JSON with a schema version. A save writes a temp file in the same directory, fsyncs
it, renames it over the old one and fsyncs the directory, so a kill at any instant leaves the old
or the new version, never a mix; a failed save (disk full, read-only) removes its temp file and
leaves the last good version in place. Progress-only changes are coalesced (at most one write per
`coalesce_s`). A file that cannot be read — bad JSON, another schema, a field of the wrong type —
is moved aside under a name of its own and reported; read-only commands leave it where it is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from leviathan_tui.bounded_input import load_json_file
from leviathan_tui.errors import LeviathanError, UsageError

if TYPE_CHECKING:  # records load with the first one read: the TUI paints before that
    from leviathan_tui.records import Record

SCHEMA_VERSION = 2
STATE_FILE = "state.json"
LOCK_FILE = "session.lock"
REPLAY_FILE = "replay.yaml"
MAX_STATE_BYTES = 16 * 1024 * 1024

STATUSES = ("pending", "running", "done", "failed", "skipped", "interrupted")

R = TypeVar("R", bound="Record")


def _record_from_json(type_name: str, data: Any) -> Record:
    from leviathan_tui.records import record_from_json

    return record_from_json(type_name, data)


class StateWriteError(LeviathanError):
    """The session could not be saved (disk full, read-only, wrong kind of file)."""

    def __init__(self, message: str, hint: str = "", disk_full: bool = False) -> None:
        super().__init__(message, hint)
        self.disk_full = disk_full

    def fix(self, elsewhere: str) -> str:
        """What to do: free space when the disk is full, else make it writable, or go `elsewhere`."""
        return f"{'free space there' if self.disk_full else 'make it writable'}, or {elsewhere}"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class StepRecord:
    status: str = "pending"
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    summary: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "summary": self.summary,
        }

    @classmethod
    def from_json(cls, step_id: str, data: Any) -> StepRecord:
        if not isinstance(data, dict):
            raise ValueError(f"steps.{step_id}: expected an object")
        status = data.get("status", "pending")
        if status not in STATUSES:
            raise ValueError(f"steps.{step_id}.status: unknown status {status!r}")
        fields: dict[str, str | None] = {}
        for key in ("started_at", "finished_at", "error", "summary"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"steps.{step_id}.{key}: expected text or null")
            fields[key] = value
        return cls(status=status, **fields)


def _describe_os_error(err: OSError) -> str:
    return err.strerror or str(err)


def refuse_a_file_in_the_way(directory: Path) -> None:
    """Exit 2 when the state directory, or a folder it lies in, is a file: read-only commands
    (status, plan) would otherwise report "no saved session" for a path that cannot hold one."""
    blocker = next(
        (p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), None
    )
    if blocker is not None:
        raise UsageError(
            f"state directory {directory}: {blocker} is a file, not a directory",
            "pass another --state-dir, or move that file away",
        )


def check_directory(directory: Path) -> None:
    """The state directory can hold the session: exit 2 naming the path and cause otherwise."""
    refuse_a_file_in_the_way(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(
            f"cannot create the state directory {directory}: {_describe_os_error(err)}",
            "pass a writable --state-dir",
        ) from None
    if not directory.is_dir():
        raise UsageError(
            f"state directory {directory} is not a directory", "pass another --state-dir"
        )
    for name in (STATE_FILE, LOCK_FILE, REPLAY_FILE):
        path = directory / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise UsageError(
                f"{path} is not a regular file",
                f"move it away (mv {path} {path}.old) or pass another --state-dir",
            )
    probe = directory / f".write-test.{os.getpid()}"
    try:
        atomic_write(probe, b"ok\n")
    except StateWriteError as err:
        raise UsageError(err.message, err.fix("pass a writable --state-dir")) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


class SessionLock:
    """An exclusive lock on the state directory; the holder's PID is written inside."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as err:
            raise UsageError(
                f"cannot open the session lock {self.path}: {_describe_os_error(err)}",
                "pass a writable --state-dir, or move that path away",
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UsageError(f"{self.path} is not a regular file", "move it away")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            end_it = (
                f"end it with `kill -INT {holder}` (as Ctrl-C: it stops its steps and saves the "
                "session)"
                if holder.isdigit()
                else "end it"
            )
            raise UsageError(
                f"another Leviathan (PID {holder}) is driving the session in {self.path.parent}",
                f"wait for it to finish, {end_it}, or use another --state-dir",
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as err:
            os.close(fd)
            raise UsageError(
                f"cannot write the session lock {self.path}: {_describe_os_error(err)}",
                "free space there, or pass a writable --state-dir",
            ) from None
        self._fd = fd

    @staticmethod
    def held_by(directory: Path) -> str | None:
        """The PID of the Leviathan driving the session now, or None; reads, never takes the lock."""
        try:
            fd = os.open(directory / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        except OSError:
            return None
        finally:
            os.close(fd)
        return None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> SessionLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file + fsync + rename + directory fsync; on failure nothing partial is left."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        full = err.errno == errno.ENOSPC
        cause = "the disk is full" if full else _describe_os_error(err)
        raise StateWriteError(f"cannot save {path}: {cause}", disk_full=full) from None
    with contextlib.suppress(OSError):
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
        self.records: dict[str, tuple[str, Record]] = {}  # type name -> (owner step, record)
        self.answers: dict[str, Any] = {}
        self.created_at = now_iso()
        self.updated_at = self.created_at
        self.notices: list[str] = []
        self.saves = 0
        self.read_only = False
        self.unreadable: str | None = None  # why a read-only load found no session it could read
        self._lock = threading.RLock()
        self._dirty = False
        self._last_save = 0.0

    # --- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path, coalesce_s: float = 1.0, *, read_only: bool = False) -> State:
        """The saved session. `read_only`: never move or write anything (status, health, plan)."""
        state = cls(directory, coalesce_s)
        state.read_only = read_only
        if not state.path.exists() and not state.path.is_symlink():
            return state
        try:
            raw = load_json_file(state.path, "the saved session", MAX_STATE_BYTES)
            state._fill(raw)
        except (UsageError, ValueError, TypeError) as err:
            reason = err.message if isinstance(err, UsageError) else str(err)
            state.steps, state.records, state.answers = {}, {}, {}
            if read_only:
                state.unreadable = reason
                state.notices.append(
                    f"the saved session cannot be read ({reason}); it is left as it is"
                )
            else:
                aside = state._move_aside()
                state.notices.append(
                    f"the saved session could not be read ({reason}); it was moved aside to {aside} "
                    "and a new session was started"
                )
        return state

    def _fill(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        version = raw.get("schema")
        if version != SCHEMA_VERSION:
            older = isinstance(version, int) and not isinstance(version, bool) and version < 2
            raise ValueError(
                f"schema version {version!r}, this Leviathan reads {SCHEMA_VERSION}"
                + (
                    " (written by an older Leviathan; every step checks the world again)"
                    if older
                    else ""
                )
            )
        steps = raw.get("steps") or {}
        records = raw.get("records") or {}
        answers = raw.get("answers") or {}
        if (
            not isinstance(steps, dict)
            or not isinstance(records, dict)
            or not isinstance(answers, dict)
        ):
            raise ValueError("steps, records and answers must be objects")
        self.steps = {str(k): StepRecord.from_json(str(k), v) for k, v in steps.items()}
        self.records = {}
        for type_name, entry in records.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("step"), str):
                raise ValueError(f"records.{type_name}: expected {{step, data}}")
            self.records[type_name] = (
                entry["step"],
                _record_from_json(type_name, entry.get("data")),
            )
        for key, value in answers.items():
            if value is not None and not isinstance(value, str | int | float | bool):
                raise ValueError(f"answers.{key}: expected a single value")
        self.answers = dict(answers)
        for key in ("created_at", "updated_at"):
            value = raw.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{key}: expected text")
        self.created_at = raw.get("created_at") or self.created_at
        self.updated_at = raw.get("updated_at") or self.updated_at

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for n in range(1, 1000):
            suffix = "" if n == 1 else f"-{n}"
            aside = self.path.with_name(f"{STATE_FILE}.unreadable-{stamp}{suffix}")
            if aside.exists() or aside.is_symlink():
                continue
            try:
                os.link(self.path, aside)  # fails if the name appeared meanwhile: never overwrites
            except FileExistsError:
                continue
            except OSError:
                os.replace(self.path, aside)
                return aside
            os.unlink(self.path)
            return aside
        raise UsageError(f"too many unreadable sessions kept beside {self.path}", "remove old ones")

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def has_progress(self) -> bool:
        return (
            any(r.status != "pending" for r in self.steps.values())
            or bool(self.answers)
            or bool(self.records)
        )

    # --- steps ---------------------------------------------------------------------------

    def _step(self, step_id: str) -> StepRecord:
        return self.steps.setdefault(step_id, StepRecord())

    def set_status(
        self, step_id: str, status: str, *, error: str | None = None, summary: str | None = None
    ) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        with self._lock:
            rec = self._step(step_id)
            rec.status = status
            if status == "running":
                rec.started_at = now_iso()
                rec.finished_at = None
                rec.error = None
            elif status in ("done", "failed", "skipped"):
                rec.finished_at = now_iso()
            if error is not None or status not in ("failed", "interrupted"):
                rec.error = error
            if summary is not None:
                rec.summary = summary
            self.save()

    def status(self, step_id: str) -> str:
        with self._lock:
            rec = self.steps.get(step_id)
            return rec.status if rec else "pending"

    def iter_steps(self) -> Iterator[tuple[str, StepRecord]]:
        with self._lock:
            yield from list(self.steps.items())

    # --- records -------------------------------------------------------------------------

    def publish(self, step_id: str, record: Record, *, coalesce: bool = False) -> None:
        with self._lock:
            self.records[type(record).__name__] = (step_id, record)
            self.save(coalesce=coalesce)

    def get(self, cls: type[R]) -> R | None:
        with self._lock:
            entry = self.records.get(cls.__name__)
        return entry[1] if entry and isinstance(entry[1], cls) else None  # type: ignore[return-value]

    def owner(self, cls: type[Record]) -> str | None:
        with self._lock:
            entry = self.records.get(cls.__name__)
        return entry[0] if entry else None

    def drop(self, cls: type[Record]) -> None:
        with self._lock:
            if self.records.pop(cls.__name__, None) is not None:
                self.save()

    # --- answers -------------------------------------------------------------------------

    def set_answer(self, question_id: str, value: Any) -> None:
        with self._lock:
            self.answers[question_id] = value
            self.save()

    def forget_answer(self, question_id: str) -> None:
        with self._lock:
            if self.answers.pop(question_id, None) is not None:
                self.save()

    # --- saving --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "steps": {k: v.to_json() for k, v in self.steps.items()},
            "records": {
                name: {"step": step, "data": record.to_json()}
                for name, (step, record) in self.records.items()
            },
            "answers": self.answers,
        }

    def save(self, *, coalesce: bool = False) -> None:
        with self._lock:
            self._dirty = True
            if self.read_only:
                return
            if coalesce and time.monotonic() - self._last_save < self.coalesce_s:
                return
            self._write()

    def flush(self) -> None:
        with self._lock:
            if self._dirty and not self.read_only:
                self._write()

    def _write(self) -> None:
        self.updated_at = now_iso()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StateWriteError(
                f"cannot save the session in {self.directory}: {_describe_os_error(err)}"
            ) from None
        atomic_write(self.path, json.dumps(self.to_json(), indent=2, sort_keys=True).encode())
        self._dirty = False
        self._last_save = time.monotonic()
        self.saves += 1

    def reset(self) -> None:
        with self._lock:
            self.steps.clear()
            self.records.clear()
            self.answers.clear()
            self._dirty = False
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
