"""The byte ranges of one partial file, how far each one is on disk, and how to share them out.

A file is tiled by segments `[start, end)`; bytes `[start, start + done)` of each are written at
their final offsets in the one `.part` file. A connection works on one segment; a connection with
nothing left takes an untouched segment or splits the largest unfinished one in two (the owner of
the first half stops at the new end).

The table lives in a sidecar JSON beside the `.part` file, padded to one page and rewritten in
place with a single `pwrite` after every chunk, once the chunk itself is written: a write of one
page is never torn by kill -9, so after a kill each segment continues from the bytes that are
really on disk (at most one chunk per connection is fetched twice). A table that outgrows a page
is written to a temp file and renamed instead. Against power loss the file's sha256 is the
safeguard: a range the sidecar counts but the disk lost fails the hash and the file is fetched
again. (The same shape as aria2's control file: one sparse file plus ranges, rather than a file
per segment or a block bitmap: the state stays a few lines however large the file, and the
contiguous prefix the hasher follows is one number to compute.)
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from leviathan_tui.agent.fetch_records import write_json_atomic

ALIGN = 1 << 20  # split points fall on MiB boundaries
SIDECAR_VERSION = 1
PAGE = 4096


@dataclass
class Segment:
    start: int
    end: int  # exclusive; may shrink while a connection works on it (a split)
    done: int = 0
    active: bool = False

    @property
    def position(self) -> int:
        return self.start + self.done

    @property
    def remaining(self) -> int:
        return self.end - self.position


class SegmentTable:
    def __init__(self, size: int, segments: list[Segment]) -> None:
        self.size = size
        self.segments = segments
        self.changed = threading.Condition()  # notified whenever bytes land or segments change
        self._sidecar: Path | None = None
        self._digest = ""
        self._fd: int | None = None

    @classmethod
    def fresh(cls, size: int) -> SegmentTable:
        return cls(size, [Segment(0, size)])

    @classmethod
    def load(cls, path: Path, size: int, digest: str) -> SegmentTable | None:
        """The saved table, or None when missing, unreadable or made for other content."""
        try:
            data = json.loads(path.read_text())
            if data["version"] != SIDECAR_VERSION or data["size"] != size:
                return None
            if data["digest"] != digest:
                return None
            segments = [Segment(int(s), int(e), int(d)) for s, e, d in data["segments"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(size, segments) if _tiles(segments, size) else None

    def attach(self, path: Path, digest: str) -> None:
        """Keep the sidecar at `path` up to date from now on, starting with the current state."""
        self._sidecar = path
        self._digest = digest
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        with self.changed:
            self._save()

    def detach(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _save(self) -> None:
        """Write the sidecar (the caller holds the lock). OSError goes to the caller."""
        if self._fd is None or self._sidecar is None:
            return
        rows = _merged(sorted(self.segments, key=lambda s: s.start))
        data = {"version": SIDECAR_VERSION, "size": self.size, "digest": self._digest}
        text = json.dumps({**data, "segments": rows}, separators=(",", ":")).encode()
        if len(text) <= PAGE:
            os.pwrite(self._fd, text.ljust(PAGE), 0)
            return
        write_json_atomic(self._sidecar, {**data, "segments": rows})
        os.close(self._fd)
        self._fd = os.open(self._sidecar, os.O_RDWR)

    # --- sharing out ---------------------------------------------------------------------

    def claim(
        self, piece: int, min_segment: int, reserve: int = 0, whole: bool = False
    ) -> Segment | None:
        """Work for one more connection, in file order so the hashed prefix keeps up: a piece of
        `piece` bytes from the front of the first unfinished idle segment (all of it when
        `whole`: a lone connection streams to the end). With nothing idle, the busy segment with
        most left is cut behind what its owner still has to read (at least `reserve` bytes: its
        read in flight; at most half of what it has left) and the claim takes a piece of the
        rest. None when nothing is left worth a connection."""
        with self.changed:
            segment = self._take_idle(piece, min_segment, whole)
            if segment is None and self._cut_busy(piece, min_segment, reserve):
                segment = self._take_idle(piece, min_segment, whole=False)
            if segment is not None:
                self._save()
                self.changed.notify_all()
            return segment

    def _take_idle(self, piece: int, min_segment: int, whole: bool) -> Segment | None:
        idle = [s for s in self.segments if not s.active and s.remaining > 0]
        if not idle:
            return None
        chosen = min(idle, key=lambda s: s.start)
        cut = _align_up(chosen.position + max(piece, min_segment))
        if not whole and chosen.end - cut >= min_segment:
            self.segments.append(Segment(cut, chosen.end))
            chosen.end = cut
        chosen.active = True
        return chosen

    def _cut_busy(self, piece: int, min_segment: int, reserve: int) -> bool:
        busy = [s for s in self.segments if s.active and s.remaining > 0]
        if not busy:
            return False
        victim = max(busy, key=lambda s: s.remaining)
        keep = max(min(piece, victim.remaining // 2), reserve, min_segment)
        cut = _align_up(victim.position + keep)
        if victim.end - cut < min_segment:
            return False
        self.segments.append(Segment(cut, victim.end))
        victim.end = cut
        return True

    def release(self, segment: Segment) -> None:
        with self.changed:
            segment.active = False
            self.changed.notify_all()

    def advance(self, segment: Segment, nbytes: int) -> bool:
        """Count `nbytes` just written at the segment's position and record it in the sidecar;
        False once the segment is finished (its end may have moved below what was just written:
        those bytes are the next segment's own content, written twice)."""
        with self.changed:
            segment.done = min(segment.done + nbytes, segment.end - segment.start)
            self._save()
            self.changed.notify_all()
            return segment.remaining > 0

    def want(self, segment: Segment, limit: int) -> int:
        """How many bytes to read next for this segment, at most `limit`."""
        with self.changed:
            return max(0, min(limit, segment.remaining))

    # --- reading the state ---------------------------------------------------------------

    def written(self) -> int:
        with self.changed:
            return sum(s.done for s in self.segments)

    def prefix(self) -> int:
        """End of the contiguous run of written bytes from offset 0: what the hasher may read."""
        with self.changed:
            return self._prefix()

    def _prefix(self) -> int:
        end = 0
        for segment in sorted(self.segments, key=lambda s: s.start):
            if segment.start != end:
                break
            end = segment.position
            if segment.remaining > 0:
                break
        return end

    def unfinished(self) -> int:
        with self.changed:
            return sum(1 for s in self.segments if s.remaining > 0)

    def complete(self) -> bool:
        with self.changed:
            return all(s.remaining == 0 for s in self.segments)

    def positions(self) -> list[tuple[int, int]]:
        """(position, end) of every unfinished segment: where each one continues."""
        with self.changed:
            return sorted((s.position, s.end) for s in self.segments if s.remaining > 0)


def _align_up(offset: int) -> int:
    return offset + (-offset) % ALIGN


def _tiles(segments: list[Segment], size: int) -> bool:
    end = 0
    for segment in sorted(segments, key=lambda s: s.start):
        empty = segment.end <= segment.start
        if segment.start != end or (empty and size > 0):
            return False
        if not 0 <= segment.done <= segment.end - segment.start:
            return False
        end = segment.end
    return end == size


def _merged(segments: list[Segment]) -> list[list[int]]:
    """Rows for the sidecar; a finished segment absorbs the one after it (it stays contiguous)."""
    rows: list[list[int]] = []
    for s in segments:
        if rows and rows[-1][2] == rows[-1][1] - rows[-1][0]:
            rows[-1] = [rows[-1][0], s.end, rows[-1][2] + s.done]
        else:
            rows.append([s.start, s.end, s.done])
    return rows
