import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, leviathan_cmd, run_env


def test_import_linter_contract_holds() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


def test_headless_path_never_loads_textual(tmp_path: Path) -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['leviathan', '--dry-run', '--state-dir', {!r}, '--replay', {!r}, '--only', 'preflight,storage,build']\n"
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


def _agent_imports() -> set[str]:
    import ast

    found: set[str] = set()
    for path in (ROOT / "leviathan_tui" / "agent").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(
                    node.module.split(".")[0]
                    if node.module.split(".")[0] != "leviathan_tui"
                    else node.module
                )
    return found


def test_agents_import_only_the_stdlib_huggingface_hub_and_each_other() -> None:
    allowed_outside = {
        "huggingface_hub",
        "gguf",
    }  # gguf is optional: checked at import, skipped if absent
    for name in _agent_imports():
        if name.startswith("leviathan_tui"):
            assert name.startswith("leviathan_tui.agent"), name
        else:
            assert name in sys.stdlib_module_names or name in allowed_outside, name


def test_each_backend_and_its_dry_twin_satisfy_one_protocol() -> None:
    import inspect

    from leviathan_tui.backends import protocols
    from leviathan_tui.backends.http import HttpBackend
    from leviathan_tui.backends.hub import HubBackend
    from leviathan_tui.backends.kube import KubeBackend
    from leviathan_tui.backends.registry import RegistryBackend
    from leviathan_tui.backends.ssh import SshConnector, SshSession
    from leviathan_tui.dryrun.buildhost import DrySession, DrySshConnector
    from leviathan_tui.dryrun.engine import DryHttp
    from leviathan_tui.dryrun.hub import DryHub
    from leviathan_tui.dryrun.kube import DryKube
    from leviathan_tui.dryrun.registry import DryRegistry

    pairs = {
        protocols.KubeApi: (KubeBackend, DryKube),
        protocols.Hub: (HubBackend, DryHub),
        protocols.BuildHost: (SshConnector, DrySshConnector),
        protocols.RemoteSession: (SshSession, DrySession),
        protocols.Registry: (RegistryBackend, DryRegistry),
        protocols.Http: (HttpBackend, DryHttp),
    }
    for proto, classes in pairs.items():
        methods = {
            name: inspect.signature(member)
            for name, member in vars(proto).items()
            if callable(member) and not name.startswith("_")
        }
        assert methods, proto
        for cls in classes:
            for name, wanted in methods.items():
                member = getattr(cls, name, None)
                assert callable(member), f"{cls.__name__} lacks {proto.__name__}.{name}"
                got = inspect.signature(member)
                assert list(got.parameters) == list(wanted.parameters), (
                    f"{cls.__name__}.{name}{got} != {proto.__name__}.{name}{wanted}"
                )
