import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, leviathan_cmd, run_env


def test_import_linter_contract_holds() -> None:
    result = subprocess.run(
        ["lint-imports"], cwd=ROOT, capture_output=True, text=True, env=run_env(), timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


def test_headless_path_never_loads_textual(tmp_path: Path) -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['leviathan', '--dry-run', '--state-dir', {!r}, '--replay', {!r}, '--only', 'build']\n"
        "try:\n    runpy.run_module('leviathan_tui', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print('TEXTUAL' if any(m == 'textual' or m.startswith('textual.') for m in sys.modules) else 'CLEAN', code)\n"
    ).format(str(tmp_path), str(ROOT / "examples" / "dry-run-replay.yaml"))
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=run_env(LEVIATHAN_DRY_RUN_SPEED="8"),
        timeout=120,
    )
    assert result.stdout.strip().endswith("CLEAN 0"), result.stdout[-500:] + result.stderr


def test_help_does_not_import_heavy_libraries() -> None:
    code = "import sys; from leviathan_tui import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\nprint(sorted(m for m in ('kubernetes', 'paramiko', 'huggingface_hub', 'textual', 'pydantic') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=run_env(), timeout=60
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert leviathan_cmd()
