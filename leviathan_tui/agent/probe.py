"""List the node's block devices and its CPU: `python -m leviathan_tui.agent.probe [--label LABEL]`.

Prints one JSON event per device assessment and a final result line holding the whole listing and
the CPU's instruction-set flags (the engine image must run on them).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from leviathan_tui.agent._emit import emit, milestone, result
from leviathan_tui.agent.lsblk import device_event, enrich, parse_lsblk, run_lsblk
from leviathan_tui.agent.node import current


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leviathan-probe", description=__doc__)
    parser.add_argument(
        "--label", default="leviathan", help="the XFS label Leviathan gives its disks"
    )
    parser.add_argument(
        "--mountpoint",
        help="where Leviathan mounts its disk (our disk mounted there is not 'in use')",
    )
    parser.add_argument(
        "--no-blkid", action="store_true", help="trust lsblk's FSTYPE/LABEL (no superblock probe)"
    )
    args = parser.parse_args(argv)
    milestone("PROBING block devices")
    try:
        raw = run_lsblk()
        devices = enrich(parse_lsblk(raw), probe=not args.no_blkid)
    except (OSError, subprocess.CalledProcessError, ValueError) as err:
        return result("failed", f"lsblk failed: {err}")
    for dev in devices:
        emit("device", **device_event(dev, args.label, args.mountpoint))
    milestone(f"FOUND {len(devices)} block devices")
    cpu_model, cpu_flags = current().cpu()
    milestone(f"CPU {cpu_model or 'unknown'}: {len(cpu_flags)} flags")
    return result(
        "done",
        devices=[d.to_json() for d in devices],
        cpu_model=cpu_model,
        cpu_flags=cpu_flags,
    )


if __name__ == "__main__":
    sys.exit(main())
