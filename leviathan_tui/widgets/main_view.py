"""The main screen's layout: the step list, the phase panes and the log. It is mounted under the
first dialog once that dialog has painted, so the plan appears without waiting for it."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.containers import Vertical as Pane
from textual.widgets import ContentSwitcher, Static

from leviathan_tui.phases import PHASES
from leviathan_tui.widgets.download_panel import DownloadPanel
from leviathan_tui.widgets.log_pane import LogPane
from leviathan_tui.widgets.step_list import StepList

PANEL_IDS = (
    "preflight-info",
    "storage-info",
    "build-progress",
    "build-hint",
    "deploy-pod",
    "deploy-why",
    "deploy-health",
)


def phase_bar(current: str) -> str:
    return " ".join(
        f"[reverse]{i} {p}[/reverse]" if p == current else f"{i} {p}"
        for i, p in enumerate(PHASES, 1)
    )


class MainView(Horizontal):
    def __init__(self, steps: list[tuple[str, str, str]], save_dir: Path, preflight: str) -> None:
        super().__init__(id="body")
        self.steps = steps
        self.save_dir = save_dir
        self.preflight = preflight

    def compose(self) -> ComposeResult:
        yield StepList(self.steps, id="step-list")
        with Vertical(id="main"):
            yield Static(phase_bar("preflight"), id="phase-bar")
            with ContentSwitcher(initial="pane-preflight", id="phases"):
                with Pane(id="pane-preflight", classes="pane"):
                    yield Static(self.preflight, id="preflight-info")
                with Pane(id="pane-storage", classes="pane"):
                    yield Static(
                        "Lists the node's disks; you choose one and confirm the format.",
                        id="storage-info",
                    )
                with Pane(id="pane-download", classes="pane"):
                    yield DownloadPanel(id="download-panel")
                with Pane(id="pane-build", classes="pane"):
                    yield Static(
                        "Builds the engine image on the build host over SSH.", id="build-info"
                    )
                    yield Static("", id="build-progress")
                    yield Static("", id="build-hint", classes="hint")
                with Pane(id="pane-deploy", classes="pane"):
                    yield Static(
                        "Applies the Deployment and Service, follows the rollout, checks health.",
                        id="deploy-info",
                    )
                    yield Static("", id="deploy-pod")
                    yield Static("", id="deploy-why", classes="hint")
                    yield Static("", id="deploy-health")
            yield LogPane(save_dir=self.save_dir, id="log-pane")
