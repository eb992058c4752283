"""Download model files onto the data disk, resumable across process restarts, verified.

    python -m leviathan_tui.agent.fetch --repo REPO --include GLOB [--include GLOB ...] --dest DIR
        [--revision REV] [--config-repo REPO --config-dest DIR] [--verify-only] [--check]

Honours HF_ENDPOINT and HF_TOKEN. Each file is fetched with HTTP Range into a stable partial
file (`DIR/.leviathan/partial/<name>.part`) and hashed while written, so a killed process
continues from the bytes on disk. A completed file gets a record (`DIR/.leviathan/done/`) with its
size and sha256; a later run trusts size + record and does not hash it again. Exit 0 when every
file is downloaded and verified, 1 otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leviathan_tui.agent._emit import emit, milestone, result

CHUNK = 1 << 20
HASH_BLOCK = 8 << 20
PROGRESS_EVERY_S = 0.5
DEFAULT_CONFIG_INCLUDE = [
    "config.json",
    "configuration_deepseek.py",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
]


class FetchError(Exception):
    pass


@dataclass
class PlannedFile:
    repo: str
    revision: str  # resolved commit
    path: str  # path in the repo
    size: int
    sha256: str | None  # LFS files
    git_oid: str | None  # small files: git blob sha1
    dest: Path  # final file

    @property
    def name(self) -> str:
        return self.dest.name


# --- planning ---------------------------------------------------------------------------------


def _api(endpoint: str | None = None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(
        endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None,
        token=os.environ.get("HF_TOKEN") or None,
    )


def plan_repo(
    repo: str,
    revision: str,
    includes: list[str],
    dest: Path,
    flatten: bool,
    endpoint: str | None = None,
) -> list[PlannedFile]:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    api = _api(endpoint)
    try:
        info = api.model_info(repo, revision=revision)
        sha = info.sha or revision
        entries = list(api.list_repo_tree(repo, recursive=True, revision=sha))
    except RepositoryNotFoundError:
        raise FetchError(f"repository {repo} not found (or private: set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise FetchError(f"revision {revision} not found in {repo}") from None
    except EntryNotFoundError as err:
        raise FetchError(f"{repo}: {err}") from None
    files: list[PlannedFile] = []
    for entry in entries:
        if not hasattr(entry, "size") or getattr(entry, "type", "file") == "directory":
            continue
        path = entry.path
        if not any(fnmatch.fnmatch(path, pattern) for pattern in includes):
            continue
        lfs = getattr(entry, "lfs", None)
        sha256 = getattr(lfs, "sha256", None) if lfs else None
        target = dest / (path.rsplit("/", 1)[-1] if flatten else path)
        files.append(
            PlannedFile(
                repo, sha, path, int(entry.size), sha256, getattr(entry, "blob_id", None), target
            )
        )
    return files


def folders_with_sizes(repo: str, revision: str, endpoint: str | None = None) -> dict[str, int]:
    """Top-level folders of a repo and their total size: the quants it really has."""
    totals: dict[str, int] = {}
    for entry in _api(endpoint).list_repo_tree(repo, recursive=True, revision=revision):
        if "/" in entry.path and hasattr(entry, "size") and entry.size:
            folder = entry.path.split("/", 1)[0]
            totals[folder] = totals.get(folder, 0) + int(entry.size)
    return totals


# --- records ----------------------------------------------------------------------------------


def _meta_dir(file: PlannedFile) -> Path:
    return file.dest.parent / ".leviathan"


def _record_path(file: PlannedFile) -> Path:
    return _meta_dir(file) / "done" / f"{file.name}.json"


def _partial_path(file: PlannedFile) -> Path:
    return _meta_dir(file) / "partial" / f"{file.name}.part"


def _expected_digest(file: PlannedFile) -> str:
    return file.sha256 or file.git_oid or ""


def is_complete(file: PlannedFile) -> bool:
    """Size + recorded hash: a completed, verified file is never hashed or fetched again."""
    try:
        record = json.loads(_record_path(file).read_text())
        size = file.dest.stat().st_size
    except (OSError, ValueError):
        return False
    return (
        size == file.size
        and record.get("digest") == _expected_digest(file)
        and record.get("size") == file.size
    )


def _write_record(file: PlannedFile, digest: str) -> None:
    path = _record_path(file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "size": file.size,
                "digest": digest,
                "repo": file.repo,
                "revision": file.revision,
                "path": file.path,
            }
        )
    )
    os.replace(tmp, path)


def _new_hasher(file: PlannedFile) -> Any:
    if file.sha256:
        return hashlib.sha256()
    hasher = hashlib.sha1()
    hasher.update(f"blob {file.size}\0".encode())  # git blob id of a small, non-LFS file
    return hasher


# --- transfer ---------------------------------------------------------------------------------


class Reporter:
    """Coalesced progress events: at most one per file every PROGRESS_EVERY_S."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def progress(self, file: PlannedFile, done: int, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last.get(file.name, 0.0) < PROGRESS_EVERY_S:
                return
            self._last[file.name] = now
        emit("progress", file=file.name, done=done, total=file.size)


