"""Errors that map to the CLI's exit codes."""

from __future__ import annotations

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_UNANSWERED = 3
EXIT_INTERRUPTED = 130


class LeviathanError(Exception):
    """An error the operator can act on: what failed, why, what to do next."""

    exit_code = EXIT_STEP_FAILED

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class UsageError(LeviathanError):
    """Bad command line, config file, replay file or session lock (exit 2)."""

    exit_code = EXIT_USAGE


class UnansweredQuestion(LeviathanError):
    """A question the replay file does not answer (exit 3)."""

    exit_code = EXIT_UNANSWERED


class RefusedAnswer(LeviathanError):
    """An answer that no longer fits the world (exit 3)."""

    exit_code = EXIT_UNANSWERED


class StepError(LeviathanError):
    """A step failed; dependants do not run (exit 1)."""


class Cancelled(Exception):
    """The operator interrupted the run."""


class GoBack(Cancelled):
    """The operator went back from a question (Esc): the step re-asks the earlier question, or
    stops like an interruption when there is none."""
