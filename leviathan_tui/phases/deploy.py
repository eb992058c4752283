"""Deploy: size the model against the node, apply the Deployment and Service (server-side
apply), follow the rollout with explanations, then prove health with a real completion."""

from __future__ import annotations

import time
from typing import Any

from leviathan_tui.config import Config
from leviathan_tui.diagnose import explain_pod
from leviathan_tui.errors import StepError
from leviathan_tui.estimate import MemoryEstimate, estimate, read_header
from leviathan_tui.events import Question
from leviathan_tui.health import check_health
from leviathan_tui.inference import engine_spec, vllm_fits
from leviathan_tui.records import (
    Health,
    ImageRef,
    ModelFiles,
    ModelPlan,
    MountProof,
    NodeFacts,
    Record,
    Rollout,
)
from leviathan_tui.render.manifests import deployment, service
from leviathan_tui.runner import Step, StepContext
from leviathan_tui.units import human_size

RAM_WARN_FRACTION = 0.9


def memory_estimate(ctx: StepContext, experts_in_ram: bool) -> MemoryEstimate | None:
    plan = ctx.get(ModelPlan)
    if plan is None or not plan.gguf:
        return None
    hub = ctx.backends.hub
    headers = []
    for f in sorted(plan.gguf, key=lambda f: f.name):
        headers.append(read_header(lambda n, p=f.path: hub.head_bytes(p, n)))
    return estimate(
        headers,
        cache_lens=ctx.config.deploy.cache_lens,
        experts_in_ram=experts_in_ram,
        overhead_bytes=int(ctx.config.deploy.memory_overhead_gib * 2**30),
    )


def _spec(ctx: StepContext) -> Any:
    image = ctx.get(ImageRef) if ctx.config.deploy.engine == "ktransformers" else None
    facts = ctx.get(NodeFacts)
    plan = ctx.get(ModelPlan)
    cpus = ctx.config.deploy.cpu_infer or max(1, int(facts.cpu if facts else 34) - 2)
    return engine_spec(
        ctx.config,
        digest=image.digest if image else None,
        cpu_infer=cpus,
        first_shard=plan.first_shard if plan else "",
    )


def rendered(ctx: StepContext, memory_request: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    return deployment(ctx.config, spec=_spec(ctx), memory_request_bytes=memory_request), service(
        ctx.config
    )


class ApplyStep(Step):
    id = "deploy.apply"
    title = "Apply the Deployment and NodePort Service"
    phase = "deploy"
    publishes = (Rollout,)

    def reads(self, config: Config) -> tuple[type[Record], ...]:
        base: tuple[type[Record], ...] = (NodeFacts, MountProof, ModelPlan, ModelFiles)
        # only KTransformers runs the image built here: the fallbacks deploy while a build fails
        return base + (ImageRef,) if config.deploy.engine == "ktransformers" else base

    def check(self, ctx: StepContext) -> str | None:
        rollout = ctx.get(Rollout)
        spec = _spec(ctx)
        if rollout is None or rollout.image != spec.image or list(rollout.args) != spec.args:
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
        pod = self._follow_rollout(ctx)
        ctx.publish(
            Rollout(
                spec.name,
                spec.image,
                tuple(spec.args),
                pod,
                self._estimate.ram_bytes if self._estimate else None,
                self._estimate.vram_bytes if self._estimate else None,
            )
        )
        return f"{spec.name} pod {pod} running on {ctx.config.cluster.node_name} ({spec.image})"

    _estimate: MemoryEstimate | None = None

    def _preflight(self, ctx: StepContext, spec: Any) -> int | None:
        self._estimate = None
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
        self._estimate = est
        facts = ctx.get(NodeFacts)
        node_mem = facts.memory_bytes if facts else 0
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
                    expected="accept",
                    placeholder="accept",
                    reuse_answer=False,
                    risks=tuple(risks),
                    validate=lambda a: (
                        None
                        if str(a).strip() == "accept"
                        else "type 'accept' to deploy despite the risk"
                    ),
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
                        ctx.pod_state(
                            status.name,
                            status.phase,
                            str(event.get("reason") or ""),
                            status.restarts,
                            str(event.get("message") or ""),
                        )
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
                    ctx.pod_state(
                        status.name, status.phase, status.reason, status.restarts, status.message
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
                        ctx.explain(found.cause, found.fix, found.rule)
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
            need = self._estimate.ram_bytes if self._estimate else None
            facts = ctx.get(NodeFacts)
            have = facts.memory_bytes if facts else None
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
    facts = ctx.get(NodeFacts)
    ip = facts.internal_ip if facts else ""
    if not ip:
        raise StepError(
            "the node's InternalIP is unknown", "set deploy.health_url to http://NODE:30000"
        )
    return f"http://{ip}:{ctx.config.deploy.node_port}"


class HealthStep(Step):
    id = "deploy.health"
    title = "Health check: a real completion"
    phase = "deploy"
    publishes = (Health,)
    reads_records = (Rollout,)

    def check(self, ctx: StepContext) -> str | None:
        health = ctx.get(Health)
        if health is None or ctx.state.status("deploy.apply") != "skipped":
            return None
        base = health_base_url(ctx)
        for path in _spec(ctx).health_paths:
            result = ctx.backends.http.request("GET", base + path, timeout=5.0)
            if result.status == 200:
                return f"{base}{path} answers 200; a completion was proven at {health.checked_at}"
        return None

    def run(self, ctx: StepContext) -> str:
        base = health_base_url(ctx)
        spec = _spec(ctx)
        start = time.monotonic()

        def on_attempt(text: str) -> None:
            ctx.log(text)
            ctx.health_attempt(text, time.monotonic() - start, ctx.config.deploy.health_timeout_s)

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
        ctx.publish(
            Health(
                base_url=base,
                model=result.model,
                reply=result.reply,
                ttft_s=round(result.ttft_s, 3),
                checked_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                liveness_path=result.liveness_path,
            )
        )
        return f"{base} answered a completion in {result.total_s:.1f} s (time to first token {result.ttft_s:.2f} s)"


def curl_line(base: str, model: str) -> str:
    return (
        f"curl -s {base}/v1/chat/completions -H 'Content-Type: application/json' "
        f'-d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello"}}]}}\''
    )
