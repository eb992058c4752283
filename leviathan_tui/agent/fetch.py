"""Download model files onto the data disk, resumable across process restarts, verified.

    python -m leviathan_tui.agent.fetch --repo REPO --include GLOB [--include GLOB ...] --dest DIR
        [--revision REV] [--config-repo REPO --config-dest DIR] [--verify-only] [--check]
        [--connections-per-file N|auto] [--max-connections N] [--max-bytes-per-s N]
        [--reuse-plan] [--lock-wait S]

Honours HF_ENDPOINT and HF_TOKEN. Each file is fetched with HTTP Range requests, over several
connections when one connection is slower than the link, into a partial file
(`DIR/.leviathan/partial/<name>.part`) whose written ranges are recorded beside it, so a killed
process continues each range from the bytes on disk. A thread per file hashes the contiguous
prefix as it lands. A completed file gets a record (`DIR/.leviathan/done/`) with its size and
sha256; a later run trusts size + record and does not hash it again. One agent at a time writes a
directory (`DIR/.leviathan/writer.lock`). Exit 0 when every file is downloaded and verified,
1 otherwise; the last event says done, refused (no space, another writer) or failed.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from leviathan_tui.agent._emit import emit, milestone, result  # noqa: E402
from leviathan_tui.agent.autoscale import ConnectionPlanner  # noqa: E402
from leviathan_tui.agent.fetch_events import CpuStats, Reporter  # noqa: E402
from leviathan_tui.agent.fetch_plan import (  # noqa: E402
    DEFAULT_CONFIG_INCLUDE,
    FetchError,
    PlannedFile,
    folders_with_sizes,
    forget_plan,
    load_plan,
    plan_differences,
    plan_repo,
    save_plan,
)
from leviathan_tui.agent.fetch_records import is_complete  # noqa: E402
from leviathan_tui.agent.fetch_run import fetch_files  # noqa: E402
from leviathan_tui.agent.fetch_verify import check_gguf_set, verify_files  # noqa: E402
from leviathan_tui.agent.hasher import hash_file  # noqa: E402
from leviathan_tui.agent.throttle import ConnectionBudget, TokenBucket  # noqa: E402
from leviathan_tui.agent.transfer import (  # noqa: E402
    RunShared,
    TransferOptions,
    bytes_on_disk,
    load_table,
)
from leviathan_tui.agent.writer_lock import LockBusy, WriterLock, describe  # noqa: E402

__all__ = [
    "DEFAULT_CONFIG_INCLUDE",
    "FetchError",
    "PlannedFile",
    "check_gguf_set",
    "folders_with_sizes",
    "hash_file",
    "is_complete",
    "main",
    "plan_repo",
    "verify_files",
]

AUTO_CEILING = 8  # connections per file that "auto" may grow to


def _bytes(size: int) -> str:
    """Exact bytes, then the size as the Hub prints it: `404424858009 bytes (404.4 GB)`."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size} bytes ({size / scale:.1f} {unit})"
    return f"{size} bytes"


def clean_stale(dest: Path) -> int:
    """The stock client leaves process-unique *.incomplete files behind; remove them."""
    removed = 0
    cache = dest / ".cache" / "huggingface"
    if cache.is_dir():
        for stale in cache.rglob("*.incomplete"):
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


# --- arguments ---------------------------------------------------------------------------------


def _connections(value: str) -> int | None:
    if value == "auto":
        return None
    number = int(value)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("between 1 and 64, or auto")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leviathan-fetch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repo", required=True)
    parser.add_argument(
        "--include", action="append", required=True, help="glob of repo paths (repeatable)"
    )
    parser.add_argument("--dest", required=True, type=Path)
    parser.add_argument("--revision", default="main")
    parser.add_argument("--config-repo")
    parser.add_argument("--config-dest", type=Path)
    parser.add_argument(
        "--config-include",
        action="append",
        help="config/tokenizer files (default: what KTransformers needs)",
    )
    parser.add_argument("--config-revision", default="main")
    parser.add_argument("--parallel", type=_positive_int, default=3, help="files at once")
    parser.add_argument("--transfer", choices=("http", "xet"), default="http")
    parser.add_argument(
        "--retry-for", type=float, default=1800.0, help="seconds of network outage to ride out"
    )
    parser.add_argument(
        "--connections-per-file",
        type=_connections,
        default=None,
        metavar="N|auto",
        help=f"Range connections per file; auto (default) measures whether more help, up to {AUTO_CEILING}",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive_int,
        default=24,
        help="connections in all, across files (at least --parallel)",
    )
    parser.add_argument(
        "--max-bytes-per-s",
        type=int,
        default=0,
        help="cap on the total download rate, all connections together (0: none)",
    )
    parser.add_argument(
        "--min-segment-bytes",
        type=_positive_int,
        default=16 << 20,
        help="a file is not split into ranges smaller than this",
    )
    parser.add_argument(
        "--buffer-bytes",
        type=_positive_int,
        default=4 << 20,
        help="receive buffer per connection (bytes read from the socket before each write)",
    )
    parser.add_argument(
        "--reuse-plan",
        action="store_true",
        help="start from the plan recorded by the last run in --dest; list the Hub again meanwhile",
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=15.0,
        help="seconds to wait for another agent writing the same directory before refusing",
    )
    parser.add_argument(
        "--no-hash", action="store_true", help="(benchmarks) skip hashing during download"
    )
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="hash every file again, in parallel, and check GGUF headers",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing: are all files present with size and recorded hash?",
    )
    return parser


