"""Hugging Face Hub: what the chosen quant and the engine's config files really are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from leviathan_tui.config import ModelConfig
from leviathan_tui.errors import StepError


@dataclass(frozen=True)
class PlanFile:
    repo: str
    path: str
    size: int
    sha256: str | None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class DownloadPlan:
    folder: str
    gguf: list[PlanFile]
    config: list[PlanFile]
    quants: dict[str, int] = field(default_factory=dict)
    source: str = "the Hub"
    exact: bool = True

    @property
    def files(self) -> list[PlanFile]:
        return self.gguf + self.config

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def gguf_total(self) -> int:
        return sum(f.size for f in self.gguf)


def quant_of(folder: str) -> str:
    """'DeepSeek-V3-Q4_K_M' -> 'Q4_K_M' (the repo's folders are <model>-<quant>)."""
    parts = folder.split("-")
    for i in range(len(parts)):
        candidate = "-".join(parts[i:])
        if (
            candidate[:1] in ("Q", "I", "F", "B")
            and "_" in candidate
            or candidate in ("F16", "BF16", "F32")
        ):
            return candidate
    return folder


def folder_for(quant: str, folders: dict[str, int]) -> str | None:
    for folder in folders:
        if folder == quant or folder.endswith("-" + quant) or quant_of(folder) == quant:
            return folder
    return None


def quant_not_found(repo: str, quant: str, quants: dict[str, int]) -> StepError:
    """The refusal for a quant the repo lacks, with the quants it has and their sizes."""
    listing = ", ".join(f"{q} ({s / 1e9:.0f} GB)" for q, s in sorted(quants.items())) or "none"
    return StepError(
        f"quant {quant} not found in {repo}; quants that exist: {listing}",
        "set model.quant to one of them",
    )


class HubBackend:
    def __init__(self, model: ModelConfig) -> None:
        self.model = model

    def head_bytes(self, path: str, nbytes: int) -> bytes:
        return head_bytes(self.model, path, nbytes)

    def plan(self) -> DownloadPlan:
        from leviathan_tui.agent.fetch_plan import (
            DEFAULT_CONFIG_INCLUDE,
            FetchError,
            folders_with_sizes,
            plan_repo,
        )

        m = self.model
        try:
            folders = folders_with_sizes(m.repo, m.revision, m.endpoint)
            folder = folder_for(m.quant, folders)
            quants = {quant_of(f): size for f, size in folders.items()}
            if folder is None:
                raise quant_not_found(m.repo, m.quant, quants)
            gguf = plan_repo(m.repo, m.revision, [f"{folder}/*.gguf"], Path("."), True, m.endpoint)
            config = plan_repo(
                m.config_repo,
                m.config_revision,
                list(m.config_files) or DEFAULT_CONFIG_INCLUDE,
                Path("."),
                True,
                m.endpoint,
            )
        except FetchError as err:
            raise StepError(
                str(err),
                "check model.repo / model.config_repo / model.revision, and HF_TOKEN for gated repos",
            ) from None
        except StepError:
            raise
        except Exception as err:
            raise StepError(
                f"cannot reach the Hub ({m.endpoint or 'huggingface.co'}): {type(err).__name__}: {err}",
                "check the network, or set model.endpoint",
            ) from None
        return DownloadPlan(
            folder,
            [PlanFile(f.repo, f.path, f.size, f.sha256) for f in gguf],
            [PlanFile(f.repo, f.path, f.size, f.sha256) for f in config],
            quants,
        )


def head_bytes(model: ModelConfig, path: str, nbytes: int) -> bytes:
    """The first `nbytes` of a file in the GGUF repo, by HTTP Range (for header-only sizing)."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session

    url = hf_hub_url(model.repo, path, revision=model.revision, endpoint=model.endpoint)
    headers = build_hf_headers()
    headers["Range"] = f"bytes=0-{nbytes - 1}"
    try:
        response = get_session().get(url, headers=headers, follow_redirects=True, timeout=60.0)
    except Exception as err:  # any transport error: the caller decides whether sizing is optional
        raise StepError(f"cannot read the header of {path}: {type(err).__name__}: {err}") from None
    if response.status_code not in (200, 206):
        raise StepError(f"cannot read the header of {path}: HTTP {response.status_code}")
    return response.content[:nbytes]
