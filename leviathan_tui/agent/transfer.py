"""One file over one or more Range connections into its partial file, resumable and hashed on
the way.

A supervisor thread per file resolves the file's CDN location, starts a connection, adds
connections up to the planner's target while the budget allows, and reports progress. A lone
connection streams the file to its end; with several, each asks for a piece of about PIECE_S
seconds of its own rate, in file order, so the contiguous prefix (what the hasher thread reads)
trails the newest byte by a few pieces at most. Connections read with `readinto` into their own
buffer, in chunks of about a tenth of a second, `pwrite` each at its offset and then record it in
the segment table's sidecar. `transfer()` returns when the last byte is on disk; `finish()` waits
for the digest, checks it and puts the file in place.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from dataclasses import dataclass

from leviathan_tui.agent.autoscale import ConnectionPlanner
from leviathan_tui.agent.fetch_events import CpuStats, Reporter
from leviathan_tui.agent.fetch_plan import FetchError, PlannedFile, hub_headers, resolve_url
from leviathan_tui.agent.fetch_records import (
    expected_digest,
    forget_partial,
    partial_path,
    segments_path,
    write_record,
)
from leviathan_tui.agent.hasher import PrefixHasher
from leviathan_tui.agent.ranged_http import (
    Connection,
    Location,
    LocationExpired,
    RangeIgnored,
    get_range,
    resolve,
)
from leviathan_tui.agent.segments import Segment, SegmentTable
from leviathan_tui.agent.throttle import ConnectionBudget, TokenBucket

TICK_S = 0.2
PIECE_S = 2.0  # with several connections per file, each asks for about this long a piece...
PIECE_FIRST = 32 << 20  # ...starting with this many bytes, before its rate is known
PIECE_MOST = 256 << 20
RETRY_EVENT_EVERY_S = 5.0
MAX_RESOLVES_WITHOUT_BYTES = 3
NETWORK_ERRORS = (OSError, http.client.HTTPException, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class TransferOptions:
    min_segment: int = 16 << 20
    buffer_size: int = 4 << 20
    retry_for_s: float = 1800.0
    verify: bool = True


class RunShared:
    """What every file's transfer shares within one run of the agent."""

    def __init__(
        self,
        options: TransferOptions,
        budget: ConnectionBudget,
        bucket: TokenBucket,
        planner: ConnectionPlanner,
        reporter: Reporter,
        stats: CpuStats,
    ) -> None:
        self.options = options
        self.budget = budget
        self.bucket = bucket
        self.planner = planner
        self.reporter = reporter
        self.stats = stats
        self.stop = threading.Event()  # set when the whole run must end (plan changed)


class _DiskError(FetchError):
    pass


