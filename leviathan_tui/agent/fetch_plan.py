"""What to download: the Hub listing of a repo filtered by globs, and the plan recorded on disk.

The listing needs huggingface_hub (imported on first use). The transfer itself needs only the
resolve URL and the auth header, built here with the stdlib the way huggingface_hub 2.4.0 builds
them (`hf_hub_url`, `build_hf_headers` in src/huggingface_hub/file_download.py and
utils/_headers.py), so a restart that reuses the recorded plan sends its first request before that
package is even imported.
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from leviathan_tui.agent.fetch_records import meta_dir, write_json_atomic

DEFAULT_ENDPOINT = "https://huggingface.co"
USER_AGENT = f"leviathan-fetch/2; python/{platform.python_version()}"
PLAN_VERSION = 1
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
    """A failure the operator must act on (not retried)."""


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

    def identity(self) -> tuple[str, str, int, str]:
        """What must not change between the recorded plan and the Hub: path, size and content."""
        return (self.repo, self.path, self.size, self.sha256 or self.git_oid or "")


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def resolve_url(file: PlannedFile) -> str:
    return f"{endpoint()}/{file.repo}/resolve/{quote(file.revision, safe='')}/{quote(file.path)}"


def hub_headers() -> dict[str, str]:
    headers = {"user-agent": USER_AGENT, "accept-encoding": "identity"}
    token = os.environ.get("HF_TOKEN")
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


# --- the Hub listing -------------------------------------------------------------------------


def _api(endpoint_url: str | None = None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(
        endpoint=endpoint_url or os.environ.get("HF_ENDPOINT") or None,
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


# --- the plan recorded next to the files -----------------------------------------------------


def _plan_path(dest: Path) -> Path:
    return meta_dir(dest) / "plan.json"


def save_plan(dest: Path, request: dict[str, Any], files: list[PlannedFile]) -> None:
    """Record the plan, so a restart can send its first request before listing the Hub again."""
    write_json_atomic(
        _plan_path(dest),
        {
            "version": PLAN_VERSION,
            "request": request,
            "files": [{**asdict(f), "dest": str(f.dest)} for f in files],
        },
    )


def load_plan(dest: Path, request: dict[str, Any]) -> list[PlannedFile] | None:
    """The recorded plan if it was made for the same request (repos, revisions, globs), else None."""
    try:
        data = json.loads(_plan_path(dest).read_text())
        if data.get("version") != PLAN_VERSION or data.get("request") != request:
            return None
        return [
            PlannedFile(
                str(f["repo"]),
                str(f["revision"]),
                str(f["path"]),
                int(f["size"]),
                f.get("sha256"),
                f.get("git_oid"),
                Path(f["dest"]),
            )
            for f in data["files"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget_plan(dest: Path) -> None:
    _plan_path(dest).unlink(missing_ok=True)


def plan_differences(recorded: list[PlannedFile], listed: list[PlannedFile]) -> list[str]:
    """Files whose path, size or content differ between the recorded plan and a fresh listing."""
    old = {f.identity() for f in recorded}
    new = {f.identity() for f in listed}
    return sorted({i[1] for i in old ^ new})
