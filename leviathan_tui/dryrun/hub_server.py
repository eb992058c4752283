"""A local Hugging Face Hub endpoint, the dry run's and the tests': enough of the API for
huggingface_hub, and the Hub's download path: `/resolve/` redirects LFS files to a CDN on another origin.

Modelled on what huggingface_hub 2.4.0 expects (src/huggingface_hub/file_download.py,
`get_hf_file_metadata` and `_get_metadata_or_catch_error`; src/huggingface_hub/utils/_http.py,
`_httpx2_follow_hub_redirects_with_backoff`): a HEAD or GET on `/resolve/<rev>/<path>` of an LFS
file answers 302 with the metadata on the redirect itself (`X-Repo-Commit`, `X-Linked-Etag` = the
sha256, `X-Linked-Size`, `ETag`) and `Location` = a signed CDN URL (`Expires`, `Signature`) on
another origin, which the client fetches without the token. Small (non-LFS) files answer a
same-origin relative redirect to `/api/resolve-cache/...`, which serves them with `ETag` = the
git blob id. The CDN serves Range requests (206, `Content-Range`), refuses an expired or forged
signature with 403 (as a signed CloudFront URL does), and has an ETag of its own.

The CDN is built in (a second server on 127.0.0.1), or external: `HubStandIn(cdn_url=...)`
redirects there instead, and `cdn_files()` lists what that server must hold at which path (the
download benchmark puts nginx there).

Every request is logged (server, Range, the file it served, whether it carried a token) and
bytes served are counted per file. Faults: an outage (connections cut, then requests dropped),
a per-connection rate, transfers cut after N bytes, a corrupted byte in a served file, and short
URL lifetimes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

LFS_MIN = 1024  # files at least this big are served as LFS files (sha256 in the tree)
AGENT_UA = (
    "leviathan-fetch"  # downloads by the fetch agent; other bounded reads from 0 are header reads
)


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
    server: str = "hub"  # "hub" or "cdn"
    file: str | None = None  # repo path of the file whose bytes this request asked for
    token: bool = False
    status: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up (a killed agent) is normal here, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class HubStandIn:
    def __init__(self, cdn_url: str | None = None, url_lifetime_s: float = 3600.0) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[Request] = []
        self.bytes_served: dict[str, int] = {}  # downloads (whole files and ranges)
        self.prefix_bytes: dict[str, int] = {}  # bounded reads of a file's start (header sizing)
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.cut_after_bytes: int | None = None  # cut every transfer after this many bytes
        self.rate_bytes_s: float | None = None  # per connection
        self.corrupt: dict[str, int] = {}  # path -> how many more GETs serve one flipped byte
        self.url_lifetime_s = url_lifetime_s
        self.external_cdn = cdn_url.rstrip("/") if cdn_url else None
        self.server: _Server | None = None
        self.cdn_server: _Server | None = None
        self._secret = os.urandom(16)

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

    def cdn_path(self, repo: HubRepo, hub_file: HubFile) -> str:
        """Content-addressed, as the Hub's CDN URLs are: /repos/<aa>/<bb>/<repo hash>/<sha256>."""
        repo_hash = hashlib.sha256(repo.repo_id.encode()).hexdigest()
        return f"/repos/{repo_hash[:2]}/{repo_hash[2:4]}/{repo_hash}/{hub_file.sha256}"

    def cdn_files(self) -> dict[str, Path]:
        """Every LFS file's CDN path and where its bytes are (what an external CDN must serve)."""
        return {
            self.cdn_path(repo, f): f.data_path
            for repo in self.repos.values()
            for f in repo.files.values()
            if f.is_lfs
        }

    def _by_cdn_path(self, path: str) -> HubFile | None:
        for repo in self.repos.values():
            for f in repo.files.values():
                if f.is_lfs and self.cdn_path(repo, f) == path:
                    return f
        return None

    def _signature(self, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{path}:{expires}".encode(), "sha256").hexdigest()[:32]

    def signed_url(self, repo: HubRepo, hub_file: HubFile) -> str:
        path = self.cdn_path(repo, hub_file)
        expires = math.ceil(time.time() + self.url_lifetime_s)
        name = quote(hub_file.path.rsplit("/", 1)[-1])
        disposition = quote(f"inline; filename*=UTF-8''{name}; filename=\"{name}\";", safe="")
        return (
            f"{self.cdn_url}{path}?response-content-disposition={disposition}"
            f"&Expires={expires}&Signature={self._signature(path, expires)}&Key-Pair-Id=STANDIN"
        )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        handler = type("Handler", (_HubHandler,), {"hub": self})
        self.server = _Server(("127.0.0.1", port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        if self.external_cdn is None:
            cdn_handler = type("CdnHandler", (_CdnHandler,), {"hub": self})
            self.cdn_server = _Server(("127.0.0.1", 0), cdn_handler)
            threading.Thread(target=self.cdn_server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        if self.external_cdn is not None:
            return self.external_cdn
        assert self.cdn_server is not None
        return f"http://127.0.0.1:{self.cdn_server.server_address[1]}"

    def stop(self) -> None:
        for server in (self.server, self.cdn_server):
            if server:
                server.shutdown()
                server.server_close()

    def outage(self, seconds: float) -> None:
        """From now on for `seconds`: transfers in flight are cut, new requests are dropped."""
        self.down_until = time.monotonic() + seconds

    @property
    def down(self) -> bool:
        return time.monotonic() < self.down_until

    # --- what happened --------------------------------------------------------------------

    def downloads(self, path: str) -> list[Request]:
        """GET requests that asked for bytes of the file at repo path `path`."""
        with self.lock:
            return [r for r in self.requests if r.method == "GET" and r.file == path]

    def ranges_for(self, path: str) -> list[str | None]:
        return [r.range for r in self.downloads(path)]

    def cdn_requests(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.server == "cdn"]


class _Base(BaseHTTPRequestHandler):
    hub: HubStandIn
    protocol_version = "HTTP/1.1"
    server_name = "hub"

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def _record(self) -> Request | None:
        request = Request(
            self.command,
            self.path,
            self.headers.get("Range"),
            time.time(),
            self.server_name,
            token="authorization" in (k.lower() for k in self.headers.keys()),
        )
        with self.hub.lock:
            self.hub.requests.append(request)
        if self.hub.down:
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return None
        return request

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

    def _send_file(self, request: Request, path: str, f: HubFile, headers: dict[str, str]) -> None:
        """Bytes of `f` with Range support; faults (outage, cut, rate, corruption) applied."""
        request.file = path
        start, end = 0, f.size - 1
        code = 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first) if first else 0
            end = min(int(last), f.size - 1) if last else f.size - 1
            if start >= f.size:
                request.status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{f.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            code = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        length = end - start + 1
        request.status = code
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        corrupt_at = f.size // 2  # flipped while self.hub.corrupt[path] > 0, counted when sent
        header_read = bool(rng) and start == 0 and end < f.size - 1
        header_read = header_read and AGENT_UA not in (self.headers.get("User-Agent") or "")
        counter = self.hub.prefix_bytes if header_read else self.hub.bytes_served
        sent = 0
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
                if position <= corrupt_at < position + len(chunk):
                    with self.hub.lock:
                        flip = self.hub.corrupt.get(path, 0) > 0
                        if flip:
                            self.hub.corrupt[path] -= 1
                    if flip:
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


class _HubHandler(_Base):
    def do_HEAD(self) -> None:
        request = self._record()
        if request is not None:
            self._dispatch(request)

    do_GET = do_HEAD

    def _error(self, code: str, message: str) -> None:
        self._json(404, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _repo(self, parts: list[str]) -> tuple[HubRepo | None, list[str]]:
        for n in (2, 1):
            repo_id = "/".join(parts[:n])
            if repo_id in self.hub.repos:
                return self.hub.repos[repo_id], parts[n:]
        return None, parts

    def _revision_ok(self, repo: HubRepo, revision: str) -> bool:
        if revision in ("main", repo.sha):
            return True
        self._error("RevisionNotFound", f"Invalid rev id: {revision}")
        return False

    def _dispatch(self, request: Request) -> None:
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:3] == ["api", "resolve-cache", "models"]:
            repo, rest = self._repo(parts[3:])
            if repo is not None and len(rest) >= 2 and self._revision_ok(repo, rest[0]):
                self._serve_small(request, repo, "/".join(rest[1:]))
            elif repo is None:
                self._error("RepoNotFound", "Repository not found")
            return
        if parts[:2] == ["api", "models"]:
            repo, rest = self._repo(parts[2:])
            if repo is None:
                self._error("RepoNotFound", "Repository not found")
                return
            if not rest or rest[0] == "revision":
                if not rest or self._revision_ok(repo, rest[1]):
                    self._model_info(repo)
                return
            if rest[0] == "tree":
                if self._revision_ok(repo, rest[1]):
                    self._tree(repo, "/".join(rest[2:]))
                return
        else:
            repo, rest = self._repo(parts)
            if repo is None:
                self._error("RepoNotFound", "Repository not found")
                return
            if len(rest) >= 3 and rest[0] == "resolve":
                if self._revision_ok(repo, rest[1]):
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
        if not f.is_lfs:
            target = f"/api/resolve-cache/models/{repo.repo_id}/{repo.sha}/{quote(path)}"
            self._redirect(307, f"{target}?etag=%22{f.git_oid}%22", {"X-Repo-Commit": repo.sha})
            return
        self._redirect(
            302,
            self.hub.signed_url(repo, f),
            {
                "X-Repo-Commit": repo.sha,
                "X-Linked-Etag": f'"{f.sha256}"',
                "X-Linked-Size": str(f.size),
                "ETag": f'W/"{f.git_oid[:20]}"',  # the pointer's, not the file's
                "Accept-Ranges": "bytes",
            },
        )

    def _redirect(self, code: int, location: str, headers: dict[str, str]) -> None:
        body = f"Found. Redirecting to {location}".encode()
        self.send_response(code)
        self.send_header("Location", location)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve_small(self, request: Request, repo: HubRepo, path: str) -> None:
        f = repo.files.get(path)
        if f is None:
            self._error("EntryNotFound", f"{path} does not exist at revision {repo.sha}")
            return
        headers = {
            "X-Repo-Commit": repo.sha,
            "ETag": f'"{f.git_oid}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        self._send_file(request, path, f, headers)


class _CdnHandler(_Base):
    server_name = "cdn"

    def do_HEAD(self) -> None:
        request = self._record()
        if request is None:
            return
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        f = self.hub._by_cdn_path(url.path)
        try:
            expires = int(query.get("Expires", "0"))
        except ValueError:
            expires = 0
        valid = hmac.compare_digest(
            query.get("Signature", ""), self.hub._signature(url.path, expires)
        )
        if f is None or not valid or expires < time.time():
            request.status = 403
            body = b"<Error><Code>AccessDenied</Code><Message>Access denied</Message></Error>"
            self.send_response(403)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        repo_path = next(
            p for repo in self.hub.repos.values() for p, g in repo.files.items() if g is f
        )
        headers = {
            "ETag": f'"cdn-{f.sha256[:32]}"',  # a CDN's own tag, not the Hub's sha256
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        self._send_file(request, repo_path, f, headers)

    do_GET = do_HEAD
