"""Start an agent in a plain Python image: install what it needs first, then run it.

    python3 -m leviathan_tui.agent.bootstrap MODULE [AGENT ARGS...]

The helper pods run a stock image (storage.agent_image, python:3.11-slim by default), which has
neither xfsprogs nor huggingface_hub. Each agent names the commands and Python packages it needs;
missing ones are installed with apt-get and pip, then the agent runs in this process. An image
that lacks them and has no apt-get is refused with what to use instead.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import shutil
import subprocess
import sys

from leviathan_tui.agent._emit import milestone, result

# agent -> (commands with the Debian package that provides them, Python requirements)
NEEDS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "probe": ({"lsblk": "util-linux", "blkid": "util-linux"}, {}),
    "disk": (
        {
            "lsblk": "util-linux",
            "blkid": "util-linux",
            "findmnt": "util-linux",
            "mount": "mount",
            "mkfs.xfs": "xfsprogs",
        },
        {},
    ),
    "hostcheck": ({"stat": "coreutils"}, {}),
    "merge": ({}, {}),  # llama-gguf-split comes with the merge image (deploy.gguf_merge_image)
    "fetch": ({}, {"huggingface_hub": "huggingface_hub>=1.1", "gguf": "gguf>=0.10"}),
}


def missing(module: str) -> tuple[list[str], list[str]]:
    commands, packages = NEEDS[module]
    debs = sorted({deb for cmd, deb in commands.items() if shutil.which(cmd) is None})
    reqs = [req for name, req in packages.items() if importlib.util.find_spec(name) is None]
    return debs, reqs


def _run(cmd: list[str]) -> tuple[int, str]:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    )
    return proc.returncode, (proc.stderr or proc.stdout).strip()[-400:]


def install(debs: list[str], reqs: list[str]) -> str:
    """Install what is missing; returns why it could not, or ""."""
    if debs:
        if shutil.which("apt-get") is None:
            return (
                f"the agent image lacks {', '.join(debs)} and has no apt-get: set storage.agent_image "
                "to a Debian-based Python image (python:3.11-slim-bookworm) or one with util-linux and xfsprogs"
            )
        milestone(f"INSTALLING {' '.join(debs)} (apt-get)")
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *debs],
        ):
            code, output = _run(cmd)
            if code != 0:
                return f"{' '.join(cmd[:2])} failed: {output}"
    if reqs:
        milestone(f"INSTALLING {' '.join(reqs)} (pip)")
        code, output = _run([sys.executable, "-m", "pip", "install", "-q", "--no-cache-dir", *reqs])
        if code != 0:
            return f"pip install failed: {output}"
    return ""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in NEEDS:
        sys.stderr.write(f"usage: bootstrap {{{','.join(NEEDS)}}} [ARGS...]\n")
        return 2
    module, rest = args[0], args[1:]
    debs, reqs = missing(module)
    if debs or reqs:
        problem = install(debs, reqs)
        if problem:
            return result("failed", problem)
    sys.argv = [f"leviathan-{module}", *rest]
    try:
        runpy.run_module(f"leviathan_tui.agent.{module}", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