class ChunkSizer:
    """Reads sized to about a tenth of a second of data: large on a fast connection (few writes
    and sidecar updates per byte), small on a slow one (progress stays fresh and a kill loses
    little of what was received)."""

    FAST_S = 0.05
    SLOW_S = 0.2
    SMALLEST = 64 << 10

    def __init__(self, largest: int) -> None:
        self.largest = max(self.SMALLEST, largest)
        self.size = min(self.largest, 256 << 10)

    def observe(self, nbytes: int, asked: int, seconds: float) -> None:
        if seconds < self.FAST_S and nbytes == asked:
            self.size = min(self.largest, self.size * 2)
        elif seconds > self.SLOW_S:
            self.size = max(self.SMALLEST, self.size // 2)


def _pwrite_all(fd: int, data: memoryview, offset: int, path: str) -> None:
    try:
        while data:
            n = os.pwrite(fd, data, offset)
            data = data[n:]
            offset += n
    except OSError as err:
        raise _DiskError(f"cannot write {path}: {err.strerror}") from None


def load_table(file: PlannedFile) -> SegmentTable:
    """The saved segments. Without a sidecar, a partial file left by an agent without segments
    counts as one segment written from 0; a sidecar for other content or no partial file left
    means starting over."""
    partial = partial_path(file)
    sidecar = segments_path(file)
    if sidecar.exists():
        table = SegmentTable.load(sidecar, file.size, expected_digest(file))
        if table is not None and partial.exists():
            return table
        partial.unlink(missing_ok=True)
        return SegmentTable.fresh(file.size)
    table = SegmentTable.fresh(file.size)
    try:
        on_disk = partial.stat().st_size
    except OSError:
        return table
    if on_disk <= file.size:
        table.segments[0].done = on_disk  # written front to back, as the previous agent did
    else:
        partial.unlink()
    return table


def bytes_on_disk(file: PlannedFile) -> int:
    return load_table(file).written() if partial_path(file).exists() else 0


class FileTransfer:
    def __init__(self, file: PlannedFile, shared: RunShared) -> None:
        self.file = file
        self.shared = shared
        self.options = shared.options
        self.partial = partial_path(file)
        self.sidecar = segments_path(file)
        self.digest_expected = expected_digest(file)
        self.table = SegmentTable.fresh(file.size)
        self.fd = -1
        self._lock = threading.Lock()
        self._resolve_lock = threading.Lock()
        self._active = 0
        self._error: FetchError | None = None
        self._failed = threading.Event()
        self._location: Location | None = None
        self._resolves_without_bytes = 0
        self._outage_since: float | None = None
        self._retry_emitted = (0, 0.0)
        self._connections: set[Connection] = set()
        self._landed = 0.0
        self.hasher: PrefixHasher | None = None

    # --- the whole file ------------------------------------------------------------------

    def run(self) -> None:
        """The whole file: bytes, then the digest check and the record."""
        self.transfer()
        self.finish()

    def transfer(self) -> None:
        """Every byte on disk (the hash may still be catching up: see finish())."""
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self.file.dest.parent.mkdir(parents=True, exist_ok=True)
        self.table = load_table(self.file)
        try:
            self.table.attach(self.sidecar, self.digest_expected)  # before the first byte
            self.fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            self.table.detach()
            raise FetchError(f"cannot write in {self.partial.parent}: {err.strerror}") from None
        written = self.table.written()
        if written:
            self.shared.reporter.event(
                "resume",
                file=self.file.name,
                offset=self.table.prefix(),
                total=self.file.size,
                done=written,
                segments=[list(p) for p in self.table.positions()],
            )
        if self.options.verify:
            self.hasher = PrefixHasher(self.partial, self.file, self.table).start()
        try:
            self._transfer()
            self._landed = time.monotonic()
            os.ftruncate(self.fd, self.file.size)  # a longer stale partial file ends here
        except BaseException as err:
            self._close()
            if isinstance(err, OSError):
                raise FetchError(f"{self.partial}: {err.strerror or err}") from None
            raise

    def finish(self) -> None:
        """Wait for the digest, check it, move the file into place, record it."""
        try:
            digest = self.hasher.digest() if self.hasher is not None else ""
            hash_wait_s = time.monotonic() - self._landed
            os.fsync(self.fd)
        except OSError as err:
            raise FetchError(f"{self.partial}: {err.strerror or err}") from None
        finally:
            self._close()
        verified = self.options.verify
        self.shared.reporter.progress(
            self.file.name,
            self.file.size,
            self.file.size,
            force=True,
            connections=0,
            hashed=self.file.size if verified else None,
        )
        if verified and digest != self.digest_expected:
            forget_partial(self.file)
            raise FetchError(
                f"{self.file.name}: checksum mismatch (got {digest[:16]}…, the Hub says {self.digest_expected[:16]}…)"
            )
        os.replace(self.partial, self.file.dest)
        self.sidecar.unlink(missing_ok=True)
        write_record(self.file, digest if verified else self.digest_expected)
        self.shared.reporter.event(
            "file_done",
            file=self.file.name,
            size=self.file.size,
            digest=digest,
            verified=verified,
            hash_wait_s=round(hash_wait_s, 3),
        )

    def _close(self) -> None:
        if self.hasher is not None:
            self.hasher.stop()
            self.shared.stats.add("hashing", self.hasher.cpu_s)
            self.hasher = None
        self.table.detach()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _fail(self, error: FetchError) -> None:
        with self._lock:
            if self._error is None:
                self._error = error
        self._failed.set()

    # --- supervisor ----------------------------------------------------------------------

    def _transfer(self) -> None:
        if self.table.complete():
            return
        self._location = self._resolve_with_retries()
        workers = [self._start_worker(extra=False)]
        while any(w.is_alive() for w in workers):
            workers = [w for w in workers if w.is_alive()]
            if self.shared.stop.is_set():
                self._fail(FetchError("stopped"))
            if not self._failed.is_set():
                while (
                    self._active < self.shared.planner.target() and self.shared.budget.try_acquire()
                ):
                    segment = self._claim(PIECE_FIRST)
                    if segment is None:
                        self.shared.budget.release()
                        break
                    workers.append(self._start_worker(extra=True, segment=segment))
            self.shared.reporter.progress(
                self.file.name,
                self.table.written(),
                self.file.size,
                connections=self._active,
                hashed=self.hasher.hashed if self.hasher is not None else None,
            )
            if self._failed.is_set():
                with self._lock:
                    for conn in self._connections:
                        conn.abort()  # a read blocked on a silent server ends now
                time.sleep(TICK_S)
            else:
                self._failed.wait(TICK_S)
        if self._error is not None:
            raise self._error
        if not self.table.complete():
            raise FetchError(f"{self.file.name}: every connection ended before the last byte")

    def _claim(self, piece: int) -> Segment | None:
        """The next piece for a connection; a lone connection (one per file planned) streams on."""
        return self.table.claim(
            piece,
            self.options.min_segment,
            reserve=self.options.buffer_size,
            whole=self.shared.planner.target() <= 1,
        )

    def _start_worker(self, extra: bool, segment: Segment | None = None) -> threading.Thread:
        if segment is None:
            segment = self._claim(PIECE_FIRST)
        with self._lock:
            self._active += 1
        thread = threading.Thread(
            target=self._worker, args=(segment, extra), name=f"get {self.file.name}", daemon=True
        )
        thread.start()
        return thread

    # --- connections ---------------------------------------------------------------------

    def _worker(self, segment: Segment | None, extra: bool) -> None:
        with self.shared.stats.thread("transfer"):
            self._work(segment, extra)

    def _work(self, segment: Segment | None, extra: bool) -> None:
        conn = Connection()
        with self._lock:
            self._connections.add(conn)
        buffer = memoryview(bytearray(self.options.buffer_size))
        sizer = ChunkSizer(self.options.buffer_size)
        piece = PIECE_FIRST
        try:
            while segment is not None and not self._failed.is_set():
                started, before = time.monotonic(), segment.done
                try:
                    self._fetch_segment(conn, segment, buffer, sizer)
                finally:
                    self.table.release(segment)
                rate = (segment.done - before) / max(1e-3, time.monotonic() - started)
                piece = int(min(PIECE_MOST, max(self.options.min_segment, rate * PIECE_S)))
                if extra and self._active > self.shared.planner.target():
                    break  # the planner went back to fewer connections
                segment = self._claim(piece)
        except FetchError as err:
            self._fail(err)
        except Exception as err:  # a bug must still end the file with a message
            self._fail(FetchError(f"{self.file.name}: {type(err).__name__}: {err}"))
        finally:
            conn.close()
            with self._lock:
                self._active -= 1
                self._connections.discard(conn)
            if extra:
                self.shared.budget.release()

    def _fetch_segment(
        self, conn: Connection, segment: Segment, view: memoryview, sizer: ChunkSizer
    ) -> None:
        attempt = 0
        while segment.remaining > 0 and not self._failed.is_set():
            location = self._location
            assert location is not None
            try:
                response = get_range(
                    conn, location, segment.position, segment.end - 1, self.file.size
                )
                got = self._drain(conn, response, segment, view, sizer)
                if got:
                    attempt = 0
                if segment.remaining > 0 and response.isclosed():
                    if not got:
                        raise ConnectionError(
                            f"connection closed at {segment.position} of {self.file.size} bytes"
                        )
            except LocationExpired as err:
                conn.close()
                self._resolve_again(location, str(err))
            except RangeIgnored:
                raise FetchError(
                    f"{self.file.name}: the server ignores Range requests, so the file cannot be resumed"
                ) from None
            except FetchError:
                raise
            except NETWORK_ERRORS as err:
                conn.close()
                attempt += 1
                self._network_error(err, attempt)

    def _drain(
        self,
        conn: Connection,
        response: http.client.HTTPResponse,
        segment: Segment,
        view: memoryview,
        sizer: ChunkSizer,
    ) -> int:
        got = 0
        path = str(self.partial)
        while True:
            want = self.table.want(segment, sizer.size)
            if want == 0:
                if not response.isclosed():
                    conn.close()  # the segment was split below what this response carries
                return got
            started = time.monotonic()
            n = response.readinto(view[:want])
            if not n:
                return got
            sizer.observe(n, want, time.monotonic() - started)
            position = segment.position
            _pwrite_all(self.fd, view[:n], position, path)
            if got == 0:
                self._outage_since = None
                self._resolves_without_bytes = 0
                self.shared.reporter.first_byte(self.file.name, position)
            got += n
            self.shared.planner.count(n)
            try:
                self.table.advance(segment, n)
            except OSError as err:
                raise _DiskError(
                    f"cannot record progress in {self.sidecar}: {err.strerror}"
                ) from None
            self.shared.bucket.take(n)

    # --- resolving and outages -----------------------------------------------------------

    def _resolve_with_retries(self) -> Location:
        attempt = 0
        conn = Connection()
        try:
            while True:
                try:
                    location = resolve(conn, resolve_url(self.file), hub_headers())
                except NETWORK_ERRORS as err:
                    attempt += 1
                    self._network_error(err, attempt)
                    conn.close()
                    continue
                if location.linked_size is not None and location.linked_size != self.file.size:
                    raise FetchError(
                        f"{self.file.name}: the Hub now says {location.linked_size} bytes, the plan says {self.file.size}"
                    )
                self._outage_since = None
                return location
        finally:
            conn.close()

    def _resolve_again(self, expired: Location, why: str) -> None:
        with self._resolve_lock:
            if self._location is not expired:
                return  # another connection already did
            self._resolves_without_bytes += 1
            if self._resolves_without_bytes > MAX_RESOLVES_WITHOUT_BYTES:
                raise FetchError(
                    f"{self.file.name}: the download location keeps refusing ({why}) after resolving it again"
                )
            self._location = self._resolve_with_retries()

    def _network_error(self, err: BaseException, attempt: int) -> None:
        """Ride out an outage up to --retry-for seconds, backing off; then fail the file."""
        now = time.monotonic()
        with self._lock:
            if self._outage_since is None:
                self._outage_since = now
            down_for = now - self._outage_since
        if down_for > self.options.retry_for_s:
            raise FetchError(f"{self.file.name}: network down for {down_for:.0f} s: {err}")
        delay = min(30.0, 0.5 * 2 ** min(attempt, 6))
        with self._lock:
            last_attempt, last_at = self._retry_emitted
            speak = attempt > last_attempt or now - last_at >= RETRY_EVENT_EVERY_S
            if speak:
                self._retry_emitted = (attempt, now)
        if speak:
            self.shared.reporter.event(
                "retry",
                file=self.file.name,
                attempt=attempt,
                error=str(err)[:200] or type(err).__name__,
                delay=delay,
                done=self.table.written(),
            )
        if self._failed.wait(delay) or self.shared.stop.is_set():
            raise FetchError("stopped")
