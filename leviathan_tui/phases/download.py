"""Download: plan from the Hub, check it fits, fetch in the pod with progress, verify."""

from __future__ import annotations

from typing import Any

from leviathan_tui.agent.lsblk import human_size
from leviathan_tui.engine import Step, StepContext
from leviathan_tui.errors import StepError
from leviathan_tui.manifests import agent_pod
from leviathan_tui.phases.agent_pod import run_agent

FETCH_POD = "sysadmin-logistics-fetch"
KTRANSFORMERS_RAM_FRACTION = 0.945  # Q4_K_M: >= 382 GB RAM for ~404 GB of weights (FIELD-NOTES)


def fetch_args(ctx: StepContext, folder: str, *, mode: str | None = None) -> list[str]:
    c = ctx.config
    args = [
        "--repo",
        c.model.repo,
        "--revision",
        c.model.revision,
        "--include",
        f"{folder}/*.gguf",
        "--dest",
        c.gguf_dir,
        "--config-repo",
        c.model.config_repo,
        "--config-revision",
        c.model.config_revision,
        "--config-dest",
        c.config_dir,
        "--parallel",
        str(c.model.parallel),
        "--transfer",
        c.model.transfer,
        "--retry-for",
        str(int(c.model.retry_for_s)),
    ]
    for name in c.model.config_files:
        args += ["--config-include", name]
    if mode:
        args.append(mode)
    return args


def fetch_env(ctx: StepContext) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"}]
    if ctx.config.model.endpoint:
        env.append({"name": "HF_ENDPOINT", "value": ctx.config.model.endpoint})
    if ctx.config.model.transfer == "http":
        env.append({"name": "HF_HUB_DISABLE_XET", "value": "1"})
    else:
        env.append({"name": "HF_XET_HIGH_PERFORMANCE", "value": "1"})
    if ctx.config.model.hf_token_secret:  # the token stays in the Secret; the pod reads it as env
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": ctx.config.model.hf_token_secret, "key": "token"}
                },
            }
        )
    return env


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


