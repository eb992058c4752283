"""The interactive front-end (Textual).

The plan comes first (read-only); Start runs the steps in a worker thread started by the App.
Their events arrive as messages and are dispatched on their types; questions are answered on
screens and recorded in replay.yaml. Esc goes back (confirmation -> disk list -> plan); only Quit
ends the session, and it says what keeps running."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.driver import Driver
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, OptionList, Static

from leviathan_tui.errors import EXIT_INTERRUPTED, Cancelled, GoBack, LeviathanError
from leviathan_tui.phases import PHASES, all_steps
from leviathan_tui.screens import BACK, LATER
from leviathan_tui.screens.plan import PlanScreen
from leviathan_tui.screens.resume import ResumeScreen
from leviathan_tui.state import REPLAY_FILE, State
from leviathan_tui.units import human_size

if TYPE_CHECKING:  # imported after the first dialog has painted
    from leviathan_tui.config import Config
    from leviathan_tui.events import Event, Question, RunFinished
    from leviathan_tui.runner import Runner, Step
    from leviathan_tui.widgets.download_panel import DownloadPanel
    from leviathan_tui.widgets.log_pane import LogPane
    from leviathan_tui.widgets.step_list import StepList


class EngineEvent(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # a newer progress update for the same item replaces an older one still queued
        from leviathan_tui.events import FileProgress, Progress

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
        from leviathan_tui.replay import ReplayFile

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
            if value == BACK:
                raise GoBack()
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
    # the main screen's widgets, kept: while a modal is up, query_one would search the modal
    step_list: StepList
    log_pane: LogPane
    download_panel: DownloadPanel
    phase_switcher: ContentSwitcher
    phase_bar: Static
    panels: dict[str, Static]
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("q", "quit_app", "Quit"),
        Binding("ctrl+q", "quit_app", "Quit", show=False, priority=True),
        Binding("ctrl+c", "quit_app", "Quit", show=False, priority=True),
        Binding("a", "answer_pending", "Answer the waiting question"),
        Binding("v", "verify_again", "Verify files"),
        *(
            Binding(key, f"log('{action}')", description, show=False)
            for key, action, description in (
                ("slash", "search", "Search the log (step ids and text)"),
                ("e", "toggle_errors", "Errors only"),
                ("w", "toggle_wrap", "Wrap long lines"),
                ("f", "toggle_follow", "Follow/pause the log"),
                ("x", "all_steps", "All steps' logs"),
                ("s", "save", "Save the log"),
            )
        ),
        Binding("question_mark", "toggle_keys", "Keys"),
        *(
            Binding(str(i), f"phase({i})", f"{name}", show=False)
            for i, name in enumerate(PHASES, 1)
        ),
    ]

    def get_driver_class(self) -> type[Driver]:
        from leviathan_tui.widgets.terminal_driver import survives_hangup

        return survives_hangup(super().get_driver_class())

    def __init__(
        self,
        *,
        state: State,
        only: list[str] | None,
        directory: Path,
        dry_run: bool,
        resume_command: str = "leviathan",
        config: Config | None = None,
        backends: Any = None,
        load: Callable[[], tuple[Config, Any]] | None = None,
    ) -> None:
        """Either `config` and `backends`, or `load`, which returns them and is called once the
        first dialog has painted (validating the configuration takes a while)."""
        super().__init__()
        self.state = state
        self.only = only
        self.directory = directory
        self.dry_run = dry_run
        self.resume_command = resume_command
        self.configured = False
        self.load_error: LeviathanError | None = None  # raised again once the TUI has closed
        self._load = load
        self.engine: Runner | None = None  # the run in progress, or the last one
        self.exit_code: int | None = None
        self.events_seen: list[str] = []
        self.started_at = time.monotonic()
        self.engine_running = False
        self.going_back = False
        self.verifying = False  # the run in progress is "verify again"
        self.stopped: list[str] | None = None  # what "Stop it and quit" stopped
        self.quitting = ""
        self.phase_pinned = False
        self._questions: list[AskOperator] = []
        self._deferred: list[AskOperator] = []  # put aside with Esc; `a` brings them back
        self._showing_question = False
        self._last_step = ""
        self._fallback_offered = False
        self.notices: dict[str, str] = {}
        self.plan_lines: list[Any] = []
        self.download_step = ""
        self.main_ready = False  # the main layout is mounted after the first dialog paints
        self._mounting_main = False
        self._after_main: list[Callable[[], None]] = []
        self.sub_title = "DRY RUN — nothing real is touched" if dry_run else ""
        if config is not None:
            self._configure(config, backends)
        elif load is None:
            raise ValueError("LeviathanApp needs config and backends, or load")

    def _configure(self, config: Config, backends: Any) -> None:
        self.config = config
        self.backends = backends
        self.answerer = TuiAnswerer(self, self.state, self.directory / REPLAY_FILE, config)
        if not self.dry_run:
            self.sub_title = f"{config.cluster.node_name} · {config.ssh.host}"
        self.configured = True

    @cached_property
    def steps(self) -> list[Step]:
        return all_steps()  # after the first paint: the steps' modules take a while to import

    @cached_property
    def phase_of(self) -> dict[str, str]:
        return {s.id: s.phase for s in self.steps}

    def _runner(self, steps: list[Step]) -> Runner:
        from leviathan_tui.runner import Runner

        return Runner(
            steps,
            config=self.config,
            state=self.state,
            backends=self.backends,
            answerer=self.answerer,
            emit=self._emit,
        )

    # --- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield from ()  # the main layout: see _mount_main

    def _shown_status(self, step_id: str) -> str:
        status = self.state.status(step_id)
        return "interrupted" if status == "running" else status  # a killed run left it so

    def on_mount(self) -> None:
        self.set_interval(0.25, self._check_signals)
        self._open_first_dialog()
        self.call_after_refresh(self._mount_main)  # once the first dialog has painted

    async def _mount_main(self) -> None:
        if self._mounting_main:
            return
        self._mounting_main = True
        if not self.configured:
            assert self._load is not None
            try:
                self._configure(*self._load())
            except LeviathanError as err:  # a bad configuration: said once the TUI has closed
                self.load_error = err
                self.exit(err.exit_code)
                return
        from leviathan_tui.widgets.download_panel import DownloadPanel
        from leviathan_tui.widgets.log_pane import LogPane
        from leviathan_tui.widgets.main_view import PANEL_IDS, MainView
        from leviathan_tui.widgets.step_list import StepList

        view = MainView(
            [(s.id, s.title, self._shown_status(s.id)) for s in self.steps],
            self.directory,
            self._preflight_text() or "The plan appears here once read.",
        )
        await self.screen_stack[0].mount_all([Header(), view, Footer()])
        try:
            self.step_list = view.query_one(StepList)
            self.log_pane = view.query_one(LogPane)
            self.download_panel = view.query_one(DownloadPanel)
            self.phase_switcher = view.query_one(ContentSwitcher)
            self.phase_bar = view.query_one("#phase-bar", Static)
            self.panels = {name: view.query_one(f"#{name}", Static) for name in PANEL_IDS}
        except NoMatches:  # the app is closing and its layout was not composed
            return
        for line in self.backends.actions[:1]:
            self.log_pane.add("leviathan", line)
        if self.screen is self.screen_stack[0]:  # no dialog over it: focus as a resume would
            self.step_list.focus()
        else:
            self._lay_out_under_dialog(tries=50)
        self.main_ready = True
        self.refresh_bindings()
        while self._after_main:
            self._after_main.pop(0)()

    def _lay_out_under_dialog(self, tries: int) -> None:
        """The layout mounted under a dialog is drawn as its background only once it is laid out,
        and Textual lays out a covered screen only when asked after its widgets are all in."""
        if self.step_list.region or tries <= 0 or not self.is_running:
            return
        self.screen_stack[0].refresh(layout=True)
        self.set_timer(0.1, partial(self._lay_out_under_dialog, tries - 1))

    def _when_main(self, callback: Callable[..., None]) -> Callable[..., None]:
        """`callback`, run at once if the main layout is mounted, else right after it is."""

        def run(*args: Any) -> None:
            if self.main_ready:
                callback(*args)
            else:
                self._after_main.append(partial(callback, *args))
                # the first dialog may close before it painted, and its after-paint call with it
                self.call_later(self._mount_main)

        return run

    def _open_first_dialog(self) -> None:
        from leviathan_tui.records import DataDisk

        if self.state.has_progress:
            # one line per status, the steps in their order: the dialog fits 80x24 whole
            shown = {"running": "interrupted (goes on)", "pending": "to do"}
            by_status: dict[str, list[str]] = {}
            for step in self.steps:
                status = self.state.status(step.id)
                by_status.setdefault(shown.get(status, status), []).append(step.id)
            summary = [f"{status}: {', '.join(ids)}" for status, ids in by_status.items()]
            if set(by_status) <= {"done", "skipped"}:
                summary.insert(0, "Every step is done; Resume checks each against the world.\n")
            disk = self.state.get(DataDisk)
            if disk is not None:
                summary.append(
                    f"\nThe data disk {disk.path} (serial {disk.serial or '-'}) is recorded: it is "
                    "checked and mounted "
                    "again, never formatted again (a different disk there is refused)."
                )
            self.push_screen(
                ResumeScreen(summary, self.state.updated_at), self._when_main(self._after_resume)
            )
        else:
            self.show_plan()

    def _after_resume(self, choice: str | None) -> None:
        if choice == "quit":
            self._leave_before_start()
            return
        if choice == "start-over":
            self.state.reset()
            for step in self.steps:
                self.step_list.set_status(step.id, "pending")
            self.log_pane.add("leviathan", "started over: the saved session was forgotten")
        self.show_plan()

    # --- the plan ---------------------------------------------------------------------------

    def show_plan(self) -> None:
        done = (
            sum(self.state.status(step.id) in ("done", "skipped") for step in self.steps)
            if self.state.has_progress
            else 0
        )
        title = (
            f"Plan — resuming: {done} of {len(self.steps)} steps done; done steps are checked, "
            "never redone."
            if done
            else "Plan — nothing has changed yet."
        ) + (" DRY RUN: a simulated node, Hub, build host and registry." if self.dry_run else "")
        self.plan_screen = PlanScreen(title)
        self.push_screen(self.plan_screen, self._when_main(self._after_plan))
        if self.plan_lines:  # shown again (Back, Start over): the last read at once, then anew
            for line in self.plan_lines:
                self.plan_screen.add_line(line)
            self.plan_screen.finished()
            self.plan_screen.rereading = True
            self.read_plan(self.plan_screen)
        elif self.configured:
            self.read_plan(self.plan_screen)
        else:  # once the configuration is read
            self._after_main.append(lambda: self.read_plan(self.plan_screen))

    @work(thread=True, exit_on_error=False, name="plan")
    def read_plan(self, screen: PlanScreen) -> None:
        """Read the plan into `screen`: line by line the first time; a new read replaces the
        lines shown at once when it is complete."""
        from leviathan_tui.phases.plan_line import PlanLine
        from leviathan_tui.phases.stop import still_running
        from leviathan_tui.phases.survey import survey
        from leviathan_tui.records import DataDisk, ModelFiles

        def plan() -> Iterator[PlanLine]:
            state = self.state
            yield from survey(
                self.config, self.backends, self.dry_run, state.get(DataDisk), state.get(ModelFiles)
            )
            for item in still_running(state, self.config, self.dry_run):
                yield PlanLine(
                    "left running", f"{item} may still be running; Start reattaches to it"
                )

        first = not screen.rereading
        lines: list[PlanLine] = []

        def take(line: PlanLine) -> None:
            lines.append(line)
            if first:
                self.call_from_thread(screen.add_line, line)

        try:
            for line in plan():
                take(line)
        except Exception as err:  # noqa: BLE001 - the plan says so; Start stays possible
            take(PlanLine("plan", f"could not be read completely: {err}", "error"))
        self.call_from_thread(self._plan_read, screen, lines, first)

    def _preflight_text(self) -> str:
        return "\n".join(f"{line.topic}: {line.text}" for line in self.plan_lines)

    def _plan_read(self, screen: PlanScreen, lines: list[Any], first: bool) -> None:
        if screen is not self.plan_screen:
            return  # the plan was left and shown again meanwhile: that read is the one that counts
        self.plan_lines = lines
        if first:
            screen.finished()
        else:
            screen.reread(lines)
        if self.main_ready:  # else it is mounted with this text
            self.panels["preflight-info"].update(self._preflight_text())

    def _after_plan(self, choice: str | None) -> None:
        if choice == "start":
            self.start_engine()
            return
        self._leave_before_start()

    def _leave_before_start(self) -> None:
        """Quit from the plan or the resume dialog: a run stopped midway is not done (130).
        What an earlier run left going on the build host or the node is named first, with the
        offer to stop it, as a quit mid-run does."""
        from leviathan_tui.phases.stop import still_running
        from leviathan_tui.screens.quit import QuitScreen

        self.state.flush()
        running = still_running(self.state, self.config, self.dry_run) if self.configured else []
        if running:
            items = [f"{item} may still be running: it goes on unless stopped" for item in running]

            def chosen(choice: str | None) -> None:
                if choice in ("leave", "stop"):
                    self.quitting = choice
                    self._finish_quit()
                else:
                    self.show_plan()

            self.push_screen(QuitScreen(items, self.resume_command), chosen)
            return
        unfinished = any(status == "interrupted" for status in self.step_list.statuses.values())
        self.exit(EXIT_INTERRUPTED if unfinished else 0)

    # --- engine -----------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self.post_message(EngineEvent(event))  # thread-safe

    def start_engine(self) -> None:
        self.going_back = False
        self.engine = self._runner(self.steps)
        self.engine_running = True
        self.refresh_bindings()
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

        self.engine = self._runner([VerifyAgainStep()])
        self.verifying = True  # its end is the check's result, not the bring-up's summary
        self.engine_running = True
        self.refresh_bindings()
        self.show_phase("download")
        self.run_engine()

    def on_engine_event(self, message: EngineEvent) -> None:
        from leviathan_tui import events as ev  # after the first paint: see _mount_main

        event = message.event
        panel = getattr(self, "download_panel", None)
        if not self.is_running or panel is None or not panel.is_mounted:
            return  # the app is closing: late events have nowhere to go
        self.events_seen.append(type(event).__name__ + ":" + event.step_id)
        steps = self.step_list
        log = self.log_pane
        source = event.step_id or "leviathan"
        phase = self.phase_of.get(event.step_id, "")
        match event:
            case ev.StepStarted():
                steps.set_status(event.step_id, "running")
                if not self.phase_pinned and not self._showing_question:
                    self.show_phase(phase)  # behind a question stays the asking step's pane
                log.add(source, f"started: {event.title}")
            case ev.StepDone():
                steps.set_status(event.step_id, "done")
                log.add(source, f"done: {event.summary}")
                self._refresh_records()
            case ev.StepSkipped():
                steps.set_status(event.step_id, "skipped")
                log.add(source, f"skipped, already done: {event.reason}")
                self._refresh_records()
            case ev.StepFailed():
                steps.set_status(event.step_id, "failed")
                text = f"✘ {event.error}" + (f"\n→ {event.hint}" if event.hint else "")
                if phase == "build":
                    self.panels["build-hint"].update(text)
                elif phase == "deploy":
                    self.panels["deploy-why"].update(text)
                elif phase == "download":
                    self.download_panel.failed(event.error)
                elif phase == "storage":
                    self.panels["storage-info"].update(text)
                log.add(source, f"FAILED: {event.error}", "error")
                if event.hint:
                    log.add(source, f"fix: {event.hint}", "warn")
                self.notify(f"{event.step_id} failed: {event.error}", severity="error", timeout=10)
            case ev.StepBlocked():
                steps.set_status(event.step_id, "blocked")
            case ev.StepInterrupted():
                steps.set_status(event.step_id, "interrupted")
            case ev.LogLine():
                log.add(source, event.line, event.level)
            case ev.PodState():
                self.panels["deploy-pod"].update(
                    f"pod {event.pod}: {event.phase} {event.reason}".strip()
                    + (f" (restarts {event.restarts})" if event.restarts else "")
                    + (f" — {event.message}" if event.message else "")
                )
            case ev.Explanation():
                log.add(source, f"why: {event.cause} — fix: {event.fix}", "warn")
                target = "build-hint" if phase == "build" else "deploy-why"
                self.panels[target].update(f"why: {event.cause}\nfix: {event.fix}")
            case ev.HealthAttempt():
                self.panels["deploy-health"].update(
                    f"health: {event.text} ({event.elapsed_s:.0f} of {event.timeout_s:.0f} s)"
                )
            case ev.FilesPlanned():
                self.download_step = event.step_id
                self.download_panel.plan(event.files)
            case ev.FileProgress():
                self.download_panel.file(
                    event.file, event.done, event.total, event.state, event.note
                )
            case ev.Progress():
                if event.step_id == self.download_step and event.unit == "B":
                    self.download_panel.overall(event.done, event.total)
                elif phase == "build":
                    total = f" of {event.total:.0f}" if event.total else ""
                    self.panels["build-progress"].update(
                        f"{event.unit} {event.done:.0f}{total}: {event.note}"
                    )
            case ev.QuestionAsked():
                steps.set_status(event.step_id, "waiting")
            case ev.Notice():
                self.notices[event.title] = event.body
                log.add(
                    source,
                    f"{event.title}" + (f" — saved to {event.filename}" if event.filename else ""),
                    "warn",
                )
                for line in event.body.splitlines():
                    log.add(source, "  " + line)
            case ev.RunFinished():
                self._run_finished(event)
        status_changes = (ev.StepStarted, ev.StepDone, ev.StepSkipped, ev.StepFailed)
        if isinstance(event, status_changes) and self.engine_running:
            self._refresh_quit_dialog()

    def _refresh_quit_dialog(self) -> None:
        from leviathan_tui.screens.quit import QuitScreen

        if isinstance(self.screen, QuitScreen):
            self.screen.show_running(self._goes_on_items())

    def _run_finished(self, event: RunFinished) -> None:
        from leviathan_tui.screens.quit import QuitScreen
        from leviathan_tui.screens.summary import SummaryScreen

        if isinstance(self.screen, QuitScreen) and not self.quitting:
            self.pop_screen()  # what it said keeps running has ended
            self.notify("the run ended while the quit dialog was open: q now quits at once")

        self.engine_running = False
        self._questions = []
        self._deferred.clear()  # the steps that asked have stopped
        self.refresh_bindings()
        if self._showing_question and self.screen is not self.screen_stack[0]:
            self.pop_screen()  # a question its run no longer waits for
            self._showing_question = False
        self.exit_code = event.exit_code
        for step_id, status in list(self.step_list.statuses.items()):
            if status in ("running", "waiting"):
                self.step_list.set_status(step_id, "interrupted")
        verified, self.verifying = self.verifying, False
        if self.going_back and not self.quitting:
            self.log_pane.add("leviathan", "paused: back to the plan; Start goes on from here")
        elif verified:
            ok = event.exit_code == 0
            self.log_pane.add(
                "leviathan",
                "verify again: every model file matches its sha256"
                if ok
                else f"verify again: {event.message} (exit {event.exit_code})",
                "info" if ok else "error",
            )
            self.notify(
                "the model files verified" if ok else "the verification failed",
                severity="information" if ok else "error",
            )
        else:
            self.log_pane.add(
                "leviathan",
                f"{event.message} (exit {event.exit_code})",
                "info" if event.exit_code == 0 else "error",
            )
        if self.quitting:
            self._finish_quit()
            return
        if self.going_back:
            self.show_plan()
            return
        if verified:
            return  # its result is logged above: no fallback offer, no summary
        if event.exit_code != 0 and self._offer_fallback():
            return
        if (
            event.exit_code == 0
            and self.state.status("deploy.health") in ("done", "skipped")
            and not isinstance(self.screen, SummaryScreen)
        ):
            self.push_screen(SummaryScreen(self.summary_lines()))

    def _offer_fallback(self) -> bool:
        """After a failed KTransformers build: offer llama.cpp's upstream image instead."""
        from leviathan_tui.phases.deploy import offer_fallback
        from leviathan_tui.runner import Runner
        from leviathan_tui.screens.question import QuestionScreen

        fallback = offer_fallback(self.config, self.state)
        if fallback is None or self._fallback_offered:
            return False
        self._fallback_offered = True  # asked once per session, not again after its own run
        question = fallback.question()
        question.expected = fallback.config.deploy.engine
        question.step_id = "deploy.apply"

        def done(value: str | None) -> None:
            if value != fallback.config.deploy.engine:
                self.log_pane.add("leviathan", f"not deploying llama.cpp: {fallback.hint}", "warn")
                return
            self.answerer._record(question, value)  # a replay of this session does the same
            self.log_pane.add(
                "leviathan", f"deploying llama.cpp instead: {fallback.config.deploy.llamacpp_image}"
            )
            self.engine = Runner(
                self.steps,
                config=fallback.config,
                state=self.state,
                backends=self.backends,
                answerer=self.answerer,
                emit=self._emit,
            )
            self.engine_running = True
            self.refresh_bindings()
            self._fallback_only = list(fallback.only)
            self.run_fallback()

        self.push_screen(QuestionScreen(question), done)
        return True

    @work(thread=True, exit_on_error=False, name="fallback")
    def run_fallback(self) -> None:
        self.engine.run(self._fallback_only)

    def _refresh_records(self) -> None:
        from leviathan_tui.records import DataDisk, Health

        disk = self.state.get(DataDisk)
        if disk is not None:
            self.panels["storage-info"].update(
                f"data disk {disk.identity()}\n{human_size(disk.free_bytes)} free at "
                f"{self.config.storage.host_mount}"
                + (" (formatted in this session)" if disk.formatted else "")
            )
        health = self.state.get(Health)
        if health is not None:
            self.panels["deploy-health"].update(
                f"healthy: {health.base_url} answered “{health.reply}” "
                f"(first token {health.ttft_s} s)"
            )

    # --- phases and steps -------------------------------------------------------------------

    def show_phase(self, phase: str) -> None:
        from leviathan_tui.widgets.main_view import phase_bar

        if phase in PHASES:
            self.phase_switcher.current = f"pane-{phase}"
            self.phase_bar.update(phase_bar(phase))

    def action_phase(self, number: int) -> None:
        self.phase_pinned = True
        self.show_phase(PHASES[number - 1])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        step_id = str(event.option.id)
        self.phase_pinned = True
        self.show_phase(self.phase_of.get(step_id, ""))
        self.log_pane.show_step(step_id)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # the main screen's actions are not offered over the plan or a dialog
        if action in ("answer_pending", "verify_again", "phase", "log") and (
            self.screen is not self.screen_stack[0] or not self.main_ready
        ):
            return False
        if action == "answer_pending":  # offered while a question waits, put aside or queued
            return bool(self._deferred or self._questions)
        if action == "verify_again":  # offered once the steps have stopped
            return not self.engine_running
        return True

    def action_log(self, name: str) -> None:
        """The log's keys, from anywhere on the main screen (the log pane need not have focus)."""
        if not self.main_ready:
            return
        getattr(self.log_pane, f"action_{name}")()

    def action_toggle_keys(self) -> None:
        if self.screen.query("KeyPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """Screenshots go where the saved logs go, not to a Downloads folder a server may lack."""
        directory = Path(path) if path else self.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self.notify(
                f"cannot create {directory}: {err.strerror}", title="Screenshot", severity="error"
            )
            return None
        return super().deliver_screenshot(filename, str(directory), time_format)

    def get_system_commands(self, screen: Screen[Any]) -> Iterator[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title != "Quit":  # Textual's own quits at once, past the quit dialog
                yield command
        yield SystemCommand(
            "Quit", "the same as q: says what keeps running first", self.action_quit_app
        )
        yield SystemCommand(
            "Verify the model files again",
            "hash every file on the disk again",
            self._when_main(self.action_verify_again),
        )
        yield SystemCommand(
            "Render the manifests",
            "write every manifest and the Dockerfile to the state directory",
            self._when_main(self.render_manifests),
        )
        yield SystemCommand(
            "Save the log", "with timestamps and step ids", partial(self.action_log, "save")
        )
        yield SystemCommand(
            "Show the Talos patch",
            "the machine-config patch for this node",
            self._when_main(self.show_talos_patch),
        )
        yield SystemCommand(
            "Check health now",
            "liveness and one real completion",
            self._when_main(self.check_health_now),
        )
        if self.main_ready and self.state.status("deploy.health") in ("done", "skipped"):
            yield SystemCommand(
                "Show the summary",
                "the endpoint, the curl command, the Talos patch",
                self.show_summary,
            )

    def show_summary(self) -> None:
        from leviathan_tui.screens.summary import SummaryScreen

        if not isinstance(self.screen, SummaryScreen):
            self.push_screen(SummaryScreen(self.summary_lines()))

    def render_manifests(self) -> None:
        from leviathan_tui.records import ImageRef
        from leviathan_tui.render.bundle import write_all

        image = self.state.get(ImageRef)
        out = self.directory / "rendered"
        try:
            write_all(self.config, out, digest=image.digest if image else None)
        except LeviathanError as err:  # shown, never a crash
            self.notify(f"cannot render: {err}", severity="error")
            return
        self.notify(f"rendered to {out}")

    def show_talos_patch(self) -> None:
        from leviathan_tui.phases.summary import talos_patch

        why, patch = talos_patch(self.config, self.state)
        self.log_pane.action_all_steps()  # a step filter or a search would hide it
        self.log_pane.add("leviathan", f"Talos patch: {why}", "warn")
        for line in patch.splitlines():
            self.log_pane.add("leviathan", "  " + line)
        self.notify("the Talos patch is in the log pane (every step's lines shown)")

    @work(thread=True, exit_on_error=False, name="health-now")
    def check_health_now(self) -> None:
        from leviathan_tui.health import check_health
        from leviathan_tui.inference import engine_spec
        from leviathan_tui.phases.summary import health_base_url

        base = health_base_url(self.config, self.state)
        deployed = self.state.status("deploy.apply") in ("done", "skipped")
        if not base or not (deployed or self.config.deploy.health_url):
            self.call_from_thread(
                self.notify,
                "nothing is deployed yet: the check runs after deploy",
                severity="warning",
            )
            return
        self.call_from_thread(self.notify, f"checking {base} (up to 60 s)…")
        try:
            result = check_health(
                self.backends.http,
                base,
                paths=engine_spec(self.config).health_paths,
                timeout_s=60.0,
                model_name=self.config.deploy.model_name,
                on_attempt=lambda text: None,
                cancelled=threading.Event(),
            )
        except LeviathanError as err:
            self.call_from_thread(self.notify, f"UNHEALTHY: {err.message}", severity="error")
            self.call_from_thread(
                self.log_pane.add, "leviathan", f"health check now: UNHEALTHY: {err}", "error"
            )
            return
        self.call_from_thread(self.notify, f"HEALTHY: {result.reply}")
        self.call_from_thread(
            self.log_pane.add, "leviathan", f"health check now: HEALTHY at {base}: {result.reply}"
        )

    # --- questions --------------------------------------------------------------------------

    def on_ask_operator(self, message: AskOperator) -> None:
        # steps run in parallel and may ask at once: one question on screen at a time
        self._questions.append(message)
        self.refresh_bindings()  # `a` is offered while a question waits
        if not self._showing_question:
            self._show_question()

    def action_answer_pending(self) -> None:
        if not self._deferred and not self._questions:
            self.notify("no question is waiting")
            return
        self._questions[:0] = self._deferred
        self._deferred.clear()
        if not self._showing_question:
            self._show_question()

    def _next_question(self, until: float) -> None:
        """After an answer, give the same step a moment to ask its next question (a disk choice,
        then its confirmation) before another step's question takes the screen."""
        same_step = any(m.question.step_id == self._last_step for m in self._questions)
        last_stopped = self.step_list.status(self._last_step) not in ("running", "waiting")
        if same_step or last_stopped or time.monotonic() >= until or not self.engine_running:
            self._show_question()
        else:
            self.set_timer(0.1, lambda: self._next_question(until))

    def _show_question(self) -> None:
        from leviathan_tui.screens.confirm import ConfirmFormatScreen
        from leviathan_tui.screens.device import DeviceScreen
        from leviathan_tui.screens.question import QuestionScreen

        if not self._questions or self._showing_question:
            return
        if self.screen is not self.screen_stack[0]:  # the quit dialog, the summary: wait
            self.set_timer(0.3, self._show_question)
            return
        # the step just answered goes on first (a disk choice, then its confirmation)
        message = next(
            (m for m in self._questions if m.question.step_id == self._last_step),
            self._questions[0],
        )
        question = message.question
        self._showing_question = True
        self.step_list.set_status(question.step_id, "waiting")
        if not self.phase_pinned:  # the pane behind the dialog is the asking step's
            self.show_phase(self.phase_of.get(question.step_id, ""))

        def done(value: str | None) -> None:
            self._showing_question = False
            if message in self._questions:  # not when its run ended meanwhile
                self._questions.remove(message)
            self.refresh_bindings()
            if value == LATER:
                self._deferred.append(message)
                self.notify(f"{question.step_id} waits for your answer: press a when ready")
                self._show_question()
                return
            if value == BACK and question.screen == "device":
                self.going_back = True  # from the disk list back to the plan
                self._cancel_run()
                value = None
            message.reply.append(value)
            message.done.set()
            if not self.going_back:
                self.step_list.set_status(question.step_id, "running")
            self._last_step = question.step_id
            # after Back the same step asks again for certain: wait for it; else briefly
            self._next_question(time.monotonic() + (15.0 if value == BACK else 1.5))

        if question.screen == "device":
            self.push_screen(DeviceScreen(question), done)
        elif question.screen == "confirm":
            self.push_screen(ConfirmFormatScreen(question), done)
        else:
            self.push_screen(QuestionScreen(question), done)

    # --- summary ----------------------------------------------------------------------------

    def summary_lines(self) -> dict[str, str]:
        from leviathan_tui.phases.summary import summary_lines

        return summary_lines(self.config, self.state, self.directory, self.resume_command)

    # --- quitting ---------------------------------------------------------------------------

    def _cancel_run(self) -> None:
        if self.engine is not None:
            self.engine.cancel()

    def on_unmount(self) -> None:
        self._cancel_run()  # never leave a step waiting for an answer no screen will give

    def action_quit_app(self) -> None:
        from leviathan_tui.screens.quit import QuitScreen

        if isinstance(self.screen, QuitScreen) and not self.quitting:
            self.screen.dismiss("leave")  # asked twice: quit, as the dialog's "Quit, let it run"
            return
        if self.quitting:
            return
        if not self.engine_running:
            self.exit(self.exit_code if self.exit_code is not None else 0)
            return
        self.push_screen(QuitScreen(self._goes_on_items(), self.resume_command), self._after_quit)

    def _goes_on_items(self) -> list[str]:
        from leviathan_tui.phases.stop import goes_on_after

        statuses = self.step_list.statuses.items()
        return goes_on_after(
            [s for s, st in statuses if st == "running"],
            [s for s, st in statuses if st == "waiting"],
            self.config,
            self.dry_run,
        )

    def _check_signals(self) -> None:
        from leviathan_tui import signals

        if signals.received() and not self.quitting:
            self.quitting = "leave"
            if self.engine_running:
                self._cancel_run()
            else:
                self.exit(EXIT_INTERRUPTED)

    def _after_quit(self, choice: str | None) -> None:
        if choice in ("leave", "stop") and not self.engine_running:
            self.quitting = choice  # the run ended while the dialog was up: nothing to wait for
            self._finish_quit()
        elif choice in ("leave", "stop"):
            self.quitting = choice
            self._cancel_run()
            self.log_pane.add(
                "leviathan",
                "stopping: the running steps are told to stop; the session is saved",
                "warn",
            )

    def _finish_quit(self) -> None:
        if self.quitting == "stop":
            self.stop_and_exit()
            return
        self.state.flush()
        self.exit(EXIT_INTERRUPTED)

    @work(thread=True, exit_on_error=False, name="stop")
    def stop_and_exit(self) -> None:
        from leviathan_tui.phases.stop import stop_work

        self.stopped = stop_work(self.config, self.backends, self.state, lambda line: None)
        self.call_from_thread(self.exit, EXIT_INTERRUPTED)


def run_app(
    *,
    load: Callable[[], tuple[Config, Any]],
    state: State,
    only: list[str] | None,
    directory: Path,
    dry_run: bool,
    resume_command: str = "leviathan",
) -> tuple[int, list[str] | None]:
    """The exit code, and what "Stop it and quit" stopped (None when it was not chosen).

    `load` reads the configuration and builds the backends once the first screen has painted;
    what it raises is raised again here, after the TUI has closed."""
    app = LeviathanApp(
        load=load,
        state=state,
        only=only,
        directory=directory,
        dry_run=dry_run,
        resume_command=resume_command,
    )
    from leviathan_tui import signals

    signals.counting()  # the app polls: a SIGTERM stops the steps and leaves, exit 130
    code = app.run()
    state.flush()
    if app.load_error is not None:
        raise app.load_error
    return int(code if code is not None else (app.exit_code or 0)), app.stopped