def _hash_existing(path: Path, hasher: Any) -> int:
    done = 0
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            hasher.update(block)
            done += len(block)
    return done


class _SameHostAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects (the Hub sends LFS files to a CDN) without carrying the token elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if (
            new is not None
            and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc
        ):
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SameHostAuth)


def _open(url: str, headers: dict[str, str]) -> Any:
    """GET with the bytes read by the stdlib (readinto: no per-chunk copies); HTTP errors mapped
    to retry (5xx, 429, network) or failure (other 4xx)."""
    try:
        return _OPENER.open(urllib.request.Request(url, headers=headers), timeout=30.0)
    except urllib.error.HTTPError as err:
        if err.code == 416:
            raise FetchError(
                f"the server refused the range in {headers.get('Range')} (file changed?)"
            ) from None
        if err.code >= 500 or err.code == 429:
            raise ConnectionError(f"HTTP {err.code}") from None
        raise FetchError(f"HTTP {err.code} from {url}") from None


def download_http(
    file: PlannedFile, reporter: Reporter, retry_for_s: float, verify: bool = True
) -> None:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(
        file.repo, file.path, revision=file.revision, endpoint=os.environ.get("HF_ENDPOINT") or None
    )
    headers = build_hf_headers(token=os.environ.get("HF_TOKEN") or None)
    partial = _partial_path(file)
    partial.parent.mkdir(parents=True, exist_ok=True)
    file.dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = _new_hasher(file) if verify else None
    done = 0
    if partial.exists():
        if partial.stat().st_size > file.size:
            partial.unlink()
        elif hasher is not None:
            done = _hash_existing(partial, hasher)  # once, then continue hashing as bytes arrive
        else:
            done = partial.stat().st_size
    if done:
        emit("resume", file=file.name, offset=done, total=file.size)
    started_outage: float | None = None
    attempt = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while done < file.size:
        request_headers = dict(headers)
        if done:
            request_headers["Range"] = f"bytes={done}-"
        try:
            with _open(url, request_headers) as response:
                status = response.status
                if done and status != 206:
                    # the server ignored Range: start over rather than append a second copy
                    done = 0
                    hasher = _new_hasher(file) if verify else None
                    mode = "wb"
                else:
                    mode = "ab" if done else "wb"
                with open(partial, mode) as out:
                    while True:
                        n = response.readinto(buffer)
                        if not n:
                            break
                        out.write(view[:n])
                        if hasher is not None:
                            hasher.update(view[:n])
                        done += n
                        reporter.progress(file, done)
                    out.flush()
                    os.fsync(out.fileno())
            started_outage = None
            attempt = 0
            if done < file.size:
                raise ConnectionError(f"connection closed at {done} of {file.size} bytes")
        except FetchError:
            raise
        except Exception as err:  # network errors of any transport: retry with backoff
            now = time.monotonic()
            started_outage = started_outage or now
            if now - started_outage > retry_for_s:
                raise FetchError(
                    f"{file.name}: network down for {now - started_outage:.0f} s: {err}"
                ) from None
            attempt += 1
            delay = min(30.0, 0.5 * 2 ** min(attempt, 6))
            emit(
                "retry",
                file=file.name,
                attempt=attempt,
                error=str(err)[:200],
                delay=delay,
                done=done,
            )
            on_disk = partial.stat().st_size if partial.exists() else 0
            if on_disk != done:  # a write and the hash fell out of step: hash the file again
                hasher = _new_hasher(file) if verify else None
                done = (
                    _hash_existing(partial, hasher) if (hasher is not None and on_disk) else on_disk
                )
            time.sleep(delay)
    reporter.progress(file, done, force=True)
    digest = hasher.hexdigest() if hasher is not None else ""
    if verify and digest != _expected_digest(file):
        partial.unlink(missing_ok=True)
        raise FetchError(
            f"{file.name}: checksum mismatch (got {digest[:16]}…, the Hub says {_expected_digest(file)[:16]}…)"
        )
    os.replace(partial, file.dest)
    _write_record(file, digest if verify else _expected_digest(file))
    emit("file_done", file=file.name, size=file.size, digest=digest, verified=verify)


