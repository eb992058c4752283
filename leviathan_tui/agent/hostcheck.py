"""Run in an unprivileged pod that mounts the host path without propagation: does it see the
marker the privileged pod wrote, on an XFS filesystem? `--path DIR --marker NAME`."""

from __future__ import annotations

import argparse
import os
import sys

from leviathan_tui.agent._emit import milestone, result
from leviathan_tui.agent.node import current


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leviathan-hostcheck", description=__doc__)
    parser.add_argument("--path", required=True)
    parser.add_argument("--marker", required=True)
    parser.add_argument(
        "--write", metavar="TOKEN", help="write TOKEN into the marker (run in the privileged pod)"
    )
    args = parser.parse_args(argv)
    if args.write:
        marker = os.path.join(args.path, args.marker)
        try:
            with open(marker + ".tmp", "w", encoding="utf-8") as handle:
                handle.write(args.write + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(marker + ".tmp", marker)
        except OSError as err:
            return result("failed", f"cannot write {marker}: {err.strerror}")
        milestone(f"WROTE marker {marker}")
        return result("done", marker=args.write)
    milestone(f"CHECKING the host path at {args.path}")
    marker = os.path.join(args.path, args.marker)
    try:
        with open(marker, encoding="utf-8") as handle:
            content = handle.read().strip()
    except OSError as err:
        return result(
            "refused", f"marker {marker} not visible from an unprivileged pod: {err.strerror}"
        )
    fstype = current().fs_type(args.path)
    if fstype != "xfs":
        return result(
            "refused",
            f"{args.path} is {fstype or 'unknown'} here, not xfs: the disk mount did not reach the node",
            fstype=fstype,
        )
    milestone(f"HOST SEES the disk: {fstype}, marker {content}")
    return result("done", marker=content, fstype=fstype)


if __name__ == "__main__":
    sys.exit(main())
