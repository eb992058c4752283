"""Local servers that answer like the inference engines: one module per engine in engines/, each
derived from that engine's source. `EngineStandIn(flavour=...)` builds the one asked for."""

from __future__ import annotations

from typing import Any

from tests.support.engines.base import StandInEngine
from tests.support.engines.ktransformers import KTransformersStandIn
from tests.support.engines.llamacpp import LlamaCppStandIn
from tests.support.engines.vllm import VllmStandIn

FLAVOURS: dict[str, type[StandInEngine]] = {
    "ktransformers": KTransformersStandIn,
    "llamacpp": LlamaCppStandIn,
    "vllm": VllmStandIn,
}


def EngineStandIn(flavour: str = "ktransformers", **options: Any) -> StandInEngine:  # noqa: N802 (a constructor for its callers)
    return FLAVOURS[flavour](**options)


__all__ = [
    "EngineStandIn",
    "FLAVOURS",
    "KTransformersStandIn",
    "LlamaCppStandIn",
    "StandInEngine",
    "VllmStandIn",
]
