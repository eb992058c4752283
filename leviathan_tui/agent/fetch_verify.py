"""Checks of files already on disk: hash every file again (in parallel), and the GGUF shard set."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed

from leviathan_tui.agent._emit import emit
from leviathan_tui.agent.fetch_plan import PlannedFile
from leviathan_tui.agent.fetch_records import expected_digest, record_path, write_record
from leviathan_tui.agent.hasher import hash_file


def verify_files(files: list[PlannedFile], workers: int) -> list[str]:
    """Full re-check: hash every file in parallel (hashlib releases the GIL), then check GGUF headers."""
    bad: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(verify_one, f): f for f in files}
        for future in as_completed(futures):
            file = futures[future]
            problem = future.result()
            if problem:
                bad.append(file.name)
                record_path(file).unlink(missing_ok=True)  # the next run fetches this file again
                emit("corrupt", file=file.name, reason=problem)
            else:
                emit("verified", file=file.name)
    present = [f for f in files if f.name.endswith(".gguf") and f.dest.exists()]
    bad.extend(n for n in check_gguf_set(present) if n not in bad)
    return bad


def verify_one(file: PlannedFile) -> str:
    try:
        size = file.dest.stat().st_size
    except OSError:
        return "missing"
    if size != file.size:
        return f"size {size}, expected {file.size}"
    digest = hash_file(file.dest, file)
    if digest != expected_digest(file):
        return f"checksum mismatch ({digest[:16]}…)"
    write_record(file, digest)
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
