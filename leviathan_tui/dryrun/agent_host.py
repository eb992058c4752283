"""Run one node agent against the simulated node: the dry run's "pod".

    python -m leviathan_tui.dryrun.agent_host WORLD_DIR MODULE [AGENT ARGS...]

The agent's own `main` runs unchanged; only `leviathan_tui.agent.node` answers from the world.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from leviathan_tui.agent.node import install
from leviathan_tui.dryrun.node import SimulatedNode
from leviathan_tui.dryrun.world import World

AGENTS = ("probe", "disk", "fetch", "hostcheck", "merge")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[1] not in AGENTS:
        sys.stderr.write(f"usage: agent_host WORLD_DIR {{{','.join(AGENTS)}}} [ARGS...]\n")
        return 2
    world_dir, module = Path(args[0]), args[1]
    _die_with_parent()
    install(SimulatedNode(World(world_dir)))
    agent = importlib.import_module(f"leviathan_tui.agent.{module}")
    return int(agent.main(args[2:]) or 0)


def _die_with_parent() -> None:
    """A simulated pod ends with the wizard that started it (no stray processes after a dry run);
    the next run finds its partial work on the simulated disk and resumes from it."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() == 1:  # the parent is already gone
            os._exit(143)
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