# --- planning ----------------------------------------------------------------------------------


def _request(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "repo": args.repo,
        "revision": args.revision,
        "include": args.include,
        "dest": str(args.dest),
        "config_repo": args.config_repo,
        "config_revision": args.config_revision,
        "config_include": args.config_include or DEFAULT_CONFIG_INCLUDE,
        "config_dest": str(args.config_dest) if args.config_dest else None,
    }


def _plan(args: argparse.Namespace) -> list[PlannedFile]:
    """The Hub listing for the request; FetchError with the operator's next step when empty."""
    files = plan_repo(args.repo, args.revision, args.include, args.dest, flatten=True)
    if not files:
        quants = ", ".join(sorted(folders_with_sizes(args.repo, args.revision))) or "none"
        raise FetchError(
            f"nothing in {args.repo} matches {' '.join(args.include)}; folders that exist: {quants}"
        )
    if args.config_repo:
        config_files = plan_repo(
            args.config_repo,
            args.config_revision,
            args.config_include or DEFAULT_CONFIG_INCLUDE,
            args.config_dest,
            flatten=True,
        )
        if not any(f.path == "config.json" for f in config_files):
            raise FetchError(f"{args.config_repo} has no config.json")
        files += config_files
    return files


class PlanCheck:
    """With --reuse-plan: list the Hub once the transfer runs (the first new byte, or a few
    seconds); stop the run if the listing no longer matches the recorded plan."""

    START_AFTER_S = 3.0

    def __init__(
        self, args: argparse.Namespace, recorded: list[PlannedFile], shared: RunShared
    ) -> None:
        self.args = args
        self.recorded = recorded
        self.shared = shared
        self.changed: list[str] = []
        self._thread = threading.Thread(target=self._run, name="plan check", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        self.shared.reporter.first_byte_seen.wait(self.START_AFTER_S)
        try:
            listed = _plan(self.args)
        except Exception as err:  # the transfer goes on; the record stays as it was
            emit("warning", reason=f"could not list the Hub again to check the plan: {err}")
            return
        self.changed = plan_differences(self.recorded, listed)
        if self.changed:
            emit("plan_changed", files=self.changed[:20])
            self.shared.stop.set()
        else:
            emit("plan_checked", files=len(listed))


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.dest.name.endswith(".gguf"):
        return result("failed", f"{args.dest}: the GGUF directory's name must not end in .gguf")
    if bool(args.config_repo) != bool(args.config_dest):
        return result("failed", "--config-repo and --config-dest go together")

    locks: list[WriterLock] = []
    if not args.check:
        try:
            _lock_all(args, locks)
        except LockBusy as busy:
            return result(
                "refused",
                f"{busy}: only one download may write there; stop that pod or wait for it",
                holder=busy.holder,
            )
        except OSError as err:
            return result("failed", f"cannot create the lock in {args.dest}: {err.strerror}")
    try:
        return _run(args)
    except KeyboardInterrupt:
        return result("failed", "interrupted: partial files are kept; the next run resumes them")
    finally:
        for lock in locks:
            lock.release()


def _lock_all(args: argparse.Namespace, locks: list[WriterLock]) -> None:
    directories = sorted({args.dest, *([args.config_dest] if args.config_dest else [])})
    for directory in directories:
        lock = WriterLock(directory)
        lock.acquire(
            args.lock_wait,
            on_wait=lambda holder, d=directory: emit(
                "lock_wait", dir=str(d), holder=holder, reason=f"waiting for {describe(holder)}"
            ),
        )
        locks.append(lock)


def _run(args: argparse.Namespace) -> int:
    request = _request(args)
    recorded = load_plan(args.dest, request) if args.reuse_plan else None
    try:
        if recorded:
            files = recorded
            milestone(f"RESUMING the recorded plan: {len(files)} files")
        else:
            milestone(f"PLANNING {args.repo} {' '.join(args.include)}")
            files = _plan(args)
            if not args.check:
                save_plan(args.dest, request, files)
    except FetchError as err:
        return result("failed", str(err))
    except OSError as err:
        return result("failed", f"cannot record the plan in {args.dest}: {err.strerror}")
    except Exception as err:  # unreachable endpoint and the like
        return result("failed", f"cannot list the Hub: {type(err).__name__}: {err}")

    total = sum(f.size for f in files)
    emit(
        "plan",
        files=[
            {
                "name": f.name,
                "path": f.path,
                "repo": f.repo,
                "size": f.size,
                "sha256": f.sha256,
                "revision": f.revision,
            }
            for f in files
        ],
        total=total,
        reused=bool(recorded),
    )

    if args.check:
        missing = [f.name for f in files if not is_complete(f)]
        if missing:
            return result(
                "refused",
                f"{len(missing)} file(s) not complete: {', '.join(missing[:5])}",
                missing=missing,
            )
        return result("done", files=len(files), total=total)

    if args.verify_only:
        milestone(f"VERIFYING {len(files)} files")
        bad = verify_files(files, args.parallel)
        if bad:
            return result(
                "failed",
                f"verification failed: {', '.join(sorted(set(bad)))}",
                bad=sorted(set(bad)),
            )
        return result("done", files=len(files), total=total, verified=True)
    return _download(args, files, recorded is not None)


def _download(args: argparse.Namespace, files: list[PlannedFile], reused: bool) -> int:
    total = sum(f.size for f in files)
    for folder in {f.dest.parent for f in files}:
        removed = clean_stale(folder)
        if removed:
            emit("cleaned", dir=str(folder), files=removed)
    todo = [f for f in files if not is_complete(f)]
    for f in files:
        if f not in todo:
            emit("file_done", file=f.name, size=f.size, skipped=True, verified=True)
    free = (
        shutil.disk_usage(args.dest if args.dest.exists() else args.dest.parent).free
        if (args.dest.exists() or args.dest.parent.exists())
        else None
    )
    needed = sum(f.size - bytes_on_disk(f) for f in todo)
    if free is not None and needed > free:
        return result(
            "refused",
            f"not enough space: {needed} bytes still to download, {free} free ({needed - free} short)",
            needed=needed,
            free=free,
        )
    milestone(f"DOWNLOADING {len(todo)} of {len(files)} files, {_bytes(needed)} to go")

    stats = CpuStats()
    reporter = Reporter(stats, STARTED)
    parallel = max(1, args.parallel)
    resumed_segments = max((load_table(f).unfinished() for f in todo), default=1)
    planner = ConnectionPlanner(
        reporter,
        args.connections_per_file,
        AUTO_CEILING,
        args.max_bytes_per_s or None,
        initial=resumed_segments,
    )
    buffer_size = args.buffer_bytes
    shared = RunShared(
        TransferOptions(
            min_segment=args.min_segment_bytes,
            buffer_size=buffer_size,
            retry_for_s=args.retry_for,
            verify=not args.no_hash,
        ),
        ConnectionBudget(max(parallel, args.max_connections) - parallel),
        TokenBucket(args.max_bytes_per_s or None, burst=max(buffer_size, args.max_bytes_per_s / 4)),
        planner,
        reporter,
        stats,
    )
    check = PlanCheck(args, files, shared) if reused else None
    if check is not None:
        check.start()
    planner.start()
    failures = fetch_files(todo, shared, parallel, xet=args.transfer == "xet")
    planner.stop()
    if check is not None:
        check.join()
        if check.changed:
            forget_plan(args.dest)
            return result(
                "failed",
                f"the Hub's listing changed since the recorded plan ({', '.join(check.changed[:3])}): run again to plan afresh",
                changed=check.changed,
            )
    if failures:
        return result("failed", "; ".join(failures[:3]), cpu_s=stats.summary())
    bad = check_gguf_set([f for f in files if f.name.endswith(".gguf")])
    if bad:
        return result("failed", f"GGUF check failed: {', '.join(bad)}", bad=bad)
    milestone(f"DONE: {len(files)} files, {_bytes(total)} verified")
    return result(
        "done", files=len(files), total=total, verified=not args.no_hash, cpu_s=stats.summary()
    )


if __name__ == "__main__":
    sys.exit(0 if main() == 0 else 1)
