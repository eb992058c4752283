"""Merge a split GGUF into one file for vLLM, whose in-tree GGUF loader reads a single file.
Runs in a pod whose image has llama.cpp's `llama-gguf-split` (the `full` image keeps it in /app;
`Node.merge_gguf` runs it).

`--first-shard PATH --out PATH [--reserve BYTES]`

llama.cpp build 11434 `tools/gguf-split/gguf-split.cpp` (`gguf_merge`): the first shard's
`split.count` names the others (`<prefix>-NNNNN-of-NNNNN.gguf`), and an existing output file is
never overwritten. So the merge writes `<out>.partial`, renames it once complete and records the
shards it came from in `<out>.done`: a re-run with the same shards does nothing, a run after an
interruption starts again. Before writing, the free space must hold the whole merged file plus
the reserve, or the merge is refused with both figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from leviathan_tui.agent._emit import emit, milestone, result
from leviathan_tui.agent.node import current

SHARD = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")


def shard_paths(first: str) -> list[str] | None:
    match = SHARD.match(os.path.basename(first))
    if match is None or int(match["index"]) != 1:
        return None
    count = int(match["count"])
    directory = os.path.dirname(first)
    return [
        os.path.join(directory, f"{match['prefix']}-{i:05d}-of-{count:05d}.gguf")
        for i in range(1, count + 1)
    ]


def identity(paths: list[str]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        st = os.stat(path)
        out.append({"name": os.path.basename(path), "size": st.st_size, "mtime": int(st.st_mtime)})
    return out


def read_done(marker: str) -> Any:
    try:
        with open(marker, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_done(marker: str, shards: list[dict[str, Any]]) -> None:
    with open(marker + ".tmp", "w", encoding="utf-8") as handle:
        json.dump({"shards": shards}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(marker + ".tmp", marker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leviathan-merge", description=__doc__)
    parser.add_argument("--first-shard", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--reserve", type=int, default=0, help="bytes to leave free")
    args = parser.parse_args(argv)

    paths = shard_paths(args.first_shard)
    if paths is None:
        return result(
            "refused", f"{args.first_shard} is not the first shard of a split GGUF (-00001-of-N)"
        )
    missing = [os.path.basename(p) for p in paths if not os.path.isfile(p)]
    if missing:
        return result("refused", f"shards missing beside the first: {', '.join(missing)}")
    shards = identity(paths)
    node = current()
    total = sum(node.file_size(p) for p in paths)
    marker = args.out + ".done"
    done = read_done(marker)
    if os.path.isfile(args.out) and isinstance(done, dict) and done.get("shards") == shards:
        milestone(f"ALREADY MERGED {args.out}")
        return result("done", path=args.out, bytes=node.file_size(args.out), merged=False)

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    partial = args.out + ".partial"
    for stale in (partial, args.out, marker):  # an interrupted or outdated merge starts again
        if os.path.exists(stale):
            os.unlink(stale)
    free, _ = node.space(os.path.dirname(args.out) or ".")
    need = total + args.reserve
    emit("space", free=free, need=need, merged=total, reserve=args.reserve)
    if free < need:
        return result(
            "refused",
            f"the merged file needs {total} bytes plus {args.reserve} kept free; "
            f"{free} bytes are free on {os.path.dirname(args.out)}",
            free=free,
            need=need,
        )
    milestone(f"MERGING {len(paths)} shards into {args.out}")
    tail: list[str] = []

    def on_line(line: str) -> None:
        tail[:] = (tail + [line])[-3:]
        emit("log", line=line)

    code = node.merge_gguf(args.first_shard, partial, on_line)
    if code != 0:
        if os.path.exists(partial):
            os.unlink(partial)
        return result("failed", f"llama-gguf-split --merge exited {code}: {' | '.join(tail)}")
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, args.out)
    write_done(marker, shards)
    size = node.file_size(args.out)
    milestone(f"MERGED {args.out} ({size} bytes)")
    return result("done", path=args.out, bytes=size, merged=True)


if __name__ == "__main__":
    sys.exit(main())
