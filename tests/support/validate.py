"""Validate manifests against the official Kubernetes schemas (kubernetes-validate, strict)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

OLDEST = "1.30.0"


def newest() -> str:
    return kubernetes_validate.latest_version()


def validate(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)
