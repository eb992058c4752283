"""Deploy: size the model against the node, apply the Deployment and Service (server-side
apply), follow the rollout with explanations, then prove health with a real completion and
measure the service (the serving benchmark).

vLLM reads one GGUF file; before its rollout the shards are merged in a pod on the node.
After a failed KTransformers build, `offer_fallback` says how to deploy llama.cpp's upstream
image instead (no build): the front-ends ask `deploy.fallback_engine` and re-run the deploy
phase with `EngineFallback.config`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from leviathan_tui.backends.http import BadUrl, Deadline, HttpBackend, normalize_base_url
from leviathan_tui.config import Config
from leviathan_tui.diagnose import explain_pod
from leviathan_tui.errors import Cancelled, StepError
from leviathan_tui.estimate import MemoryEstimate, estimate, read_header
from leviathan_tui.events import Choice, Question
from leviathan_tui.health import HINT_BAD_URL, HINT_SLOW, complete, wait_alive
from leviathan_tui.inference import (
    EngineSpec,
    engine_spec,
    gpu_bytes_per_gpu,
    merged_gguf_dir,
    merged_gguf_name,
    vllm_fits,
)
from leviathan_tui.phases.agent_pod import run_agent
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
from leviathan_tui.render.manifests import agent_pod, deployment, service
from leviathan_tui.runner import Step, StepContext
from leviathan_tui.serving_bench import bench_rows, render_bench, run_bench
from leviathan_tui.units import human_size

T = TypeVar("T")
RAM_WARN_FRACTION = 0.9


def memory_estimate(ctx: StepContext, spec: EngineSpec) -> MemoryEstimate | None:
    plan = ctx.get(ModelPlan)
    if plan is None or not plan.gguf:
        return None
    hub = ctx.backends.hub
    headers = []
    for f in sorted(plan.gguf, key=lambda f: f.name):
        headers.append(read_header(lambda n, p=f.path: hub.head_bytes(p, n)))
    return estimate(
        headers,
        cache_lens=spec.kv_tokens,
        experts_in_ram=spec.experts_in_ram,
        overhead_bytes=int(ctx.config.deploy.memory_overhead_gib * 2**30),
    )


def _spec(ctx: StepContext) -> EngineSpec:
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


def pod_shape(dep: dict[str, Any]) -> dict[str, Any]:
    """What the engine pod runs and sees, in a form the API server's defaults leave alone."""
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    return {
        "image": container.get("image"),
        "command": container.get("command"),
        "args": container.get("args"),
        "env": sorted((e["name"], e.get("value")) for e in container.get("env") or []),
        "mounts": sorted(
            (m["name"], m["mountPath"], bool(m.get("readOnly")))
            for m in container.get("volumeMounts") or []
        ),
        "host_paths": sorted(
            (v["name"], v["hostPath"]["path"]) for v in pod.get("volumes") or [] if "hostPath" in v
        ),
    }


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
        wanted = deployment(ctx.config, spec=spec)
        if pod_shape(dep) != pod_shape(wanted):
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
        if spec.name == "vllm":
            merge_for_vllm(ctx)
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

    def _preflight(self, ctx: StepContext, spec: EngineSpec) -> int | None:
        self._estimate = None
        try:
            est = memory_estimate(ctx, spec)
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
        node_gpu_mib = next(
            (g.memory_mib for g in (facts.gpus if facts else ()) if g.memory_mib), None
        )
        gpu_mem = ctx.config.deploy.gpus * gpu_bytes_per_gpu(ctx.config, node_gpu_mib)
        if spec.name == "vllm":
            fits, reason = vllm_fits(est.expert_bytes + est.dense_bytes, ctx.config, node_gpu_mib)
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
        d = ctx.config.deploy
        try:
            base = normalize_base_url(health_base_url(ctx))
        except BadUrl as err:
            raise StepError(f"the health URL is not usable: {err}", HINT_BAD_URL) from None
        spec = _spec(ctx)
        http = ctx.backends.http
        start = time.monotonic()

        def on_attempt(text: str) -> None:
            ctx.log(text)
            ctx.health_attempt(text, time.monotonic() - start, d.health_timeout_s)

        # the load may take an hour; the completion gets its own budget once the server answers
        path, ids = wait_alive(
            http,
            base,
            spec.health_paths,
            d.health_timeout_s,
            on_attempt,
            ctx.cancelled,
            2.0 if ctx.backends.dry_run else 5.0,
        )
        model = d.model_name if (not ids or d.model_name in ids) else ids[0]
        on_attempt(f"{path} answers; sending one chat completion to model {model}")
        reply, ttft, total = _completion(http, base, model, d.completion_timeout_s)
        ctx.log(f"reply: {reply}")
        health = Health(
            base_url=base,
            model=model,
            reply=reply,
            ttft_s=round(ttft, 3),
            checked_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            liveness_path=path,
        )
        ctx.publish(health)  # health is proven whatever the benchmark does
        summary = (
            f"{base} answered a completion in {total:.1f} s (time to first token {ttft:.2f} s)"
        )
        rows = self._bench(ctx, http, base, model)
        if rows:
            ctx.publish(dataclasses.replace(health, bench=rows))
        return summary

    def _bench(
        self, ctx: StepContext, http: Any, base: str, model: str
    ) -> tuple[tuple[str, str], ...]:
        d = ctx.config.deploy
        if d.bench_timeout_s <= 0:
            ctx.log("serving benchmark skipped (deploy.bench_timeout_s is 0)")
            return ()
        if not isinstance(http, HttpBackend):
            ctx.log("serving benchmark skipped: the dry run has no engine to measure")
            return ()
        ctx.log(
            f"serving benchmark: 1 and {d.max_batch_size} streams, at most {d.bench_timeout_s:.0f} s"
        )
        try:
            result = _interruptible(
                ctx,
                lambda: run_bench(
                    http,
                    base,
                    model,
                    max_batch_size=d.max_batch_size,
                    timeout_s=d.bench_timeout_s,
                    on_progress=lambda text: ctx.log(f"bench: {text}"),
                ),
            )
        except StepError as err:
            ctx.log(f"serving benchmark failed: {err.message}", "warn")
            ctx.explain(f"the serving benchmark failed: {err.message}", err.hint, "bench")
            return (("benchmark", f"failed: {err.message}"),)
        for line in render_bench(result).splitlines():
            ctx.log(line)
        return bench_rows(result)