class FetchStep(Step):
    id = "download.fetch"
    title = "Download and verify the model"
    phase = "download"
    needs = ("storage.format",)

    def check(self, ctx: StepContext) -> str | None:
        folder = ctx.artifact("folder")
        if not folder or not ctx.artifact("verified"):
            return None
        pod = agent_pod(
            ctx.config,
            FETCH_POD + "-check",
            "fetch",
            fetch_args(ctx, folder, mode="--check"),
            env=fetch_env(ctx),
        )
        result = run_agent(ctx, pod, lambda e: None)
        if result.get("status") == "done":
            return f"all {result.get('files')} files present with recorded sha256 ({human_size(int(result.get('total') or 0))})"
        ctx.log(f"download incomplete: {result.get('reason')}", "warn")
        return None

    def run(self, ctx: StepContext) -> str:
        source = (
            ctx.config.model.repo,
            ctx.config.model.revision,
            ctx.config.model.quant,
            ctx.config.model.config_repo,
        )
        recorded = ctx.artifact("plan")
        if recorded and ctx.artifact("source") == list(source):
            # resume: the plan of the interrupted run stands (the agent re-lists the Hub anyway)
            folder, total = ctx.artifact("folder"), int(ctx.artifact("total") or 0)
            files = {f["name"]: f["size"] for f in recorded}
            ctx.log(f"resuming the download planned earlier: {len(files)} files, {_gb(total)}")
        else:
            plan = ctx.backends.hub.plan()
            if not plan.exact:
                ctx.log(f"plan from {plan.source} (offline data: sizes approximate)", "warn")
            ctx.log(
                f"{plan.folder}: {len(plan.gguf)} shards, {_gb(plan.gguf_total)} ({human_size(plan.gguf_total)}) "
                f"+ {len(plan.config)} config files from {ctx.config.model.config_repo}"
            )
            if plan.quants:
                ctx.log(
                    "quants in the repo: "
                    + ", ".join(f"{q} {_gb(s)}" for q, s in sorted(plan.quants.items()))
                )
            folder, total = plan.folder, plan.total
            files = {f.name: f.size for f in plan.files}
            ctx.set_artifact("folder", folder)
            ctx.set_artifact("total", total)
            ctx.set_artifact(
                "plan", [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in plan.files]
            )
            ctx.set_artifact("source", list(source))
        self._check_fits(ctx, total)

        totals = dict(files)
        done_bytes: dict[str, int] = {}
        grand_total = total

        def on_event(event: dict[str, Any]) -> None:
            kind = event.get("event")
            if kind == "plan":
                nonlocal grand_total
                grand_total = int(event.get("total") or grand_total)
                for f in event.get("files") or []:
                    totals[f["name"]] = f["size"]
            elif kind == "progress":
                done_bytes[event["file"]] = int(event["done"])
                ctx.progress(event["done"], event["total"], item=event["file"])
                ctx.progress(sum(done_bytes.values()), grand_total)
            elif kind == "resume":
                ctx.log(
                    f"{event['file']}: resuming at {human_size(int(event['offset']))} of {human_size(int(event['total']))}"
                )
            elif kind == "file_done":
                done_bytes[event["file"]] = int(event["size"])
                ctx.progress(
                    event["size"],
                    event["size"],
                    item=event["file"],
                    note="verified" if event.get("verified") else "done",
                )
                ctx.progress(sum(done_bytes.values()), grand_total)
                if not event.get("skipped"):
                    ctx.log(f"{event['file']}: complete, sha256 verified")
            elif kind == "retry":
                ctx.log(
                    f"{event['file']}: network error ({event['error']}); retry {event['attempt']} in {event['delay']:.0f} s",
                    "warn",
                )
                ctx.progress(
                    event.get("done", 0),
                    totals.get(event["file"]),
                    item=event["file"],
                    note=f"retry {event['attempt']}",
                )
            elif kind in ("error", "corrupt"):
                ctx.log(f"{event.get('file')}: {event.get('reason')}", "error")
            elif kind == "cleaned":
                ctx.log(f"removed {event['files']} stale *.incomplete file(s) in {event['dir']}")

        pod = agent_pod(ctx.config, FETCH_POD, "fetch", fetch_args(ctx, folder), env=fetch_env(ctx))
        result = run_agent(ctx, pod, on_event)
        if result.get("status") == "refused":
            raise StepError(
                f"download refused on the node: {result.get('reason')}",
                "free space on the data disk or choose a smaller quant (model.quant)",
            )
        if result.get("status") != "done":
            raise StepError(
                f"download failed: {result.get('reason')}",
                "run again: finished shards are kept and partial ones resume",
            )
        ctx.set_artifact("verified", bool(result.get("verified")))
        ctx.set_artifact("bytes", int(result.get("total") or 0))
        return f"{result.get('files')} files, {_gb(int(result.get('total') or 0))} downloaded and verified"

    def _check_fits(self, ctx: StepContext, total: int) -> None:
        free = ctx.artifact("free_bytes", step="storage.format")
        margin = int(ctx.config.storage.min_free_margin_gib * 2**30)
        fresh = ctx.artifact("formatted", step="storage.format")
        if free is not None and fresh and total + margin > int(free):
            short = total + margin - int(free)
            raise StepError(
                f"the model needs {total / 1e9:.1f} GB ({human_size(total)}) + {human_size(margin)} margin; "
                f"the disk has {human_size(int(free))} free: {short / 1e9:.1f} GB short",
                "use a bigger disk or a smaller quant (model.quant, e.g. Q2_K_XS)",
            )
        memory = ctx.artifact("memory_bytes", step="preflight.node")
        need = int(total * KTRANSFORMERS_RAM_FRACTION) if ctx.config.deploy.engine != "vllm" else 0
        if memory and need and int(memory) < need:
            ctx.log(
                f"the node has {human_size(int(memory))} allocatable RAM; KTransformers needs about {need / 1e9:.0f} GB "
                f"for this quant: the deploy phase will refuse or ask you to accept the risk",
                "warn",
            )


class VerifyAgainStep(Step):
    """On demand (the wizard's "verify again"): hash every file again in the pod, in parallel, and
    check the GGUF set. A corrupt file loses its record, so the next run fetches it again alone."""

    id = "download.verify"
    title = "Verify the model files again"
    phase = "download"
    needs = ()

    def run(self, ctx: StepContext) -> str:
        folder = ctx.artifact("folder", step="download.fetch")
        if not folder or ctx.state.status("download.fetch") not in ("done", "skipped"):
            raise StepError(
                "nothing to verify yet: the download has not finished", "run the download first"
            )
        checked: list[str] = []

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "verified":
                checked.append(event["file"])
                ctx.log(f"{event['file']}: sha256 matches the Hub")
                ctx.progress(
                    len(checked),
                    len(ctx.artifact("plan", step="download.fetch") or []) or None,
                    unit="files",
                )
            elif event.get("event") == "corrupt":
                ctx.log(f"{event.get('file')}: {event.get('reason')}", "error")

        pod = agent_pod(
            ctx.config,
            FETCH_POD + "-verify",
            "fetch",
            fetch_args(ctx, folder, mode="--verify-only"),
            env=fetch_env(ctx),
        )
        result = run_agent(ctx, pod, on_event)
        if result.get("status") != "done":
            ctx.state.set_artifact("download.fetch", "verified", False)
            bad = ", ".join(result.get("bad") or []) or str(result.get("reason"))
            raise StepError(
                f"verification failed: {bad}",
                "run the download again: only the named files are fetched again",
            )
        return (
            f"{len(checked)} files hashed again: all match the Hub's sha256; GGUF shards complete"
        )
