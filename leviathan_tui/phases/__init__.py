"""The bring-up's steps, UI-free. Order here is the order the step list shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the TUI reads PHASES before its first paint; the steps load after it
    from leviathan_tui.runner import Step


def all_steps() -> list[Step]:
    from leviathan_tui.phases.build import BuildImageStep, PushImageStep
    from leviathan_tui.phases.deploy import ApplyStep, HealthStep
    from leviathan_tui.phases.download import FetchStep
    from leviathan_tui.phases.plan import PlanStep
    from leviathan_tui.phases.preflight import NodePreflightStep
    from leviathan_tui.phases.storage import FormatStep, ProbeStep, VerifyHostStep

    return [
        NodePreflightStep(),
        PlanStep(),
        ProbeStep(),
        FormatStep(),
        VerifyHostStep(),
        FetchStep(),
        BuildImageStep(),
        PushImageStep(),
        ApplyStep(),
        HealthStep(),
    ]


PHASES = ("preflight", "storage", "download", "build", "deploy")