def _completion(http: Any, base: str, model: str, timeout_s: float) -> tuple[str, float, float]:
    """One chat completion within its own budget: (reply, time to first token, total time)."""
    if isinstance(http, HttpBackend):
        try:
            deadline = Deadline.after(timeout_s)
        except ValueError as err:
            raise StepError(
                f"deploy.completion_timeout_s is not usable: {err}", HINT_SLOW
            ) from None
        try:
            reply = complete(http, base, model, deadline)
        except StepError as err:
            if err.hint != HINT_SLOW:
                raise
            raise StepError(
                f"{err.message} (deploy.completion_timeout_s is {timeout_s:g} s)",
                "the server answers but is too slow to finish one completion: raise "
                "deploy.completion_timeout_s, and read the pod's log",
            ) from None
        return reply.reply, reply.ttft_s, reply.total_s
    text, ttft, total = http.chat(base, model, timeout_s)  # the dry run's engine
    if not (isinstance(text, str) and text.strip()):
        raise StepError(f"the chat completion ({base}) returned no text", "read the pod's log")
    return text.strip(), ttft, total


def _interruptible(ctx: StepContext, job: Callable[[], T]) -> T:
    """Run a bounded job in a worker thread; an interrupted run stops waiting for it at once."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = job()
        except BaseException as err:  # handed to the step's thread below
            outcome["error"] = err

    worker = threading.Thread(target=work, name="leviathan-bench", daemon=True)
    worker.start()
    while worker.is_alive():
        if ctx.cancelled.wait(0.2):
            raise Cancelled()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# --- vLLM: one merged GGUF -------------------------------------------------------------------

MERGE_POD = "sysadmin-logistics-merge"


def merge_pod(config: Config, first_shard: str) -> dict[str, Any]:
    """An unprivileged pod that runs the merge agent in an image with llama-gguf-split."""
    out = f"{merged_gguf_dir(config)}/{merged_gguf_name(first_shard)}"
    pod = agent_pod(
        config,
        MERGE_POD,
        "merge",
        [
            "--first-shard",
            f"{config.gguf_dir}/{first_shard}",
            "--out",
            out,
            "--reserve",
            str(int(config.storage.min_free_margin_gib * 2**30)),
        ],
    )
    container = pod["spec"]["containers"][0]
    container["image"] = config.deploy.gguf_merge_image
    container.pop("securityContext", None)  # reading and writing files needs no privilege
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "dev"]
    for mount in container["volumeMounts"]:
        mount.pop("mountPropagation", None)
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] != "dev"]
    return pod


def merge_for_vllm(ctx: StepContext) -> None:
    """Merge the shards into the one file vLLM reads (the merge pod checks the free space)."""
    plan = ctx.need(ModelPlan)
    if not plan.first_shard:
        raise StepError("the model plan lists no GGUF shard to merge", "run preflight again")
    pod = merge_pod(ctx.config, plan.first_shard)

    def on_event(event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "log":
            ctx.log(f"merge: {event.get('line', '')}")
        elif kind == "space":
            ctx.log(
                f"merge: {human_size(int(event['need']))} needed (merged file and reserve), "
                f"{human_size(int(event['free']))} free"
            )

    ctx.log(f"merging {plan.first_shard} and its shards into one file for vLLM")
    outcome = run_agent(ctx, pod, on_event)
    if outcome.get("status") == "refused":
        raise StepError(
            f"cannot merge the shards for vLLM: {outcome.get('reason')}",
            "free space on the data disk, or deploy with deploy.engine llamacpp, which loads the shards as they are",
        )
    if outcome.get("status") != "done":
        raise StepError(
            f"merging the shards for vLLM failed: {outcome.get('reason')}",
            f"kubectl -n {ctx.config.cluster.namespace} logs {MERGE_POD}",
        )
    ctx.log(
        f"vLLM reads {outcome.get('path')} ({human_size(int(outcome.get('bytes') or 0))})"
        + ("" if outcome.get("merged") else ", merged by an earlier run")
    )


# --- after a failed build ----------------------------------------------------------------------

FALLBACK_QUESTION = "deploy.fallback_engine"
FALLBACK_ENGINE = "llamacpp"
BUILD_STEPS = ("build.image", "build.push")


@dataclass(frozen=True)
class EngineFallback:
    """Deploy llama.cpp's upstream image instead of the KTransformers image that did not build."""

    failed_step: str
    config: Config  # the same settings with deploy.engine: llamacpp
    only: tuple[str, ...] = ("deploy",)  # the phases the second run selects

    @property
    def hint(self) -> str:
        return (
            f"{self.failed_step} failed, so KTransformers cannot deploy. llama.cpp's upstream image "
            f"({self.config.deploy.llamacpp_image}) needs no build: answer '{FALLBACK_QUESTION}: "
            f"{FALLBACK_ENGINE}' in the replay file, or set 'deploy: {{engine: {FALLBACK_ENGINE}}}' "
            "in the config and run leviathan --only deploy"
        )

    def question(self) -> Question:
        return Question(
            FALLBACK_QUESTION,
            f"The KTransformers image did not build ({self.failed_step} failed). Deploy "
            f"llama.cpp's upstream image instead ({self.config.deploy.llamacpp_image}, no build)?",
            kind="choice",
            choices=[
                Choice(FALLBACK_ENGINE, "Deploy llama.cpp instead (--cpu-moe, no build)"),
                Choice("no", "Stop here and fix the build"),
            ],
            reuse_answer=False,
            placeholder=FALLBACK_ENGINE,
        )


def offer_fallback(config: Config, state: Any) -> EngineFallback | None:
    """The llama.cpp fallback, when a KTransformers build failed and everything else the
    deploy phase reads is done; None otherwise."""
    if config.deploy.engine != "ktransformers":
        return None
    failed = [s for s in BUILD_STEPS if state.status(s) == "failed"]
    if not failed:
        return None
    fallback = config.model_copy(
        update={"deploy": config.deploy.model_copy(update={"engine": FALLBACK_ENGINE})}
    )
    from leviathan_tui.phases import all_steps

    publishers = {cls: step.id for step in all_steps() for cls in step.publishes}
    needs = {publishers[cls] for cls in ApplyStep().reads(fallback)}
    if any(state.status(step_id) not in ("done", "skipped") for step_id in needs):
        return None  # the deploy phase could not run yet either
    return EngineFallback(failed[0], fallback)


def curl_line(base: str, model: str) -> str:
    return (
        f"curl -s {base}/v1/chat/completions -H 'Content-Type: application/json' "
        f'-d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello"}}]}}\''
    )
