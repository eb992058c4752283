"""The shipped simulated node's disks and the offline Hub listing."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def default_machine() -> dict[str, Any]:
    return json.loads(
        (files("leviathan_tui") / "data" / "dry-run-machine.json").read_text(encoding="utf-8")
    )


def hub_listing() -> dict[str, Any]:
    return json.loads(
        (files("leviathan_tui") / "data" / "dry-run-hub-listing.json").read_text(encoding="utf-8")
    )
