"""The dry run's Hugging Face Hub: the real file names and sizes for the plan, and a local
endpoint on 127.0.0.1 that the real fetch agent downloads from.

The endpoint serves the same files scaled down (real GGUF shards with the real split keys, one
byte for every `SCALE`), paced so a download takes about a minute at LEVIATHAN_DRY_RUN_SPEED=1.
The byte counts the agent reports are scaled back up on their way to the wizard, so every size,
speed and "resuming from N GB" reads as on the real Hub.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from leviathan_tui.backends.hub import DownloadPlan, PlanFile, quant_not_found
from leviathan_tui.config import Config
from leviathan_tui.dryrun.hub_server import HubStandIn
from leviathan_tui.dryrun.machine import hub_listing
from leviathan_tui.dryrun.world import SCALE, World
from leviathan_tui.errors import StepError
from leviathan_tui.units import decimal_size

DOWNLOAD_SECONDS = 40.0  # at speed 1
MIN_SERVED = 4096
SHARD_BYTES = 45_000_000_000  # the repo's shards are about this size


def served_size(real: int) -> int:
    return max(math.ceil(real / SCALE), min(real, MIN_SERVED))


def write_scaled_shard(path: Path, index: int, count: int, size: int) -> None:
    """A real GGUF shard (split keys, one tensor) padded to `size` bytes."""
    import numpy as np
    from gguf import GGUFWriter

    tmp = path.with_suffix(".tmp")
    writer = GGUFWriter(str(tmp), "deepseek2")
    writer.add_uint16("split.no", index)
    writer.add_uint16("split.count", count)
    writer.add_int32("split.tensors.count", count)
    writer.add_string("general.name", f"DeepSeek-V3 (dry-run stand-in, scaled 1:{SCALE})")
    header_room = 2048
    payload = max(32, size - header_room)
    writer.add_tensor(f"blk.{index}.dry_run_padding", np.zeros(payload, dtype=np.int8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)


class DryHub:
    def __init__(self, config: Config, world: World, actions: list[str], speed: float) -> None:
        self.config = config
        self.world = world
        self.actions = actions
        self.speed = speed
        self.listing = hub_listing()
        self.server: HubStandIn | None = None
        self._ratio: dict[str, float] = {}
        self._total_ratio = float(SCALE)

    # --- the plan (read-only, real sizes) ----------------------------------------------------

    def _folder(self) -> str:
        return f"DeepSeek-V3-{self.config.model.quant}"

    def _shards(self) -> list[dict[str, Any]]:
        """The configured quant's shards: the captured listing's for its own quant; for another
        quant the repo lists, its total split into shards of the repo's usual size."""
        quant, quants = self.config.model.quant, self.listing["quants"]
        if quant not in quants:
            raise quant_not_found(self.config.model.repo, quant, quants)
        if all(f["path"].startswith(self._folder() + "/") for f in self.listing["files"]):
            return list(self.listing["files"])
        total, count = quants[quant], max(1, math.ceil(quants[quant] / SHARD_BYTES))
        return [
            {
                "path": f"{self._folder()}/{self._folder()}-{i:05d}-of-{count:05d}.gguf",
                "size": total // count + (total % count if i == count else 0),
                "sha256": None,
            }
            for i in range(1, count + 1)
        ]

    def plan(self) -> DownloadPlan:
        listing = self.listing
        gguf = [
            PlanFile(listing["repo"], f["path"], f["size"], f["sha256"]) for f in self._shards()
        ]
        config = [
            PlanFile(listing["config_repo"], f["path"], f["size"], f["sha256"])
            for f in listing["config_files"]
        ]
        self.actions.append(
            f"would list {self.config.model.repo} and {self.config.model.config_repo} on the Hub"
        )
        return DownloadPlan(
            self._folder(),
            gguf,
            config,
            dict(listing["quants"]),
            source=f"offline listing captured {listing['captured']}",
            exact=bool(listing.get("exact")),
        )

    def head_bytes(self, path: str, nbytes: int) -> bytes:
        raise StepError("dry-run: the real GGUF headers are not available offline")

    # --- the local endpoint (scaled bytes) ---------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self.server is None:
            self.server = self._start()
        return self.server.url

    def _start(self) -> HubStandIn:
        hub = HubStandIn()
        root = self.world.hub_root
        shards = sorted(self._shards(), key=lambda f: f["path"])
        for index, item in enumerate(shards):
            size = served_size(item["size"])
            path = root / item["path"]
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                write_scaled_shard(path, index, len(shards), size)
            hub.add_file(self.listing["repo"], item["path"], path)
            self._ratio[path.name] = item["size"] / path.stat().st_size
        for item in self.listing["config_files"]:
            size = served_size(item["size"])
            path = root / "config" / item["path"]
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                text = f"# dry-run stand-in for {item['path']}\n"
                path.write_bytes((text + " " * max(0, size - len(text) - 1) + "\n").encode()[:size])
            hub.add_file(self.listing["config_repo"], item["path"], path)
            self._ratio[path.name] = item["size"] / path.stat().st_size
        served = sum(f.size for repo in hub.repos.values() for f in repo.files.values())
        real = sum(f["size"] for f in self._shards() + self.listing["config_files"])
        self._total_ratio = real / served
        # per connection: the agent fetches model.parallel files at once
        hub.rate_bytes_s = served / (DOWNLOAD_SECONDS * self.config.model.parallel) * self.speed
        hub.start()
        return hub

    def rescale_text(self, line: str) -> str:
        """`20221243 bytes (20.2 MB)` in the agent's milestones, as the real files' bytes."""

        def real(match: re.Match[str]) -> str:
            size = round(int(match.group(1)) * self._total_ratio)
            return f"{size} bytes ({decimal_size(size)})"

        return re.sub(r"(\d+) bytes(?: \([^)]*\))?", real, line)

    def rescale(self, event: dict[str, Any]) -> dict[str, Any]:
        """The agent's byte counts for the scaled files, as the real files' sizes."""
        name = event.get("file")
        ratio = self._ratio.get(str(name)) if name else None
        out = dict(event)
        if ratio:
            for key in ("done", "total", "size", "offset"):
                if isinstance(out.get(key), int | float):
                    out[key] = round(out[key] * ratio)
        if isinstance(out.get("files"), list):
            files = []
            for f in out["files"]:
                if isinstance(f, dict) and f.get("name") in self._ratio:
                    f = {**f, "size": round(int(f.get("size") or 0) * self._ratio[f["name"]])}
                files.append(f)
            out["files"] = files
            if isinstance(out.get("total"), int):
                out["total"] = sum(int(f.get("size") or 0) for f in files if isinstance(f, dict))
        elif out.get("event") == "result" and isinstance(out.get("total"), int):
            out["total"] = round(out["total"] * self._total_ratio)
        return out

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
