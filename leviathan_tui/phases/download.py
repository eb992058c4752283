"""Download: check the plan fits the disk, fetch in the pod with per-file progress, verify."""

from __future__ import annotations

from typing import Any

from leviathan_tui.errors import StepError
from leviathan_tui.phases.agent_pod import run_agent
from leviathan_tui.records import DataDisk, ModelFiles, ModelPlan, MountProof, NodeFacts
from leviathan_tui.render.manifests import agent_pod
from leviathan_tui.runner import Step, StepContext
from leviathan_tui.units import decimal_size, human_size

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
        "--connections-per-file",
        str(c.download.connections_per_file or "auto"),
        "--max-connections",
        str(c.download.max_connections),
        "--max-bytes-per-s",
        str(c.download.max_bytes_per_s),
        "--lock-wait",
        "10",
    ]
    if mode is None:
        args.append("--reuse-plan")  # a restart sends its first byte before listing the Hub
    for name in c.model.config_files:
        args += ["--config-include", name]
    if mode:
        args.append(mode)
    return args


def fetch_env(ctx: StepContext) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"}]
    endpoint = ctx.backends.hub_endpoint or ctx.config.model.endpoint
    if endpoint:
        env.append({"name": "HF_ENDPOINT", "value": endpoint})
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


class DownloadView:
    """Turns the fetch agent's events into typed progress events and log lines."""

    def __init__(self, ctx: StepContext, plan: ModelPlan) -> None:
        self.ctx = ctx
        self.totals = {f.name: f.size for f in plan.files}
        self.done: dict[str, int] = {}
        self.grand_total = plan.total
        self.resumed = 0
        self.complete_files = 0  # verified on an earlier run, skipped now
        self.partial = 0  # bytes of files partly downloaded on an earlier run
        self.announced = False

    def overall(self, note: str = "") -> None:
        self.ctx.progress(sum(self.done.values()), self.grand_total, note=note)

    def __call__(self, event: dict[str, Any]) -> None:
        ctx = self.ctx
        kind = event.get("event")
        name = str(event.get("file") or "")
        if kind == "plan":
            files = [f for f in event.get("files") or [] if isinstance(f, dict)]
            for f in files:
                self.totals[str(f.get("name"))] = int(f.get("size") or 0)
            self.grand_total = int(event.get("total") or self.grand_total)
            ctx.files_planned(self.totals.items())
        elif kind == "progress":
            self.done[name] = int(event.get("done") or 0)
            ctx.file_progress(name, self.done[name], _int(event.get("total")), "downloading")
            self.overall()
        elif kind == "resume":
            on_disk = int(event.get("done") or event.get("offset") or 0)
            total = int(event.get("total") or 0)
            self.resumed += on_disk
            self.partial += on_disk
            self.done[name] = on_disk
            ctx.file_progress(name, on_disk, total, "resuming")
            ctx.log(f"{name}: resuming from {decimal_size(on_disk)} of {decimal_size(total)}")
        elif kind == "file_done":
            size = int(event.get("size") or 0)
            self.done[name] = size
            if event.get("skipped"):
                self.resumed += size
                self.complete_files += 1
            ctx.file_progress(
                name, size, size, "done", "verified" if event.get("verified") else "done"
            )
            self.overall()
            if not event.get("skipped"):
                checked = (
                    "sha256 verified" if event.get("verified") else "its sha256 was not checked"
                )
                ctx.log(f"{name}: complete, {checked}")
        elif kind == "retry":
            note = f"retry {event.get('attempt')} in {float(event.get('delay') or 0):.0f} s"
            ctx.log(f"{name}: network error ({event.get('error')}); {note}", "warn")
            ctx.file_progress(
                name, int(event.get("done") or 0), self.totals.get(name), "retrying", note
            )
        elif kind in ("error", "corrupt"):
            ctx.log(f"{name}: {event.get('reason')}", "error")
            ctx.file_progress(
                name,
                self.done.get(name, 0),
                self.totals.get(name),
                "failed",
                str(event.get("reason")),
            )
        elif kind == "connections":
            ctx.log(f"{event.get('per_file')} connection(s) per file: {event.get('reason')}")
        elif kind == "lock_wait":
            ctx.log(
                f"waiting: {event.get('dir')} is being written by {event.get('holder')}", "warn"
            )
        elif kind == "plan_changed":
            ctx.log(
                f"the Hub's files changed since the download was planned: {event.get('files')}",
                "warn",
            )
        elif kind == "cleaned":
            ctx.log(
                f"removed {event.get('files')} stale *.incomplete file(s) in {event.get('dir')}"
            )
        # the agent reports the files complete from earlier and the partial ones before its
        # first byte: announce then, with all of them counted
        if self.resumed and not self.announced and kind == "progress":
            self.announced = True
            parts = []
            if self.complete_files:
                plural = "s" if self.complete_files != 1 else ""
                parts.append(f"{self.complete_files} complete file{plural}")
            if self.partial and self.complete_files:
                parts.append(f"{decimal_size(self.partial)} of partly downloaded ones")
            detail = f" ({', '.join(parts)})" if parts else ""
            ctx.log(f"resuming from {decimal_size(self.resumed)} already on the disk{detail}")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def done_message(files: ModelFiles, on_disk_before: int) -> str:
    """What the download did, in bytes fetched now and bytes found from an earlier run."""
    checked = "verified" if files.verified else "present (sha256 not checked)"
    whole = f"{files.files} files, {decimal_size(files.total)}"
    if not on_disk_before:
        return f"{whole} downloaded and {checked}"
    fetched = max(0, files.total - on_disk_before)
    return (
        f"{whole} {checked}: {decimal_size(fetched)} fetched now, "
        f"{decimal_size(on_disk_before)} were on the disk already"
    )


