"""SIGINT, SIGTERM and SIGHUP, from the first instruction to the last: always exit 130 with the session
saved and no traceback.

Before the steps start, a signal interrupts the main thread (KeyboardInterrupt, which `cli.main`
turns into one line and exit 130). While steps run, the handler only counts: raising inside a
queue or lock there could leave a lock released twice. The front-end polls the count: the first
signal stops the steps (they save and mark themselves interrupted), a second one leaves at once.
"""

from __future__ import annotations

import signal
from types import FrameType


class _Signals:
    count = 0
    raising = True
    last = 0


def _handler(signum: int, frame: FrameType | None) -> None:
    _Signals.count += 1
    _Signals.last = signum
    if _Signals.raising:
        raise KeyboardInterrupt()


def install() -> None:
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGHUP, _handler)  # the terminal closed (tmux kill, a dropped SSH)


def counting() -> None:
    """From here on signals are counted, not raised (the steps are running)."""
    _Signals.raising = False


def raising() -> None:
    _Signals.raising = True


def received() -> int:
    return _Signals.count


def name() -> str:
    return signal.Signals(_Signals.last).name if _Signals.last else ""
