"""Every screen and dialog at 80x24 and 120x40 (pytest-textual-snapshot; Textual pinned in the
test extra). Contents are fixed so the pictures only change when the screens do."""

from __future__ import annotations

from pathlib import Path

import pytest

from leviathan_tui.agent.lsblk import parse_lsblk
from leviathan_tui.config import Config
from leviathan_tui.dryrun.machine import default_machine
from leviathan_tui.events import (
    Explanation,
    FileProgress,
    FilesPlanned,
    HealthAttempt,
    PodState,
    Progress,
    Question,
    StepStarted,
)
from leviathan_tui.phases.plan_line import PlanLine
from leviathan_tui.phases.storage import (
    confirm_question,
    device_choice,
    device_facts,
    foreign_question,
)
from leviathan_tui.screens.confirm import ConfirmFormatScreen
from leviathan_tui.screens.device import DeviceScreen
from leviathan_tui.screens.plan import PlanScreen
from leviathan_tui.screens.question import QuestionScreen
from leviathan_tui.screens.quit import QuitScreen
from leviathan_tui.screens.resume import ResumeScreen
from leviathan_tui.screens.summary import SummaryScreen
from tests.tui.helpers import LARGE, SMALL, ScreenHost, make_app, wait_for_main

SIZES = pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
DEVICES = {d.name: d for d in parse_lsblk(default_machine())}
NEED = 415_200_000_000


def device_question() -> Question:
    return Question(
        "storage.device",
        "Which disk should hold the model? The model needs 415.2 GB with margin.",
        kind="choice",
        screen="device",
        choices=[device_choice(d, "leviathan", "/data", NEED) for d in DEVICES.values()],
    )


def plan_screen() -> PlanScreen:
    screen = PlanScreen("Plan — nothing has changed yet.")
    for line in (
        PlanLine(
            "config",
            "ssh.host is still the plan's example value 192.168.3.10",
            "warn",
            "set ssh.host in a config file and pass --config FILE",
        ),
        PlanLine("cluster", "kube context admin@talos at https://127.0.0.1:6443", "ok"),
        PlanLine("node", "talos-node-0: Ready, Talos 1.11, 64 CPUs, 768.0 GiB RAM", "ok"),
        PlanLine(
            "node",
            "GPU 1 x NVIDIA-RTX-PRO-6000-Blackwell-Workstation-Edition, 96 GiB, compute 12.0",
            "ok",
        ),
        PlanLine(
            "namespace",
            "will create ai-workloads labelled pod-security.kubernetes.io/enforce=privileged",
        ),
        PlanLine("build host", "root@build-host: host key known", "ok"),
        PlanLine(
            "registry", "http://build-host:5000 ← build-host:5000/omni/engine:leviathan-blackwell"
        ),
        PlanLine(
            "model",
            "unsloth/DeepSeek-V3-GGUF DeepSeek-V3-Q4_K_M: 9 shards + 5 config files, 404.4 GB",
            "ok",
        ),
        PlanLine(
            "engine",
            "KTransformers (balance_serve): build-host:5000/omni/engine:leviathan-blackwell",
        ),
        PlanLine("ETA", "download about 33m42s at 200.0 MB/s (download.expected_bytes_per_s)"),
    ):
        screen.add_line(line)
    screen.finished()
    return screen


@SIZES
def test_plan_screen(snap_compare, size) -> None:
    assert snap_compare(ScreenHost(plan_screen()), terminal_size=size)


@SIZES
def test_device_screen(snap_compare, size) -> None:
    assert snap_compare(ScreenHost(DeviceScreen(device_question())), terminal_size=size)


@SIZES
def test_confirm_screen(snap_compare, size) -> None:
    q = confirm_question(device_facts(DEVICES["nvme1n1"], "leviathan", "/data", NEED))
    assert snap_compare(ScreenHost(ConfirmFormatScreen(q)), terminal_size=size)


@SIZES
def test_loud_confirm_screen(snap_compare, size) -> None:
    q = foreign_question(device_facts(DEVICES["nvme2n1"], "leviathan", "/data", NEED))
    assert snap_compare(ScreenHost(ConfirmFormatScreen(q)), terminal_size=size)


@SIZES
def test_host_key_question(snap_compare, size) -> None:
    fp = "SHA256:dRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNw"
    q = Question(
        "ssh.host_key",
        f"The build host 127.0.0.1 is not in known_hosts. It presents a ssh-ed25519 key with fingerprint {fp}. Accept it?",
        presented=fp,
        expected=fp,
        step_id="build.image",
    )
    assert snap_compare(ScreenHost(QuestionScreen(q)), terminal_size=size)


