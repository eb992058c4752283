"""Docker Registry HTTP API v2: does the tag exist, and what is its digest?"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from leviathan_tui.config import RegistryConfig
from leviathan_tui.errors import StepError

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


@dataclass(frozen=True)
class ManifestInfo:
    digest: str
    media_type: str
    size: int


class RegistryError(StepError):
    pass


class RegistryBackend:
    def __init__(self, cfg: RegistryConfig, timeout: float = 15.0) -> None:
        self.base = f"{cfg.scheme}://{cfg.address}"
        self.timeout = timeout

    def _open(
        self, method: str, path: str, accept: str = "application/json"
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.base + path, method=method, headers={"Accept": accept}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return (
                    response.status,
                    dict(response.headers),
                    response.read() if method != "HEAD" else b"",
                )
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers or {}), err.read() if method != "HEAD" else b""
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise RegistryError(
                f"registry {self.base} unreachable: {reason}",
                "check that the registry runs (curl "
                + self.base
                + "/v2/) and registry.address / registry.scheme",
            ) from None

    def ping(self) -> None:
        status, _, _ = self._open("GET", "/v2/")
        if status not in (200, 401):
            raise RegistryError(f"{self.base}/v2/ answered {status}: not a Docker registry API")

    def tags(self, repository: str) -> list[str]:
        status, _, body = self._open("GET", f"/v2/{repository}/tags/list")
        if status == 404:
            return []
        if status != 200:
            raise RegistryError(f"{self.base}: tags of {repository}: HTTP {status}")
        try:
            return list(json.loads(body).get("tags") or [])
        except ValueError:
            raise RegistryError(f"{self.base}: tags of {repository}: not JSON") from None

    def manifest(self, repository: str, reference: str) -> ManifestInfo | None:
        """The manifest's digest, as the registry names it (HEAD, then GET and hash)."""
        status, headers, _ = self._open(
            "HEAD", f"/v2/{repository}/manifests/{reference}", MANIFEST_TYPES
        )
        lower = {k.lower(): v for k, v in headers.items()}
        if status == 404:
            return None
        if status == 200 and lower.get("docker-content-digest"):
            return ManifestInfo(
                lower["docker-content-digest"],
                lower.get("content-type", ""),
                int(lower.get("content-length") or 0),
            )
        status, headers, body = self._open(
            "GET", f"/v2/{repository}/manifests/{reference}", MANIFEST_TYPES
        )
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"{self.base}: manifest {repository}:{reference}: HTTP {status}")
        lower = {k.lower(): v for k, v in headers.items()}
        digest = lower.get("docker-content-digest") or "sha256:" + hashlib.sha256(body).hexdigest()
        return ManifestInfo(digest, lower.get("content-type", ""), len(body))
