"""Run every benchmark; print one line per figure."""

from __future__ import annotations

import os
import sys
import traceback

from benchmarks import bench_download, bench_e2e, bench_logpane, bench_startup
from benchmarks._figure import info, report

SUITES = {
    "startup": bench_startup,
    "logpane": bench_logpane,
    "download": bench_download,
    "e2e": bench_e2e,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(SUITES)
    failed = 0
    for name in chosen:
        info(f"running {name}")
        try:
            report(SUITES[name].run())
        except Exception:  # one broken benchmark must not hide the others' figures
            failed += 1
            print(f"{name}.error 0 - target=n/a MISS  # {traceback.format_exc().splitlines()[-1]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    raise SystemExit(main(sys.argv[1:]))
