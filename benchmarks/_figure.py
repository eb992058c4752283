"""One line per figure: `<figure-id> <value> <unit> target=<target> ok|MISS`."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    id: str
    value: float
    unit: str
    target: str  # e.g. "<=0.25" or ">=1.0"
    note: str = ""

    @property
    def ok(self) -> bool:
        op, bound = self.target[:2], float(self.target[2:])
        return self.value <= bound if op == "<=" else self.value >= bound

    def line(self) -> str:
        text = f"{self.id} {self.value:.4g} {self.unit} target={self.target} {'ok' if self.ok else 'MISS'}"
        return text + (f"  # {self.note}" if self.note else "")


def report(figures: list[Figure]) -> None:
    for figure in figures:
        print(figure.line(), flush=True)


def info(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)
