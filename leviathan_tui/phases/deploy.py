"""Deploy: size the model against the node, apply the Deployment and Service (server-side
apply), follow the rollout with explanations, then prove health with a real completion."""

from __future__ import annotations

import time
from typing import Any

from leviathan_tui.agent.lsblk import human_size
from leviathan_tui.diagnose import explain_pod
from leviathan_tui.engine import Step, StepContext
from leviathan_tui.engines import engine_spec, vllm_fits
from leviathan_tui.errors import StepError
from leviathan_tui.estimate import MemoryEstimate, estimate, read_header
from leviathan_tui.events import Question
from leviathan_tui.health import check_health
from leviathan_tui.manifests import deployment, service

RAM_WARN_FRACTION = 0.9


def _first_shard(ctx: StepContext) -> str:
    names = sorted(
        f["name"]
        for f in ctx.artifact("plan", step="download.fetch") or []
        if f["name"].endswith(".gguf")
    )
    return names[0] if names else ""


def memory_estimate(ctx: StepContext, experts_in_ram: bool) -> MemoryEstimate | None:
    folder = ctx.artifact("folder", step="download.fetch")
    shards = sorted(
        f["name"]
        for f in ctx.artifact("plan", step="download.fetch") or []
        if f["name"].endswith(".gguf")
    )
    if not folder or not shards:
        return None
    hub = ctx.backends.hub
    headers = []
    for name in shards:
        path = f"{folder}/{name}"
        headers.append(read_header(lambda n, p=path: hub.head_bytes(p, n)))
    return estimate(
        headers,
        cache_lens=ctx.config.deploy.cache_lens,
        experts_in_ram=experts_in_ram,
        overhead_bytes=int(ctx.config.deploy.memory_overhead_gib * 2**30),
    )


def _spec(ctx: StepContext) -> Any:
    digest = (
        ctx.artifact("digest", step="build.push")
        if ctx.config.deploy.engine == "ktransformers"
        else None
    )
    cpus = ctx.config.deploy.cpu_infer or max(
        1, int(float(ctx.artifact("cpu", step="preflight.node") or 34)) - 2
    )
    return engine_spec(ctx.config, digest=digest, cpu_infer=cpus, first_shard=_first_shard(ctx))


