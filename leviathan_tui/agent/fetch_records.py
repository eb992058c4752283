"""Where the fetch agent keeps its state next to the files: `<dir>/.leviathan/`.

- `done/<name>.json`: a completed, verified file (size + digest); trusted without hashing again.
- `partial/<name>.part`: the bytes of a file being downloaded, at their final offsets.
- `partial/<name>.segments.json`: which byte ranges of the `.part` file are on disk.
- `plan.json`: the plan of the last run; `writer.lock`: who is writing this directory.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leviathan_tui.agent.fetch_plan import PlannedFile

META = ".leviathan"


def meta_dir(directory: Path) -> Path:
    return directory / META


def record_path(file: PlannedFile) -> Path:
    return meta_dir(file.dest.parent) / "done" / f"{file.name}.json"


def partial_path(file: PlannedFile) -> Path:
    return meta_dir(file.dest.parent) / "partial" / f"{file.name}.part"


def segments_path(file: PlannedFile) -> Path:
    return meta_dir(file.dest.parent) / "partial" / f"{file.name}.segments.json"


def expected_digest(file: PlannedFile) -> str:
    return file.sha256 or file.git_oid or ""


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temp file in the same directory, then rename: a kill leaves the old or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)


def is_complete(file: PlannedFile) -> bool:
    """Size + recorded hash: a completed, verified file is never hashed or fetched again."""
    try:
        record = json.loads(record_path(file).read_text())
        size = file.dest.stat().st_size
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and size == file.size
        and record.get("digest") == expected_digest(file)
        and record.get("size") == file.size
    )


def write_record(file: PlannedFile, digest: str) -> None:
    write_json_atomic(
        record_path(file),
        {
            "size": file.size,
            "digest": digest,
            "repo": file.repo,
            "revision": file.revision,
            "path": file.path,
        },
    )


def forget_partial(file: PlannedFile) -> None:
    partial_path(file).unlink(missing_ok=True)
    segments_path(file).unlink(missing_ok=True)