def download_xet(file: PlannedFile) -> None:
    os.environ.setdefault("HF_XET_HIGH_PERFORMANCE", "1")
    from huggingface_hub import hf_hub_download

    local_dir = file.dest.parent
    got = Path(hf_hub_download(file.repo, file.path, revision=file.revision, local_dir=local_dir))
    if got != file.dest:
        shutil.move(got, file.dest)
    emit("file_done", file=file.name, size=file.size, verified=False)


def hash_file(path: Path, file: PlannedFile) -> str:
    hasher = _new_hasher(file)
    _hash_existing(path, hasher)
    return hasher.hexdigest()


def verify_files(files: list[PlannedFile], workers: int) -> list[str]:
    """Full re-check: hash every file in parallel (hashlib releases the GIL), then check GGUF headers."""
    bad: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_verify_one, f): f for f in files}
        for future in as_completed(futures):
            file = futures[future]
            problem = future.result()
            if problem:
                bad.append(file.name)
                _record_path(file).unlink(missing_ok=True)  # the next run fetches this file again
                emit("corrupt", file=file.name, reason=problem)
            else:
                emit("verified", file=file.name)
    present = [f for f in files if f.name.endswith(".gguf") and f.dest.exists()]
    bad.extend(n for n in check_gguf_set(present) if n not in bad)
    return bad


def _verify_one(file: PlannedFile) -> str:
    try:
        size = file.dest.stat().st_size
    except OSError:
        return "missing"
    if size != file.size:
        return f"size {size}, expected {file.size}"
    digest = hash_file(file.dest, file)
    if digest != _expected_digest(file):
        return f"checksum mismatch ({digest[:16]}…)"
    _write_record(file, digest)
    return ""


def check_gguf_set(files: list[PlannedFile]) -> list[str]:
    """Open each shard with the gguf reader: valid header, split.count agrees, shards 1..N present."""
    try:
        from gguf import GGUFReader
    except ImportError:
        emit("warning", reason="the gguf package is not installed: shard headers not checked")
        return []
    bad: list[str] = []
    counts: dict[int, list[str]] = {}
    numbers: set[int] = set()
    for file in files:
        try:
            reader = GGUFReader(str(file.dest), "r")
            count_field = reader.fields.get("split.count")
            number_field = reader.fields.get("split.no")
            count = int(count_field.parts[count_field.data[0]][0]) if count_field else 1
            number = int(number_field.parts[number_field.data[0]][0]) + 1 if number_field else 1
        except Exception as err:  # any parse error is a corrupt shard
            bad.append(file.name)
            emit("corrupt", file=file.name, reason=f"not a valid GGUF: {err}")
            continue
        counts.setdefault(count, []).append(file.name)
        numbers.add(number)
    if len(counts) > 1:
        emit("corrupt", file="*", reason=f"shards disagree on split.count: {counts}")
        bad.extend(n for names in counts.values() for n in names)
    elif counts:
        expected = next(iter(counts))
        missing = sorted(set(range(1, expected + 1)) - numbers)
        if missing:
            emit("corrupt", file="*", reason=f"shards missing: {missing} of {expected}")
            bad.append("*")
    return bad


