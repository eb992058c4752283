"""The step list: every step and its live state."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

ICONS = {
    "pending": "·",
    "running": "▶",
    "done": "✔",
    "skipped": "↷",
    "failed": "✘",
    "blocked": "⏸",
    "waiting": "?",
}


class StepRow(Static):
    def __init__(self, step_id: str, title: str, status: str) -> None:
        super().__init__(id="step-" + step_id.replace(".", "-"))
        self.step_id = step_id
        self.title = title
        self.status = status

    def on_mount(self) -> None:
        self.set_status(self.status)

    def set_status(self, status: str) -> None:
        for old in ICONS:
            self.remove_class(old)
        self.status = status
        self.add_class(status)
        self.update(f"{ICONS.get(status, ' ')} {self.step_id:<20} {status}")
        self.tooltip = self.title


class StepList(Vertical):
    DEFAULT_CSS = """
    StepList { width: 40; border: round $primary; padding: 0 1; height: auto; }
    StepRow.running { color: $warning; text-style: bold; }
    StepRow.done { color: $success; }
    StepRow.skipped { color: $success 60%; }
    StepRow.failed { color: $error; text-style: bold; }
    StepRow.blocked { color: $text-muted; }
    StepRow.waiting { color: $accent; text-style: bold; }
    """

    def __init__(self, steps: list[tuple[str, str, str]], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._steps = steps
        self.border_title = "Steps"

    def compose(self) -> ComposeResult:
        for step_id, title, status in self._steps:
            yield StepRow(step_id, title, status)

    def set_status(self, step_id: str, status: str) -> None:
        for row in self.query(StepRow):
            if row.step_id == step_id:
                row.set_status(status)
