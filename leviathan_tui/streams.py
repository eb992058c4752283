"""Writing to a terminal or pipe that may be gone: `| head` closed it (EPIPE), or the terminal hung
up (EIO). The run must go on to save its session, so a failed write is reported, never raised."""

from __future__ import annotations

import os
from typing import TextIO


def tell(stream: TextIO, text: str) -> bool:
    """Write and flush; False when the stream's reader is gone, and from then on the stream's
    descriptor writes to /dev/null, so a later write anywhere in the process cannot fail."""
    try:
        stream.write(text)
        stream.flush()
        return True
    except (OSError, ValueError):
        silence(stream)
        return False


def silence(stream: TextIO) -> None:
    """Point the stream's descriptor at /dev/null."""
    try:
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, stream.fileno())
        os.close(quiet)
    except (OSError, ValueError):  # no descriptor (a StringIO), or already closed
        pass
