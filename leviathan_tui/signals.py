"""SIGINT, SIGTERM and SIGHUP, from the first instruction to the last: always exit 130 with the session
saved and no traceback.

Before the steps start, the first signal interrupts the main thread (KeyboardInterrupt, which
`cli.main` turns into one line and exit 130); a second one while that unwinds leaves at once. While
steps run, the handler only counts: raising inside a queue or lock there could leave a lock released
twice. The front-end polls the count: the first signal stops the steps (they save and mark
themselves interrupted), a second one leaves at once. Once the command has returned, a signal
leaves at once, and while the interpreter shuts down signals are ignored: its shutdown puts the
default action back, which would end the process as killed by SIGINT instead of exit 130.
"""

from __future__ import annotations

import atexit
import enum
import os
import signal
import sys
from types import FrameType

from leviathan_tui.errors import EXIT_INTERRUPTED

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: tmux kill, a dropped SSH


class _Mode(enum.Enum):
    RAISING = "raise KeyboardInterrupt"
    UNWINDING = "a KeyboardInterrupt is unwinding: the next signal leaves"
    COUNTING = "count for the front-end to poll"
    LEAVING = "the command has returned: leave"


class _Signals:
    count = 0
    mode = _Mode.RAISING
    last = 0


def _handler(signum: int, frame: FrameType | None) -> None:
    _Signals.count += 1
    _Signals.last = signum
    if _Signals.mode is _Mode.RAISING:
        _Signals.mode = _Mode.UNWINDING  # once: a second raise could land inside a cleanup
        raise KeyboardInterrupt()
    if _Signals.mode is _Mode.UNWINDING:
        _leave_now(b"leviathan: interrupted again: quitting now; the session is saved\n")
    if _Signals.mode is _Mode.LEAVING:
        _leave_now(b"")


def _leave_now(message: bytes) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, RuntimeError):  # closed, or interrupted mid-write
            pass
    if message:
        os.write(2, message)
    os._exit(EXIT_INTERRUPTED)  # state files are written by rename: nothing is left half-saved


def install() -> None:
    _Signals.mode, _Signals.count, _Signals.last = _Mode.RAISING, 0, 0
    for signum in HANDLED:
        signal.signal(signum, _handler)


def counting() -> None:
    """From here on signals are counted, not raised (the steps are running)."""
    _Signals.mode = _Mode.COUNTING


def leaving() -> None:
    """The command has returned: a signal now exits 130 at once, and none is heeded at shutdown."""
    _Signals.mode = _Mode.LEAVING
    atexit.register(_ignore_at_shutdown)


def _ignore_at_shutdown() -> None:
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_IGN)


def received() -> int:
    return _Signals.count


def name() -> str:
    return signal.Signals(_Signals.last).name if _Signals.last else ""