@SIZES
def test_resume_screen(snap_compare, size) -> None:
    screen = ResumeScreen(
        ["preflight.node: done", "storage.probe: done", "storage.format: interrupted"],
        "2026-11-30T06:00:00Z",
    )
    assert snap_compare(ScreenHost(screen), terminal_size=size)


@SIZES
def test_quit_screen(snap_compare, size) -> None:
    screen = QuitScreen(
        [
            "the download goes on (pod sysadmin-logistics-fetch on talos-node-0)",
            "the image build goes on on build-host (detached)",
        ],
        "leviathan --config site.yaml",
    )
    assert snap_compare(ScreenHost(screen), terminal_size=size)


@SIZES
def test_summary_screen(snap_compare, size) -> None:
    lines = {
        "Endpoint": "http://127.0.0.1:30000/v1  (OpenAI-style; model DeepSeek-V3)",
        "Try it": 'curl -s http://127.0.0.1:30000/v1/chat/completions -H \'Content-Type: application/json\' -d \'{"model": "DeepSeek-V3", "messages": [{"role": "user", "content": "Hello"}]}\'',
        "Replay": "/root/.local/state/leviathan/replay.yaml\nleviathan --replay /root/.local/state/leviathan/replay.yaml",
        "First reply": "Ready.  (time to first token 0.8 s)",
        "Talos patch (keeps the disk mounted after a reboot)": "Talos 1.11: an ExistingVolumeConfig mounts Leviathan's XFS at every boot\ntalosctl -n 127.0.0.1 patch mc --patch @/root/.local/state/leviathan/talos-storage-patch.yaml",
    }
    assert snap_compare(ScreenHost(SummaryScreen(lines)), terminal_size=size)


def main_app(tmp_path: Path, phase: str):
    app = make_app(tmp_path / "fixed", config=Config())
    app.show_plan = lambda: None  # the layout alone, before any (timing-dependent) event
    app.backends.actions.clear()  # the world's path differs from run to run
    app.sub_title = "DRY RUN — nothing real is touched"

    async def fill(pilot) -> None:
        await wait_for_main(app, pilot)
        feed = {
            "download": [
                StepStarted("download.fetch", "Download and verify the model"),
                FilesPlanned(
                    "download.fetch",
                    tuple(
                        (f"DeepSeek-V3-Q4_K_M-0000{i}-of-00009.gguf", 44_936_095_334)
                        for i in range(1, 10)
                    ),
                ),
                FileProgress(
                    "download.fetch",
                    "DeepSeek-V3-Q4_K_M-00001-of-00009.gguf",
                    44_936_095_334,
                    44_936_095_334,
                    "done",
                    "verified",
                ),
                FileProgress(
                    "download.fetch",
                    "DeepSeek-V3-Q4_K_M-00002-of-00009.gguf",
                    12_000_000_000,
                    44_936_095_334,
                    "resuming",
                ),
                Progress("download.fetch", 56_936_095_334, 404_424_858_009),
            ],
            "build": [
                StepStarted("build.image", "Build the engine image on the build host"),
                Progress("build.image", 8, 9, unit="build step", note="RUN bash install.sh"),
                Explanation(
                    "build.image",
                    "balance_serve was not compiled (No module named 'sched_ext')",
                    "build with USE_BALANCE_SERVE=1",
                    "sched-ext",
                ),
            ],
            "deploy": [
                StepStarted("deploy.apply", "Apply the Deployment and NodePort Service"),
                PodState(
                    "deploy.apply",
                    "leviathan-engine-7d9f8c6b5-x2k4q",
                    "Pending",
                    "ErrImagePull",
                    0,
                    "http: server gave HTTP response to HTTPS client",
                ),
                Explanation(
                    "deploy.apply",
                    "the node pulls over HTTPS from a plain-HTTP registry",
                    "apply the Talos registry mirror patch",
                    "http-registry",
                ),
                HealthAttempt(
                    "deploy.health",
                    "loading (/health 404, /v1/models connection refused)",
                    42.0,
                    3600.0,
                ),
            ],
        }[phase]
        for event in feed:
            app.on_engine_event(type("M", (), {"event": event})())
        app.show_phase(phase)
        await pilot.pause(0.3)

    return app, fill


@SIZES
@pytest.mark.parametrize("phase", ["download", "build", "deploy"])
def test_main_screen_panes(snap_compare, tmp_path: Path, size, phase: str) -> None:
    app, fill = main_app(tmp_path, phase)
    assert snap_compare(app, terminal_size=size, run_before=fill)