def rendered(ctx: StepContext, memory_request: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    return deployment(ctx.config, spec=_spec(ctx), memory_request_bytes=memory_request), service(
        ctx.config
    )


class ApplyStep(Step):
    id = "deploy.apply"
    title = "Apply the Deployment and NodePort Service"
    phase = "deploy"
    needs = ("preflight.node", "storage.verify_host", "download.fetch", "build.push")

    def check(self, ctx: StepContext) -> str | None:
        applied_image = ctx.artifact("image")
        spec = _spec(ctx)
        if not applied_image or applied_image != spec.image or ctx.artifact("args") != spec.args:
            return None
        dep = ctx.backends.kube.get_deployment(ctx.config.cluster.namespace, ctx.config.deploy.name)
        if dep is None:
            return None
        container = dep["spec"]["template"]["spec"]["containers"][0]
        if container.get("image") != spec.image or container.get("args") != spec.args:
            return None
        if (
            ctx.backends.kube.get_service(ctx.config.cluster.namespace, ctx.config.deploy.name)
            is None
        ):
            return None
        return f"Deployment {ctx.config.deploy.name} runs {spec.image}"

    def run(self, ctx: StepContext) -> str:
        spec = _spec(ctx)
        ctx.log(f"engine: {spec.title}" + (f" — {spec.note}" if spec.note else ""))
        memory_request = self._preflight(ctx, spec)
        dep, svc = rendered(ctx, memory_request)
        kube = ctx.backends.kube
        kube.apply(dep)
        ctx.log(
            f"applied Deployment {ctx.config.cluster.namespace}/{ctx.config.deploy.name} (server-side apply, manager leviathan)"
        )
        kube.apply(svc)
        ctx.log(f"applied Service {ctx.config.deploy.name}: NodePort {ctx.config.deploy.node_port}")
        ctx.set_artifact("image", spec.image)
        ctx.set_artifact("args", spec.args)
        pod = self._follow_rollout(ctx)
        return f"{spec.name} pod {pod} running on {ctx.config.cluster.node_name} ({spec.image})"

    def _preflight(self, ctx: StepContext, spec: Any) -> int | None:
        try:
            est = memory_estimate(ctx, spec.experts_in_ram)
        except (StepError, ValueError, OSError) as err:
            ctx.log(
                f"cannot read the GGUF headers to size the model ({err}); skipping the memory check",
                "warn",
            )
            return None
        if est is None:
            return None
        ctx.log(f"memory estimate from the GGUF tensor table: {est.describe()}")
        ctx.set_artifact("ram_bytes", est.ram_bytes)
        ctx.set_artifact("vram_bytes", est.vram_bytes)
        node_mem = int(ctx.artifact("memory_bytes", step="preflight.node") or 0)
        gpu_mem = int(ctx.config.deploy.gpus * ctx.config.deploy.gpu_memory_gib * 2**30)
        if spec.name == "vllm":
            fits, reason = vllm_fits(est.expert_bytes + est.dense_bytes, ctx.config)
            if not fits:
                raise StepError(
                    reason, "use deploy.engine ktransformers or llamacpp (experts in system RAM)"
                )
        risks = []
        if node_mem and est.ram_bytes > node_mem:
            raise StepError(
                f"the model needs {human_size(est.ram_bytes)} of system RAM; node {ctx.config.cluster.node_name} has "
                f"{human_size(node_mem)} allocatable ({human_size(est.ram_bytes - node_mem)} short)",
                "choose a smaller quant (model.quant), or a node with more RAM",
            )
        if node_mem and est.ram_bytes > RAM_WARN_FRACTION * node_mem:
            risks.append(f"RAM: {human_size(est.ram_bytes)} of {human_size(node_mem)} allocatable")
        if est.vram_bytes > gpu_mem:
            risks.append(
                f"VRAM: {human_size(est.vram_bytes)} needed, {human_size(gpu_mem)} on {ctx.config.deploy.gpus} GPU(s)"
            )
        if risks:
            ctx.ask(
                Question(
                    "deploy.accept_risk",
                    f"The model may not fit: {'; '.join(risks)}. Type 'accept' to deploy anyway.",
                    kind="text",
                    placeholder="accept",
                    validate=lambda a: (
                        None
                        if str(a).strip() == "accept"
                        else "type 'accept' to deploy despite the risk"
                    ),
                    details={"risks": risks},
                )
            )
        return est.ram_bytes

    def _follow_rollout(self, ctx: StepContext) -> str:
        kube = ctx.backends.kube
        ns, name = ctx.config.cluster.namespace, ctx.config.deploy.name
        selector = f"app.kubernetes.io/name={name}"
        deadline = time.monotonic() + ctx.config.cluster.pod_timeout_s
        seen_events: set[str] = set()
        last_state = ""
        explained: dict[str, Any] = {}
        while True:
            ctx.check_cancelled()
            pods = kube.list_pods(ns, selector)
            if pods:
                from leviathan_tui.backends.kube import pod_status_from_json

                pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
                status = pod_status_from_json(pods[-1])
                for event in kube.pod_events(ns, status.name):
                    key = f"{event.get('reason')}|{event.get('message')}|{event.get('count', 1)}"
                    if key not in seen_events:
                        seen_events.add(key)
                        level = "warn" if event.get("type") == "Warning" else "info"
                        ctx.log(f"event {event.get('reason')}: {event.get('message')}", level)
                        cause = explain_pod(event.get("reason", ""), event.get("message", ""))
                        if cause and cause.fatal:
                            raise StepError(
                                f"pod {status.name}: {cause.cause} ({cause.evidence})", cause.fix
                            )
                state = f"{status.phase} {status.reason}".strip()
                if state != last_state:
                    last_state = state
                    ctx.log(
                        f"pod {status.name}: {state}{' (restarts ' + str(status.restarts) + ')' if status.restarts else ''}"
                    )
                if (
                    status.reason in ("CrashLoopBackOff", "Error", "OOMKilled")
                    or status.last_terminated_reason == "OOMKilled"
                ):
                    raise self._crash(ctx, status)
                cause = explain_pod(status.reason, status.message) if status.reason else None
                if cause and cause.fatal:
                    raise StepError(
                        f"pod {status.name}: {cause.cause} ({status.reason}: {status.message})",
                        cause.fix,
                    )
                for found in (
                    cause,
                    *(
                        explain_pod(e.get("reason", ""), e.get("message", ""))
                        for e in kube.pod_events(ns, status.name)[-3:]
                    ),
                ):
                    if found and found.rule not in explained:
                        explained[found.rule] = found
                        ctx.log(f"why: {found.cause} — fix: {found.fix}", "warn")
                if status.phase == "Running":
                    return status.name
                if status.phase == "Failed":
                    raise self._crash(ctx, status)
            if time.monotonic() > deadline:
                causes = list(explained.values())
                reason = f"; {causes[-1].cause}" if causes else ""
                raise StepError(
                    f"the engine pod did not start within {ctx.config.cluster.pod_timeout_s:.0f} s (last state: {last_state or 'no pod'}){reason}",
                    causes[-1].fix if causes else f"kubectl -n {ns} describe pod -l {selector}",
                )
            ctx.sleep(2.0)

    def _crash(self, ctx: StepContext, status: Any) -> StepError:
        kube = ctx.backends.kube
        ns = ctx.config.cluster.namespace
        lines: list[str] = []
        try:
            lines = list(kube.follow_logs(ns, status.name, previous=True, follow=False))[-20:]
        except StepError:
            try:
                lines = list(kube.follow_logs(ns, status.name, follow=False))[-20:]
            except StepError:
                lines = []
        for line in lines:
            ctx.log(f"[previous container] {line}", "error")
        reason = status.last_terminated_reason or status.reason
        cause = explain_pod(reason, "\n".join(lines))
        if reason == "OOMKilled" or (cause and cause.rule == "oom"):
            need = ctx.artifact("ram_bytes")
            have = ctx.artifact("memory_bytes", step="preflight.node")
            detail = (
                f" (estimated need {human_size(int(need))}, node allocatable {human_size(int(have))})"
                if need and have
                else ""
            )
            return StepError(
                f"the engine was OOMKilled while loading{detail}",
                "the model needs more RAM than the node gives: choose a smaller quant or a bigger node",
            )
        if cause:
            return StepError(
                f"the engine crashed ({reason}): {cause.cause}\n  evidence: {cause.evidence}",
                cause.fix,
            )
        tail = "\n".join(lines[-5:]) or "(no log lines)"
        return StepError(
            f"the engine crashed ({reason}); last lines of the previous container:\n{tail}",
            f"kubectl -n {ns} logs {status.name} --previous",
        )


def health_base_url(ctx: StepContext) -> str:
    if ctx.config.deploy.health_url:
        return ctx.config.deploy.health_url
    ip = ctx.artifact("internal_ip", step="preflight.node")
    if not ip:
        raise StepError(
            "the node's InternalIP is unknown", "set deploy.health_url to http://NODE:30000"
        )
    return f"http://{ip}:{ctx.config.deploy.node_port}"


class HealthStep(Step):
    id = "deploy.health"
    title = "Health check: a real completion"
    phase = "deploy"
    needs = ("deploy.apply",)

    def check(self, ctx: StepContext) -> str | None:
        if not ctx.artifact("reply") or ctx.state.status("deploy.apply") != "skipped":
            return None
        base = health_base_url(ctx)
        for path in _spec(ctx).health_paths:
            result = ctx.backends.http.request("GET", base + path, timeout=5.0)
            if result.status == 200:
                return f"{base}{path} answers 200; a completion was proven at {ctx.artifact('checked_at')}"
        return None

    def run(self, ctx: StepContext) -> str:
        base = health_base_url(ctx)
        spec = _spec(ctx)
        start = time.monotonic()

        def on_attempt(text: str) -> None:
            ctx.log(text)
            ctx.progress(
                time.monotonic() - start, ctx.config.deploy.health_timeout_s, unit="s", note=text
            )

        result = check_health(
            ctx.backends.http,
            base,
            paths=spec.health_paths,
            timeout_s=ctx.config.deploy.health_timeout_s,
            model_name=ctx.config.deploy.model_name,
            on_attempt=on_attempt,
            cancelled=ctx.cancelled,
            poll_s=2.0 if ctx.backends.dry_run else 5.0,
        )
        ctx.log(f"reply: {result.reply}")
        ctx.set_artifact("reply", result.reply)
        ctx.set_artifact("ttft_s", round(result.ttft_s, 3))
        ctx.set_artifact("base_url", base)
        ctx.set_artifact("model", result.model)
        ctx.set_artifact("checked_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return f"{base} answered a completion in {result.total_s:.1f} s (time to first token {result.ttft_s:.2f} s)"


def curl_line(base: str, model: str) -> str:
    return (
        f"curl -s {base}/v1/chat/completions -H 'Content-Type: application/json' "
        f'-d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello"}}]}}\''
    )
