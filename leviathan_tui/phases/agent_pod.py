"""Run a node agent in a helper pod and follow its JSON events through the pod's logs.

A pod that is still running from an earlier session with the same command is followed, not
replaced: a download that outlived the wizard goes on and the wizard reattaches to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from leviathan_tui.diagnose import explain_pod
from leviathan_tui.errors import StepError
from leviathan_tui.render.manifests import agent_configmap
from leviathan_tui.runner import StepContext

EventHandler = Callable[[dict[str, Any]], None]


def _same_command(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    try:
        return (
            existing["spec"]["containers"][0]["command"]
            == wanted["spec"]["containers"][0]["command"]
        )
    except (KeyError, IndexError, TypeError):
        return False


def _events_text(kube: Any, namespace: str, name: str) -> str:
    try:
        events = kube.pod_events(namespace, name)
    except StepError:
        return ""
    lines = [f"{e.get('reason', '')}: {e.get('message', '')}" for e in events[-5:]]
    return "\n".join(lines)


def wait_started(ctx: StepContext, namespace: str, name: str, timeout_s: float) -> None:
    """Wait until the pod leaves Pending; on timeout say why, with the scheduler's own words."""
    kube = ctx.backends.kube
    started = time.monotonic()
    deadline = started + timeout_s
    last_reason = ""
    while True:
        ctx.check_cancelled()
        status = kube.pod_status(namespace, name)
        if status.phase in ("Running", "Succeeded", "Failed"):
            return
        if status.phase == "Missing":
            raise StepError(
                f"pod {name} vanished before it started", "something deleted it; run again"
            )
        if status.reason and status.reason != last_reason:
            last_reason = status.reason
            ctx.log(f"pod {name}: {status.reason} {status.message}".strip(), "warn")
            ctx.pod_state(name, status.phase, status.reason, status.restarts, status.message)
            cause = explain_pod(
                status.reason, status.message + "\n" + _events_text(kube, namespace, name)
            )
            if cause and cause.fatal:
                raise StepError(f"pod {name} cannot start: {cause.cause}", cause.fix)
        if time.monotonic() > deadline:
            events = _events_text(kube, namespace, name)
            cause = explain_pod(status.reason, f"{status.message}\n{events}")
            message = f"pod {name} still Pending after {timeout_s:.0f} s"
            if events:
                message += f"; events:\n{events}"
            hint = (
                cause.fix
                if cause
                else (
                    f"check that node {ctx.config.cluster.node_name} exists and is Ready (kubectl get nodes) "
                    "and that the image can be pulled"
                )
            )
            raise StepError(message, hint)
        ctx.sleep(0.2 if time.monotonic() - started < 10 else 1.0)  # most pods start within seconds


def run_agent(
    ctx: StepContext, pod: dict[str, Any], on_event: EventHandler, *, timeout_s: float | None = None
) -> dict[str, Any]:
    """Create (or reattach to) the agent pod; feed its events to `on_event`; return its result."""
    kube = ctx.backends.kube
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    kube.put_configmap(agent_configmap(ctx.config))
    existing = kube.get_pod(namespace, name)
    phase = ((existing or {}).get("status") or {}).get("phase")
    if existing is not None and phase in ("Running", "Pending") and _same_command(existing, pod):
        ctx.log(f"reattaching to pod {name} (still {phase} from an earlier session)")
    else:
        kube.recreate_pod(pod)
        ctx.log(f"started pod {name} on {pod['spec'].get('nodeName', '?')}")
    wait_started(ctx, namespace, name, timeout_s or ctx.config.cluster.pod_timeout_s)

    result: dict[str, Any] | None = None
    seen = 0
    while result is None:
        index = 0
        for line in kube.follow_logs(namespace, name):
            index += 1
            if index <= seen:  # a re-followed stream starts again from the first line
                continue
            seen = index
            if ctx.cancelled.is_set():
                break
            event = _parse(line)
            if event is None:
                if line.strip():
                    ctx.log(line.rstrip())
                continue
            if event.get("event") == "result":
                result = event
            on_event(event)
        ctx.check_cancelled()
        if result is not None:
            break
        status = kube.pod_status(namespace, name)
        if status.phase in ("Succeeded", "Failed", "Missing"):
            detail = (
                f"exit code {status.exit_code}" if status.exit_code is not None else status.phase
            )
            cause = explain_pod(status.reason, _events_text(kube, namespace, name))
            raise StepError(
                f"agent pod {name} ended ({detail}, {status.reason or 'no reason'}) without a result",
                cause.fix if cause else f"kubectl -n {namespace} logs {name}",
            )
        ctx.log(
            f"log stream of {name} closed while the pod is {status.phase}; following again", "warn"
        )
        ctx.sleep(1.0)
    return result


def _parse(line: str) -> dict[str, Any] | None:
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "event" in obj else None
