from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# tests never talk to anything but 127.0.0.1; make sure no client wanders off
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "0")
os.environ.pop("KUBECONFIG", None)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def leviathan_cmd() -> list[str]:
    return [sys.executable, "-m", "leviathan_tui"]


def run_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


# scripts/test.sh installs every service the suite needs; there a skipped test means a missing
# install step, so it fails the run instead of passing quietly
_REQUIRE_ALL = os.environ.get("LEVIATHAN_TESTS_REQUIRE_SERVICES") == "1"
_skipped: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that need llama.cpp run last: on a fresh machine it is still building then."""
    from tests.support.llama_cpp import BUILD_TIMEOUT_S

    needs_llama = [item for item in items if "llama_cpp_bin" in getattr(item, "fixturenames", ())]
    for item in needs_llama:  # the first of them may wait for the build
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT_S + 900))
    later = set(needs_llama)
    items[:] = [item for item in items if item not in later] + needs_llama


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _REQUIRE_ALL and report.skipped:
        _skipped.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped:
        print("\nskipped although scripts/test.sh installs what they need:", file=sys.stderr)
        for line in _skipped:
            print(f"  {line}", file=sys.stderr)
        if exitstatus == 0:
            session.exitstatus = 1
