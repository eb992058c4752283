"""One JSON object per output line: the wizard follows these through the pod's logs."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    record = {"event": event, "ts": round(time.time(), 3), **fields}
    line = json.dumps(record, separators=(",", ":"), default=str)
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def milestone(text: str) -> None:
    """The plan's human-readable milestones, for operators following `kubectl logs`."""
    with _lock:
        sys.stdout.write(f">> {text}\n")
        sys.stdout.flush()


def result(status: str, reason: str = "", **fields: Any) -> int:
    """The last line: done (exit 0), refused (exit 3) or failed (exit 1)."""
    emit("result", status=status, reason=reason, **fields)
    return {"done": 0, "refused": 3}.get(status, 1)
