"""Turn log lines, pod reasons and events into a one-line cause and fix, from rules kept as data
(`data/failure-rules.yaml`) shared by the build and deploy phases."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib.resources import files

import yaml


@dataclass(frozen=True)
class Rule:
    id: str
    where: frozenset[str]
    pattern: re.Pattern[str]
    cause: str
    fix: str
    fatal: bool


@dataclass(frozen=True)
class Diagnosis:
    rule: str
    cause: str
    fix: str
    fatal: bool
    evidence: str = ""


@functools.cache
def rules() -> tuple[Rule, ...]:
    raw = yaml.safe_load(
        (files("leviathan_tui") / "data" / "failure-rules.yaml").read_text(encoding="utf-8")
    )
    return tuple(
        Rule(
            r["id"],
            frozenset(r["in"]),
            re.compile(r["match"], re.MULTILINE),
            r["cause"],
            r["fix"],
            bool(r.get("fatal")),
        )
        for r in raw
    )


def diagnose(text: str, where: str) -> Diagnosis | None:
    for rule in rules():
        if where not in rule.where:
            continue
        match = rule.pattern.search(text)
        if match:
            line_start = text.rfind("\n", 0, match.start()) + 1
            line_end = text.find("\n", match.end())
            evidence = text[line_start : line_end if line_end != -1 else len(text)].strip()
            return Diagnosis(rule.id, rule.cause, rule.fix, rule.fatal, evidence[:300])
    return None


def explain_pod(reason: str, text: str) -> Diagnosis | None:
    """A pod's waiting/terminated reason plus its events or logs."""
    return diagnose(f"{text}\n{reason}" if reason else text, "pod")