def clean_stale(dest: Path) -> int:
    """The stock client leaves process-unique *.incomplete files behind; remove them."""
    removed = 0
    cache = dest / ".cache" / "huggingface"
    if cache.is_dir():
        for stale in cache.rglob("*.incomplete"):
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--transfer", choices=("http", "xet"), default="http")
    parser.add_argument(
        "--retry-for", type=float, default=1800.0, help="seconds of network outage to ride out"
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
    args = parser.parse_args(argv)
    if args.dest.name.endswith(".gguf"):
        return result("failed", f"{args.dest}: the GGUF directory's name must not end in .gguf")
    if bool(args.config_repo) != bool(args.config_dest):
        return result("failed", "--config-repo and --config-dest go together")

    try:
        milestone(f"PLANNING {args.repo} {' '.join(args.include)}")
        files = plan_repo(args.repo, args.revision, args.include, args.dest, flatten=True)
        if not files:
            quants = ", ".join(sorted(folders_with_sizes(args.repo, args.revision))) or "none"
            return result(
                "failed",
                f"nothing in {args.repo} matches {' '.join(args.include)}; folders that exist: {quants}",
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
                return result("failed", f"{args.config_repo} has no config.json")
            files += config_files
    except FetchError as err:
        return result("failed", str(err))
    except Exception as err:  # unreachable endpoint and the like
        return result("failed", f"cannot list the Hub: {type(err).__name__}: {err}")

    total = sum(f.size for f in files)
    emit(
        "plan",
        files=[
            {"name": f.name, "path": f.path, "repo": f.repo, "size": f.size, "sha256": f.sha256}
            for f in files
        ],
        total=total,
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
    needed = sum(
        f.size - (_partial_path(f).stat().st_size if _partial_path(f).exists() else 0) for f in todo
    )
    if free is not None and needed > free:
        return result(
            "refused",
            f"not enough space: {needed} bytes still to download, {free} free ({needed - free} short)",
            needed=needed,
            free=free,
        )
    milestone(f"DOWNLOADING {len(todo)} of {len(files)} files ({needed / 1e9:.1f} GB to go)")

    reporter = Reporter()
    failures: list[str] = []

    def one(file: PlannedFile) -> None:
        for attempt in range(2):  # a corrupt transfer is fetched again once, that file only
            try:
                if args.transfer == "xet":
                    download_xet(file)
                    problem = _verify_one(file)
                    if problem:
                        raise FetchError(f"{file.name}: {problem}")
                else:
                    download_http(file, reporter, args.retry_for, verify=not args.no_hash)
                return
            except FetchError as err:
                emit("error", file=file.name, reason=str(err), attempt=attempt + 1)
                if "checksum" not in str(err) or attempt == 1:
                    raise

    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        futures = {pool.submit(one, f): f for f in todo}
        for future in as_completed(futures):
            try:
                future.result()
            except FetchError as err:
                failures.append(str(err))
            except Exception as err:
                failures.append(f"{futures[future].name}: {type(err).__name__}: {err}")
    if failures:
        return result("failed", "; ".join(failures[:3]))
    bad = check_gguf_set([f for f in files if f.name.endswith(".gguf")])
    if bad:
        return result("failed", f"GGUF check failed: {', '.join(bad)}", bad=bad)
    milestone(f"DONE: {len(files)} files, {total / 1e9:.1f} GB verified")
    return result("done", files=len(files), total=total, verified=not args.no_hash)


if __name__ == "__main__":
    sys.exit(0 if main() == 0 else 1)
