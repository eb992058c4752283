"""The dry run's inference engine: answers the health check as the configured engine would once
the simulated Deployment's pod has been up for a few (scaled) seconds."""

from __future__ import annotations

import json
import time
from typing import Any

from leviathan_tui.backends.http import HttpResult
from leviathan_tui.config import Config
from leviathan_tui.dryrun.world import World

LOADING_S = 3.0


class DryHttp:
    def __init__(self, config: Config, world: World, actions: list[str], speed: float) -> None:
        self.config = config
        self.world = world
        self.actions = actions
        self.speed = speed

    def _engine(self) -> str:
        """The engine the applied Deployment runs (not the config's: a fallback may differ)."""
        for key, manifest in self.world.read()["applied"].items():
            if key.startswith("Deployment/"):
                return manifest["metadata"].get("labels", {}).get("leviathan/engine", "")
        return self.config.deploy.engine

    def _loaded(self) -> bool:
        applied = float(self.world.read().get("deployment_applied_at") or 0.0)
        return bool(applied) and (time.time() - applied) * self.speed >= LOADING_S + 2.0

    def request(
        self, method: str, url: str, payload: Any = None, timeout: float = 10.0
    ) -> HttpResult:
        if not self._loaded():
            return HttpResult(0, b"", "connection refused")
        if url.endswith("/health") and self._engine() == "ktransformers":
            return HttpResult(404, b'{"detail":"Not Found"}')  # KTransformers has no /health
        if url.endswith("/health"):
            return HttpResult(200, b'{"status":"ok"}')
        if url.endswith("/v1/models"):
            name = self.config.deploy.model_name
            return HttpResult(200, json.dumps([{"id": name, "name": name}]).encode())
        return HttpResult(200, b"{}")

    def chat(self, base: str, model: str, timeout_s: float) -> tuple[str, float, float]:
        self.actions.append(f"would POST {base}/v1/chat/completions (model {model})")
        time.sleep(0.5 / self.speed)
        return "Yes, I am ready. (simulated reply: dry-run)", 0.42 / self.speed, 0.5 / self.speed
