"""Access to the shipped assets (manifests, Dockerfile, dated data).

In a wheel they live in `leviathan_tui/_assets`; in a source checkout they are the repository's
top-level `assets/` folder.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path


def assets_root() -> Traversable:
    packaged = resources.files("leviathan_tui") / "_assets"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "assets"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        "Leviathan's assets are missing from this installation (reinstall the package)"
    )


def asset(*parts: str) -> Traversable:
    node = assets_root()
    for part in parts:
        node = node / part
    return node


def read_asset(*parts: str) -> str:
    return asset(*parts).read_text(encoding="utf-8")
