"""One line of the plan shown before anything changes (see `survey`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["ok", "info", "warn", "error"]


@dataclass(frozen=True)
class PlanLine:
    topic: str
    text: str
    level: Level = "info"
    fix: str = ""
