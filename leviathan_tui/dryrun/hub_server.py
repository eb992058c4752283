"""A local Hugging Face Hub endpoint for tests: enough of the API for huggingface_hub.

Serves model info, recursive trees with LFS sha256, and `resolve` downloads with ETag,
X-Repo-Commit, Content-Length, Accept-Ranges and 206 answers to Range. Unknown repos, revisions
and files answer 404 with the Hub's X-Error-Code. Every request is logged (with its Range) and
bytes served are counted per file. Faults: an outage (connections cut, then refused answers),
throttling, and a corrupted byte in a served file.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_MIN = 1024  # files at least this big are served as LFS files (sha256 in the tree)


@dataclass
class HubFile:
    path: str
    data_path: Path  # where the bytes live on disk
    size: int
    sha256: str
    git_oid: str

    @property
    def is_lfs(self) -> bool:
        return self.size >= LFS_MIN


@dataclass
class HubRepo:
    repo_id: str
    sha: str
    files: dict[str, HubFile] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    time: float


class HubStandIn:
    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[Request] = []
        self.bytes_served: dict[str, int] = {}  # downloads (whole files and open-ended resumes)
        self.prefix_bytes: dict[
            str, int
        ] = {}  # bounded Range reads of a file's start (header sizing)
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.cut_after_bytes: int | None = (
            None  # cut every transfer after this many bytes (while set)
        )
        self.rate_bytes_s: float | None = None
        self.corrupt: dict[str, int] = {}  # path -> how many more GETs serve one flipped byte
        self.server: ThreadingHTTPServer | None = None

    # --- content --------------------------------------------------------------------------

    def add_file(self, repo_id: str, path: str, source: Path) -> HubFile:
        repo = self.repos.setdefault(
            repo_id, HubRepo(repo_id, hashlib.sha1(repo_id.encode()).hexdigest())
        )
        data = source.read_bytes() if source.stat().st_size < 64 * 2**20 else None
        sha256 = hashlib.sha256()
        with open(source, "rb") as handle:
            while block := handle.read(8 << 20):
                sha256.update(block)
        size = source.stat().st_size
        git = hashlib.sha1(f"blob {size}\0".encode() + (data if data is not None else b""))
        hub_file = HubFile(path, source, size, sha256.hexdigest(), git.hexdigest())
        repo.files[path] = hub_file
        return hub_file

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def outage(self, seconds: float) -> None:
        """From now on for `seconds`: transfers in flight are cut, new requests are dropped."""
        self.down_until = time.monotonic() + seconds

    @property
    def down(self) -> bool:
        return time.monotonic() < self.down_until

    def ranges_for(self, path: str) -> list[str | None]:
        with self.lock:
            return [
                r.range
                for r in self.requests
                if r.method == "GET" and "/resolve/" in r.path and r.path.endswith("/" + path)
            ]


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def _json(self, code: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, code: str, message: str) -> None:
        self._json(404, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _record(self) -> bool:
        with self.hub.lock:
            self.hub.requests.append(
                Request(self.command, self.path, self.headers.get("Range"), time.time())
            )
        if self.hub.down:
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return False
        return True

    def do_HEAD(self) -> None:
        if self._record():
            self._dispatch()

    def do_GET(self) -> None:
        if self._record():
            self._dispatch()

    def _repo(self, parts: list[str]) -> tuple[HubRepo | None, list[str]]:
        for n in (2, 1):
            repo_id = "/".join(parts[:n])
            if repo_id in self.hub.repos:
                return self.hub.repos[repo_id], parts[n:]
        return None, parts

    def _dispatch(self) -> None:
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:2] == ["api", "models"]:
            repo, rest = self._repo(parts[2:])
            if repo is None:
                self._error("RepoNotFound", "Repository not found")
                return
            if not rest or rest[0] == "revision":
                if rest and rest[1] not in ("main", repo.sha):
                    self._error("RevisionNotFound", f"Invalid rev id: {rest[1]}")
                    return
                self._model_info(repo)
                return
            if rest[0] == "tree":
                if rest[1] not in ("main", repo.sha):
                    self._error("RevisionNotFound", f"Invalid rev id: {rest[1]}")
                    return
                self._tree(repo, "/".join(rest[2:]))
                return
        else:
            repo, rest = self._repo(parts)
            if repo is None:
                self._error("RepoNotFound", "Repository not found")
                return
            if len(rest) >= 3 and rest[0] == "resolve":
                if rest[1] not in ("main", repo.sha):
                    self._error("RevisionNotFound", f"Invalid rev id: {rest[1]}")
                    return
                self._resolve(repo, "/".join(rest[2:]))
                return
        self._json(404, {"error": f"stand-in does not implement {self.command} {url.path}"})

    def _model_info(self, repo: HubRepo) -> None:
        self._json(
            200,
            {
                "_id": repo.sha[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": repo.sha,
                "private": False,
                "siblings": [{"rfilename": f.path, "size": f.size} for f in repo.files.values()],
                "tags": [],
                "downloads": 0,
                "likes": 0,
            },
        )

    def _tree(self, repo: HubRepo, prefix: str) -> None:
        entries = []
        folders = set()
        for f in sorted(repo.files.values(), key=lambda x: x.path):
            if prefix and not f.path.startswith(prefix + "/"):
                continue
            if "/" in f.path:
                folders.add(f.path.rsplit("/", 1)[0])
            entry: dict[str, object] = {
                "type": "file",
                "oid": f.git_oid,
                "size": f.size,
                "path": f.path,
            }
            if f.is_lfs:
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
            entries.append(entry)
        entries += [
            {"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(folders)
        ]
        self._json(200, entries)

    def _resolve(self, repo: HubRepo, path: str) -> None:
        f = repo.files.get(path)
        if f is None:
            self._error("EntryNotFound", f"{path} does not exist at revision {repo.sha}")
            return
        etag = f'"{f.sha256 if f.is_lfs else f.git_oid}"'
        headers = {
            "X-Repo-Commit": repo.sha,
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if f.is_lfs:
            headers["X-Linked-Etag"] = etag
            headers["X-Linked-Size"] = str(f.size)
        start, end = 0, f.size - 1
        code = 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first) if first else 0
            end = min(int(last), f.size - 1) if last else f.size - 1
            if start >= f.size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{f.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            code = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        length = end - start + 1
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        corrupt_at = None
        with self.hub.lock:
            if self.hub.corrupt.get(path, 0) > 0:
                self.hub.corrupt[path] -= 1
                corrupt_at = f.size // 2
        sent = 0
        counter = (
            self.hub.prefix_bytes
            if (rng and start == 0 and end < f.size - 1)
            else self.hub.bytes_served
        )
        with open(f.data_path, "rb") as handle:
            handle.seek(start)
            position = start
            while sent < length:
                if self.hub.down or (
                    self.hub.cut_after_bytes is not None and sent >= self.hub.cut_after_bytes
                ):
                    self.close_connection = True
                    return
                chunk = handle.read(min(256 * 1024, length - sent))
                if not chunk:
                    break
                if corrupt_at is not None and position <= corrupt_at < position + len(chunk):
                    i = corrupt_at - position
                    chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                sent += len(chunk)
                position += len(chunk)
                with self.hub.lock:
                    counter[path] = counter.get(path, 0) + len(chunk)
                if self.hub.rate_bytes_s:
                    time.sleep(len(chunk) / self.hub.rate_bytes_s)
