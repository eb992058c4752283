"""Textual's terminal driver, made to survive its terminal going away.

When tmux is killed or SSH drops, the kernel sends SIGHUP and then SIGCONT; Textual answers SIGCONT
by starting a new output thread, whose first write to the dead terminal fails with EIO and ends the
thread. Its queue (30 writes) then fills, and the next write blocks the app's shutdown for ever,
with the session's lock held (textual 8.2.8, drivers/_writer_thread.py and linux_driver.py). Here a
failed write marks the terminal gone, and what is written after it is dropped.
"""

from __future__ import annotations

from typing import IO, Any

from textual.driver import Driver


class TerminalOutput:
    """The terminal's stream, as Textual's output thread uses it: write, flush, fileno."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except (OSError, ValueError):  # EIO: the terminal hung up; ValueError: closed
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self.gone = True

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def survives_hangup(base: type[Driver]) -> type[Driver]:
    """`base` with its output stream wrapped; a driver without one (Windows, headless) unchanged."""
    try:
        from textual.drivers.linux_driver import LinuxDriver
    except ImportError:  # termios is missing: not a POSIX terminal
        return base
    if not issubclass(base, LinuxDriver):
        return base

    class HangupSafeDriver(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._file = TerminalOutput(self._file)

    return HangupSafeDriver
