"""The interactive front-end (Textual). The engine runs in a worker thread started by the App;
its events arrive as messages; questions are answered on screens and recorded in replay.yaml."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.containers import Vertical as Pane
from textual.message import Message
from textual.widgets import ContentSwitcher, Footer, Header, Static

from leviathan_tui.config import Config
from leviathan_tui.errors import EXIT_INTERRUPTED, Cancelled
from leviathan_tui.events import (
    Event,
    Explanation,
    FileProgress,
    FilesPlanned,
    HealthAttempt,
    LogLine,
    Notice,
    PodState,
    Progress,
    Question,
    QuestionAsked,
    RunFinished,
    StepBlocked,
    StepDone,
    StepFailed,
    StepInterrupted,
    StepSkipped,
    StepStarted,
)
from leviathan_tui.phases import all_steps
from leviathan_tui.records import DataDisk, Health, ImageRef
from leviathan_tui.replay import ReplayFile
from leviathan_tui.runner import Runner
from leviathan_tui.screens.confirm import ConfirmFormatScreen
from leviathan_tui.screens.device import DeviceScreen
from leviathan_tui.screens.question import QuestionScreen
from leviathan_tui.screens.resume import ResumeScreen
from leviathan_tui.screens.summary import SummaryScreen
from leviathan_tui.state import REPLAY_FILE, State
from leviathan_tui.widgets.download_panel import DownloadPanel
from leviathan_tui.widgets.log_pane import LogPane
from leviathan_tui.widgets.step_list import StepList

PHASE_TABS = ("preflight", "storage", "download", "build", "deploy")


class EngineEvent(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # a newer progress update for the same item replaces an older one still queued
        if not isinstance(message, EngineEvent):
            return False
        mine, other = self.event, message.event
        if isinstance(mine, FileProgress) and isinstance(other, FileProgress):
            return mine.step_id == other.step_id and mine.file == other.file
        return (
            isinstance(mine, Progress)
            and isinstance(other, Progress)
            and mine.step_id == other.step_id
        )


class AskOperator(Message):
    def __init__(self, question: Question, reply: list[Any], done: threading.Event) -> None:
        super().__init__()
        self.question = question
        self.reply = reply
        self.done = done


class TuiAnswerer:
    """Answers come from the operator; non-secret answers are recorded in replay.yaml."""

    def __init__(self, app: LeviathanApp, state: State, replay_path: Path, config: Config) -> None:
        self.app = app
        self.state = state
        self.replay = ReplayFile(
            replay_path, config.model_dump(mode="json", exclude_defaults=True), {}
        )
        if replay_path.exists():
            try:
                self.replay.answers = ReplayFile.load(replay_path).answers
            except Exception:  # an unreadable old recording is replaced, not fatal
                self.replay.answers = {}
        self.replay_path = replay_path
        self._lock = threading.Lock()

    def recorded(self, key: str) -> Any:
        return self.state.answers.get(key)

    def record_fact(self, key: str, value: Any) -> None:
        self.state.set_answer(key, value)
        with self._lock:
            self.replay.answers[key] = value
            self.replay.save(self.replay_path)

    def answer(self, question: Question, cancelled: threading.Event) -> Any:
        previous = self.state.answers.get(question.id)
        if (
            previous is not None
            and not question.destructive
            and question.reuse_answer
            and question.check(previous) is None
        ):
            self._record(question, previous)
            return previous  # resume: the operator already answered this
        while True:
            reply: list[Any] = []
            done = threading.Event()
            self.app.post_message(AskOperator(question, reply, done))
            while not done.wait(0.2):
                if cancelled.is_set():
                    raise Cancelled()
            value = reply[0] if reply else None
            if value is None:
                raise Cancelled()
            if question.check(value) is None:
                self._record(question, value)
                return value

    def _record(self, question: Question, value: Any) -> None:
        if question.secret:
            return
        with self._lock:
            self.replay.answers[question.id] = value
            self.replay.save(self.replay_path)


class LeviathanApp(App[int]):
    TITLE = "Leviathan"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("q", "quit_app", "Quit"),
        Binding("v", "verify_again", "Verify model files again"),
        *(
            Binding(str(i), f"phase({i})", f"{name}", show=False)
            for i, name in enumerate(PHASE_TABS, 1)
        ),
        Binding("ctrl+c", "quit_app", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        *,
        config: Config,
        state: State,
        backends: Any,
        only: list[str] | None,
        directory: Path,
        dry_run: bool,
    ) -> None:
        super().__init__()
        self.config = config
        self.state = state
        self.backends = backends
        self.only = only
        self.directory = directory
        self.dry_run = dry_run
        self.steps = all_steps()
        self.answerer = TuiAnswerer(self, state, directory / REPLAY_FILE, config)
        self.engine = Runner(
            self.steps,
            config=config,
            state=state,
            backends=backends,
            answerer=self.answerer,
            emit=self._emit,
        )
        self.exit_code: int | None = None
        self.events_seen: list[str] = []
        self.started_at = time.monotonic()
        self.engine_running = False
        self._quit_deadline = 0.0
        self._questions: list[AskOperator] = []
        self.download_step = ""
        self.sub_title = (
            "DRY RUN — nothing is touched"
            if dry_run
            else f"{config.cluster.node_name} · {config.ssh.host}"
        )

    # --- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            yield StepList(
                [(s.id, s.title, self.state.status(s.id)) for s in self.steps], id="steps"
            )
            with Vertical(id="main"):
                yield Static(self._phase_bar("preflight"), id="phase-bar")
                with ContentSwitcher(initial="pane-preflight", id="phases"):
                    with Pane(id="pane-preflight", classes="pane"):
                        yield Static(
                            "Checks the node, the namespace's Pod Security label, and prints the Talos patch.",
                            id="preflight-info",
                        )
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
                        yield Static("", id="build-elapsed")
                        yield Static("", id="build-hint", classes="hint")
                    with Pane(id="pane-deploy", classes="pane"):
                        yield Static(
                            "Applies the Deployment and Service, follows the rollout, checks health.",
                            id="deploy-info",
                        )
                        yield Static("", id="deploy-pod")
                        yield Static("", id="deploy-why", classes="hint")
                        yield Static("", id="deploy-health")
                yield LogPane(save_dir=self.directory, id="log-pane")
        yield Footer()

    def on_mount(self) -> None:
        # the main screen's widgets, kept: while a modal is up, query_one would search the modal
        self.step_list = self.query_one(StepList)
        self.log_pane = self.query_one(LogPane)
        self.download_panel = self.query_one(DownloadPanel)
        self.phase_switcher = self.query_one(ContentSwitcher)
        self.phase_bar = self.query_one("#phase-bar", Static)
        self.build_elapsed = self.query_one("#build-elapsed", Static)
        self.panels = {
            name: self.query_one(f"#{name}", Static)
            for name in ("build-hint", "deploy-pod", "deploy-why", "deploy-health")
        }
        if self.state.has_progress:
            summary = [
                f"{sid}: {rec.status}"
                for sid, rec in self.state.iter_steps()
                if rec.status != "pending"
            ]
            self.push_screen(ResumeScreen(summary, self.state.updated_at), self._after_resume)
        else:
            self.start_engine()

    def _after_resume(self, choice: str | None) -> None:
        if choice == "start-over":
            self.state.reset()
            for step in self.steps:
                self.step_list.set_status(step.id, "pending")
            self.log_pane.add("leviathan", "started over: the saved session was forgotten")
        self.start_engine()

    # --- engine -----------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self.post_message(EngineEvent(event))  # thread-safe

    def start_engine(self) -> None:
        self.engine_running = True
        self.set_interval(1.0, self._tick)
        self.run_engine()

    @work(thread=True, exit_on_error=False, name="engine")
    def run_engine(self) -> None:
        self.engine.run(self.only)

    def action_verify_again(self) -> None:
        if self.engine_running:
            self.notify("wait until the running steps finish", severity="warning")
            return
        if self.state.status("download.fetch") not in ("done", "skipped"):
            self.notify("nothing to verify yet: the download has not finished", severity="warning")
            return
        from leviathan_tui.phases.download import VerifyAgainStep

        self.engine = Runner(
            [VerifyAgainStep()],
            config=self.config,
            state=self.state,
            backends=self.backends,
            answerer=self.answerer,
            emit=self._emit,
        )
        self.engine_running = True
        self.show_phase("download")
        self.run_engine()

    def _tick(self) -> None:
        if self.state.status("build.image") == "running":
            rec = self.state.steps.get("build.image")
            self.build_elapsed.update(
                f"building… {time.monotonic() - self.started_at:.0f} s since the wizard started"
                if rec
                else ""
            )

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        self.events_seen.append(type(event).__name__ + ":" + event.step_id)
        steps = self.step_list
        log = self.log_pane
        source = event.step_id or "leviathan"
        match event:
            case StepStarted():
                steps.set_status(event.step_id, "running")
                self._show_phase(event.step_id)
                log.add(source, f"started: {event.title}")
            case StepDone():
                steps.set_status(event.step_id, "done")
                log.add(source, f"done: {event.summary}")
            case StepSkipped():
                steps.set_status(event.step_id, "skipped")
                log.add(source, f"skipped, already done: {event.reason}")
            case StepFailed():
                steps.set_status(event.step_id, "failed")
                phase = event.step_id.split(".")[0]
                if phase in ("build", "deploy"):
                    self.panels["build-hint" if phase == "build" else "deploy-why"].update(
                        f"✘ {event.error}" + (f"\n→ {event.hint}" if event.hint else "")
                    )
                log.add(source, f"FAILED: {event.error}", "error")
                if event.hint:
                    log.add(source, f"fix: {event.hint}", "warn")
                self.notify(f"{event.step_id} failed: {event.error}", severity="error", timeout=10)
            case StepBlocked():
                steps.set_status(event.step_id, "blocked")
            case StepInterrupted():
                steps.set_status(event.step_id, "interrupted")
            case LogLine():
                log.add(source, event.line, event.level)
            case PodState():
                self.panels["deploy-pod"].update(
                    f"pod {event.pod}: {event.phase} {event.reason}".strip()
                    + (f" (restarts {event.restarts})" if event.restarts else "")
                    + (f" — {event.message}" if event.message else "")
                )
            case Explanation():
                log.add(source, f"why: {event.cause} — fix: {event.fix}", "warn")
                self.panels["deploy-why"].update(f"why: {event.cause}\nfix: {event.fix}")
            case HealthAttempt():
                self.panels["deploy-health"].update(f"health: {event.text}")
            case FilesPlanned():
                self.download_step = event.step_id
                for name, size in event.files:
                    self.download_panel.file(name, 0, size, "waiting")
            case FileProgress():
                self.download_panel.file(
                    event.file, event.done, event.total, event.note or event.state
                )
            case Progress():
                if event.step_id == self.download_step and event.unit == "B":
                    self.download_panel.overall(event.done, event.total)
            case QuestionAsked():
                steps.set_status(event.step_id, "waiting")
            case Notice():
                log.add(
                    source,
                    f"{event.title}" + (f" — saved to {event.filename}" if event.filename else ""),
                    "warn",
                )
                for line in event.body.splitlines():
                    log.add(source, "  " + line)
            case RunFinished():
                self.engine_running = False
                self.exit_code = event.exit_code
                log.add(
                    "leviathan",
                    f"{event.message} (exit {event.exit_code})",
                    "info" if event.exit_code == 0 else "error",
                )
                if (
                    event.exit_code == 0
                    and self.state.status("deploy.health") in ("done", "skipped")
                    and not isinstance(self.screen, SummaryScreen)
                ):
                    self.push_screen(SummaryScreen(self.summary_lines()))

    @staticmethod
    def _phase_bar(current: str) -> str:
        return "  ".join(
            f"[reverse] {i} {p} [/reverse]" if p == current else f" {i} {p} "
            for i, p in enumerate(PHASE_TABS, 1)
        )

    def show_phase(self, phase: str) -> None:
        self.phase_switcher.current = f"pane-{phase}"
        self.phase_bar.update(self._phase_bar(phase))

    def action_phase(self, number: int) -> None:
        self.show_phase(PHASE_TABS[number - 1])

    def _show_phase(self, step_id: str) -> None:
        phase = self.engine.by_id[step_id].phase if step_id in self.engine.by_id else ""
        if phase in PHASE_TABS:
            self.show_phase(phase)

    def on_ask_operator(self, message: AskOperator) -> None:
        # steps run in parallel and may ask at once: one question on screen at a time
        self._questions.append(message)
        if len(self._questions) == 1:
            self._show_question()

    def _show_question(self) -> None:
        if not self._questions:
            return
        message = self._questions[0]
        question = message.question
        self.step_list.set_status(question.step_id, "waiting")

        def done(value: str | None) -> None:
            message.reply.append(value)
            message.done.set()
            self.step_list.set_status(question.step_id, "running")
            self._questions.pop(0)
            self._show_question()

        if question.screen == "device":
            self.push_screen(DeviceScreen(question), done)
        elif question.screen == "confirm":
            self.push_screen(ConfirmFormatScreen(question), done)
        else:
            self.push_screen(QuestionScreen(question), done)

    def summary_lines(self) -> dict[str, str]:
        from leviathan_tui.phases.deploy import curl_line

        health = self.state.get(Health)
        image, disk = self.state.get(ImageRef), self.state.get(DataDisk)
        base = health.base_url if health else f"http://NODE:{self.config.deploy.node_port}"
        model = health.model if health else self.config.deploy.model_name
        lines = {
            "Endpoint": f"{base}/v1  (OpenAI-style; model {model})",
            "Try it": curl_line(base, model),
            "Image": f"{self.config.image_ref} @ {image.digest if image else '?'}",
            "Model files": f"{self.config.host_path(self.config.gguf_dir)} on {disk.path if disk else '?'}",
            "Replay file": f"{self.directory / REPLAY_FILE}  (leviathan --replay {self.directory / REPLAY_FILE})",
            "Check health later": f"leviathan health --url {base}",
        }
        if health:
            lines["First reply"] = f"{health.reply}  (time to first token {health.ttft_s} s)"
        return lines

    # --- quitting ---------------------------------------------------------------------------

    def on_unmount(self) -> None:
        self.engine.cancel()  # never leave a step waiting for an answer no screen will give

    def action_quit_app(self) -> None:
        if self.engine_running:
            self.engine.cancel()
            self.log_pane.add(
                "leviathan",
                "stopping: the running steps are told to stop; the session is saved",
                "warn",
            )
            self._quit_deadline = time.monotonic() + self.engine.stop_grace_s
            self.set_timer(0.1, self._wait_and_exit)
        else:
            self.exit(self.exit_code if self.exit_code is not None else 0)

    def _wait_and_exit(self) -> None:
        if self.engine_running and time.monotonic() < self._quit_deadline:
            self.set_timer(0.2, self._wait_and_exit)
            return
        self.state.flush()
        self.exit(EXIT_INTERRUPTED)


def run_app(
    *,
    config: Config,
    state: State,
    backends: Any,
    only: list[str] | None,
    directory: Path,
    dry_run: bool,
) -> int:
    app = LeviathanApp(
        config=config,
        state=state,
        backends=backends,
        only=only,
        directory=directory,
        dry_run=dry_run,
    )
    code = app.run()
    state.flush()
    return int(code if code is not None else (app.exit_code or 0))