class FetchStep(Step):
    id = "download.fetch"
    title = "Download and verify the model"
    phase = "download"
    publishes = (ModelFiles,)
    reads_records = (ModelPlan, DataDisk, MountProof)

    def check(self, ctx: StepContext) -> str | None:
        files, plan = ctx.get(ModelFiles), ctx.get(ModelPlan)
        if files is None or plan is None or not files.verified or files.folder != plan.folder:
            return None
        pod = agent_pod(
            ctx.config,
            FETCH_POD + "-check",
            "fetch",
            fetch_args(ctx, plan.folder, mode="--check"),
            env=fetch_env(ctx),
        )
        result = run_agent(ctx, pod, lambda e: None)
        if result.get("status") == "done":
            return f"all {result.get('files')} files present with recorded sha256 ({human_size(int(result.get('total') or 0))})"
        ctx.log(f"download incomplete: {result.get('reason')}", "warn")
        return None

    def run(self, ctx: StepContext) -> str:
        plan = ctx.need(ModelPlan)
        disk = ctx.need(DataDisk)
        self._check_fits(ctx, plan, disk)
        view = DownloadView(ctx, plan)
        ctx.files_planned((f.name, f.size) for f in plan.files)
        pod = agent_pod(
            ctx.config, FETCH_POD, "fetch", fetch_args(ctx, plan.folder), env=fetch_env(ctx)
        )
        result = run_agent(ctx, pod, view)
        if result.get("status") == "refused" and result.get("holder"):
            raise StepError(
                f"another download pod is writing the model directory: {result.get('reason')}",
                "wait for it to finish, or stop it (leviathan stop), then run again",
            )
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
        files = ModelFiles(
            plan.folder,
            int(result.get("files") or 0),
            int(result.get("total") or 0),
            bool(result.get("verified")),
        )
        ctx.publish(files)
        return done_message(files, view.resumed)

    def _check_fits(self, ctx: StepContext, plan: ModelPlan, disk: DataDisk) -> None:
        margin = int(ctx.config.storage.min_free_margin_gib * 2**30)
        total = plan.total
        if disk.formatted and disk.free_bytes and total + margin > disk.free_bytes:
            short = total + margin - disk.free_bytes
            raise StepError(
                f"the model needs {decimal_size(total)} ({human_size(total)}) + {human_size(margin)} margin; "
                f"the disk has {human_size(disk.free_bytes)} free: {decimal_size(short)} short",
                "use a bigger disk or a smaller quant (model.quant, e.g. Q2_K_XS)",
            )
        facts = ctx.get(NodeFacts)
        need = int(total * KTRANSFORMERS_RAM_FRACTION) if ctx.config.deploy.engine != "vllm" else 0
        if facts and facts.memory_bytes and need and facts.memory_bytes < need:
            ctx.log(
                f"the node has {human_size(facts.memory_bytes)} allocatable RAM; the engine needs about "
                f"{decimal_size(need)} for this quant: the deploy phase will refuse or ask you to accept the risk",
                "warn",
            )


class VerifyAgainStep(Step):
    """On demand (the wizard's "verify again"): hash every file again in the pod, in parallel, and
    check the GGUF set. A corrupt file loses its record, so the next run fetches it again alone."""

    id = "download.verify"
    title = "Verify the model files again"
    phase = "download"

    def run(self, ctx: StepContext) -> str:
        plan, files = ctx.get(ModelPlan), ctx.get(ModelFiles)
        if (
            plan is None
            or files is None
            or ctx.state.status("download.fetch")
            not in (
                "done",
                "skipped",
            )
        ):
            raise StepError(
                "nothing to verify yet: the download has not finished", "run the download first"
            )
        checked: list[str] = []

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "verified":
                checked.append(str(event.get("file")))
                ctx.log(f"{event.get('file')}: sha256 matches the Hub")
                ctx.progress(len(checked), len(plan.files) or None, unit="files")
            elif event.get("event") == "corrupt":
                ctx.log(f"{event.get('file')}: {event.get('reason')}", "error")

        pod = agent_pod(
            ctx.config,
            FETCH_POD + "-verify",
            "fetch",
            fetch_args(ctx, plan.folder, mode="--verify-only"),
            env=fetch_env(ctx),
        )
        result = run_agent(ctx, pod, on_event)
        if result.get("status") != "done":
            ctx.retract(ModelFiles)
            ctx.state.set_status("download.fetch", "pending")
            bad = ", ".join(result.get("bad") or []) or str(result.get("reason"))
            raise StepError(
                f"verification failed: {bad}",
                "run the download again: only the named files are fetched again",
            )
        return (
            f"{len(checked)} files hashed again: all match the Hub's sha256; GGUF shards complete"
        )
