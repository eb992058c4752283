"""The step list: every step and its live state; Enter on a step shows that step's log."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

ICONS = {
    "pending": "·",
    "running": "▶",
    "done": "✔",
    "skipped": "↷",
    "failed": "✘",
    "blocked": "⏸",
    "waiting": "?",
    "interrupted": "■",
}
STYLES = {
    "running": "bold yellow",
    "done": "green",
    "skipped": "green",
    "failed": "bold red",
    "blocked": "dim",
    "waiting": "bold magenta",
    "interrupted": "yellow",
}


class StepList(OptionList):
    DEFAULT_CSS = """
    StepList { width: 26; height: auto; max-height: 100%; border: round $primary; padding: 0; }
    """

    def __init__(self, steps: list[tuple[str, str, str]], **kwargs: object) -> None:
        self.statuses = {step_id: status for step_id, _, status in steps}
        self.titles = {step_id: title for step_id, title, _ in steps}
        super().__init__(*(self._option(s) for s, _, _ in steps), **kwargs)  # type: ignore[arg-type]
        self.border_title = "Steps"
        self.border_subtitle = "Enter: its log"

    def _option(self, step_id: str) -> Option:
        status = self.statuses[step_id]
        text = Text(f"{ICONS.get(status, ' ')} {step_id}", style=STYLES.get(status, ""))
        return Option(text, id=step_id)

    def set_status(self, step_id: str, status: str) -> None:
        if step_id not in self.statuses:
            return
        self.statuses[step_id] = status
        self.replace_option_prompt(step_id, self._option(step_id).prompt)

    def legend(self) -> str:
        return "  ".join(f"{icon} {status}" for status, icon in ICONS.items())

    def status(self, step_id: str) -> str:
        return self.statuses.get(step_id, "pending")
