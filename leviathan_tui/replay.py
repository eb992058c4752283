"""Replay files: the config and answers of a bring-up, replayed headless.

```yaml
version: 1
config: {...}       # optional, same schema as --config
answers:
  storage.device: /dev/nvme0n1
```

Strict: an unknown answer id, a secret, or an answer of the wrong type stops the run before
anything happens (exit 2), naming the file and the place.
"""

from __future__ import annotations

import difflib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from leviathan_tui.bounded_input import load_yaml_file
from leviathan_tui.errors import RefusedAnswer, UnansweredQuestion, UsageError
from leviathan_tui.events import Question
from leviathan_tui.questions import QUESTIONS, SECRET_SOURCES
from leviathan_tui.state import atomic_write

REPLAY_VERSION = 1


def _answer_problem(key: Any, value: Any) -> tuple[str, str] | None:
    """What is wrong with one answer, and its fix ("" for none); None when it is good."""
    if not isinstance(key, str):
        return f"answers: question ids are text, got {key!r}", ""
    spec = QUESTIONS.get(key)
    if spec is None:
        near = difflib.get_close_matches(key, QUESTIONS, n=1)
        hint = f"did you mean {near[0]}?" if near else f"question ids are: {', '.join(QUESTIONS)}"
        return f"answers.{key}: no such question", hint
    if spec.secret:
        return f"answers.{key}: a secret does not belong in a replay file", SECRET_SOURCES
    if spec.value == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"answers.{key}: must be a whole number, got {value!r}", ""
        return None
    if isinstance(value, bool) or value is None or not isinstance(value, str | int):
        return f"answers.{key}: must be text, got {type(value).__name__} {value!r}", ""
    if spec.shape and not re.fullmatch(spec.shape, str(value)):
        return f"answers.{key}: must be {spec.shape_hint}, got {value!r}", ""
    return None


def _check_answers(path: Path, answers: dict[Any, Any]) -> None:
    """Every wrong answer at once, so one edit of the file fixes them all."""
    problems = [p for p in (_answer_problem(k, v) for k, v in answers.items()) if p]
    if len(problems) == 1:
        message, hint = problems[0]
        raise UsageError(f"{path}: {message}", hint)
    if problems:
        lines = [f"{path}: {len(problems)} answers are wrong"]
        for message, hint in problems:
            lines.append(f"  {message}" + (f" ({hint})" if hint else ""))
        raise UsageError("\n".join(lines))


@dataclass
class ReplayFile:
    path: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ReplayFile:
        data = load_yaml_file(path, "replay file")
        if data is None:
            raise UsageError(
                f"{path}: the replay file is empty",
                "a replay file holds `version: 1` and `answers:`; the wizard writes one in "
                "<state-dir>/replay.yaml",
            )
        if not isinstance(data, dict):
            raise UsageError(
                f"{path}: a replay file is a mapping with 'version' and 'answers', got {type(data).__name__}"
            )
        unknown = set(map(str, data)) - {"version", "config", "answers"}
        if unknown:
            raise UsageError(
                f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a replay file has version, config, answers"
            )
        version = data.get("version")
        if version is None:
            raise UsageError(
                f"{path}: version: missing", f"add `version: {REPLAY_VERSION}` at the top level"
            )
        if not isinstance(version, int) or isinstance(version, bool):
            raise UsageError(
                f"{path}: version: must be an integer (this Leviathan writes {REPLAY_VERSION})"
            )
        if version > REPLAY_VERSION:
            raise UsageError(
                f"{path}: version: {version} was written by a newer Leviathan; this one reads version {REPLAY_VERSION}",
                "upgrade Leviathan, or re-record the replay file with this version",
            )
        if version < 1:
            raise UsageError(f"{path}: version: must be 1 or more")
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise UsageError(f"{path}: config: must be a mapping of sections")
        answers = data.get("answers") or {}
        if not isinstance(answers, dict):
            raise UsageError(f"{path}: answers: must be a mapping of question id to answer")
        _check_answers(path, answers)
        return cls(path, config, {str(k): v for k, v in answers.items()})

    def dump(self) -> str:
        doc: dict[str, Any] = {"version": REPLAY_VERSION}
        if self.config:
            doc["config"] = self.config
        doc["answers"] = self.answers
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.dump().encode())


class ReplayAnswerer:
    """Answers from a replay file; a missing or refused answer stops the run (exit 3)."""

    def __init__(self, replay: ReplayFile) -> None:
        self.replay = replay
        self._lock = threading.Lock()

    def answer(self, question: Question, cancelled: threading.Event) -> Any:
        if question.secret:
            raise UnansweredQuestion(
                f"{question.id} ({question.prompt}) is a secret: it is never read from a replay file",
                SECRET_SOURCES,
            )
        with self._lock:
            if question.id not in self.replay.answers:
                where = f" to {self.replay.path}" if self.replay.path else ""
                raise UnansweredQuestion(
                    f"question {question.id} ({question.prompt}) has no answer in the replay file",
                    f"{question.check_first}add this line under 'answers:'{where}:\n"
                    f"    {question.yaml_line()}",
                )
            answer = self.replay.answers[question.id]
        answer = str(answer)
        problem = question.check(answer)
        if problem:
            raise RefusedAnswer(
                f"answer to {question.id} refused: {problem}", question.refusal_hint
            )
        return answer

    def recorded(self, key: str) -> Any:
        return self.replay.answers.get(key)

    def record_fact(self, key: str, value: Any) -> None:
        """Facts come from the file; a replay never rewrites it."""
