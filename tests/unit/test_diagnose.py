"""Every failure rule against a recorded event/log fixture; the rules are data, one place."""

from pathlib import Path

import pytest

from leviathan_tui.diagnose import diagnose, rules

FIXTURES = sorted((Path(__file__).resolve().parent.parent / "fixtures" / "rules").glob("*.txt"))


def test_every_rule_has_a_fixture() -> None:
    covered = {p.name.split(".")[0] for p in FIXTURES}
    assert {r.id for r in rules()} == covered


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_fixture_maps_to_its_rule(fixture: Path) -> None:
    rule_id, where, _ = fixture.name.split(".")
    found = diagnose(fixture.read_text(), where)
    assert found is not None and found.rule == rule_id, found
    assert found.fix and found.cause and found.evidence


def test_an_ordinary_log_line_matches_nothing() -> None:
    assert (
        diagnose("Successfully tagged 127.0.0.1:5000/omni/engine:leviathan-blackwell", "build")
        is None
    )
    assert diagnose("Started container engine", "pod") is None
