"""Kubernetes backend: a thin adapter over the official client, speaking JSON dicts.

Honours KUBECONFIG and contexts like kubectl. Transient errors (connection reset, 5xx, 429)
retry with exponential backoff; 4xx errors become messages that say what to do (403 names the
RBAC verb and resource that are missing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from leviathan_tui.config import ClusterConfig
from leviathan_tui.errors import StepError

FIELD_MANAGER = "leviathan"
PSA_LABEL = "pod-security.kubernetes.io/enforce"


class KubeError(StepError):
    def __init__(self, message: str, hint: str = "", status: int = 0) -> None:
        super().__init__(message, hint)
        self.status = status


@dataclass
class NodeInfo:
    name: str
    ready: bool
    labels: dict[str, str] = field(default_factory=dict)
    cpu: float = 0.0
    memory_bytes: int = 0
    gpus: int = 0
    os_image: str = ""
    kubelet_version: str = ""
    internal_ip: str = ""
    conditions: dict[str, str] = field(default_factory=dict)


@dataclass
class PodStatus:
    name: str
    phase: str  # Pending Running Succeeded Failed Unknown, or Missing
    exit_code: int | None = None
    reason: str = ""  # waiting/terminated reason: ImagePullBackOff, OOMKilled, CrashLoopBackOff...
    message: str = ""
    restarts: int = 0
    last_terminated_reason: str = ""
    ready: bool = False
    node: str = ""


def parse_quantity(value: str | int | float | None) -> float:
    """Kubernetes quantity ('512Gi', '2000m', '1.5e3') to a number."""
    if value is None:
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    suffixes = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "Pi": 2**50,
        "Ei": 2**60,
        "n": 1e-9,
        "u": 1e-6,
        "m": 1e-3,
        "k": 1e3,
        "K": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "P": 1e15,
        "E": 1e18,
    }
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * suffixes[suffix]
    return float(text)


def node_from_json(raw: dict[str, Any]) -> NodeInfo:
    status = raw.get("status") or {}
    alloc = status.get("allocatable") or {}
    conditions = {c.get("type", ""): c.get("status", "") for c in status.get("conditions") or []}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return NodeInfo(
        name=raw["metadata"]["name"],
        ready=conditions.get("Ready") == "True",
        labels=dict(raw["metadata"].get("labels") or {}),
        cpu=parse_quantity(alloc.get("cpu")),
        memory_bytes=int(parse_quantity(alloc.get("memory"))),
        gpus=int(parse_quantity(alloc.get("nvidia.com/gpu"))),
        os_image=info.get("osImage", ""),
        kubelet_version=info.get("kubeletVersion", ""),
        internal_ip=addresses.get("InternalIP") or "",
        conditions=conditions,
    )


def pod_status_from_json(raw: dict[str, Any]) -> PodStatus:
    status = raw.get("status") or {}
    result = PodStatus(
        raw["metadata"]["name"],
        status.get("phase", "Unknown"),
        node=(raw.get("spec") or {}).get("nodeName", ""),
    )
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    sched = conditions.get("PodScheduled")
    if sched and sched.get("status") == "False":
        result.reason = sched.get("reason", "Unschedulable")
        result.message = sched.get("message", "")
    for cs in status.get("containerStatuses") or []:
        result.restarts = max(result.restarts, int(cs.get("restartCount") or 0))
        result.ready = bool(cs.get("ready"))
        state = cs.get("state") or {}
        if "waiting" in state:
            result.reason = state["waiting"].get("reason", "") or result.reason
            result.message = state["waiting"].get("message", "") or result.message
        if "terminated" in state:
            term = state["terminated"]
            result.exit_code = term.get("exitCode")
            result.reason = term.get("reason", "") or result.reason
            result.message = term.get("message", "") or result.message
        last = (cs.get("lastState") or {}).get("terminated")
        if last:
            result.last_terminated_reason = last.get("reason", "")
    return result


def _is_transient(err: BaseException) -> bool:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(err, ApiException):
        return err.status in (0, 429) or (err.status or 0) >= 500
    return isinstance(err, HTTPError | ConnectionError | TimeoutError)


def _status_message(err: Any) -> str:
    try:
        body = json.loads(err.body)
        return body.get("message") or err.reason
    except (TypeError, ValueError, AttributeError):
        return str(getattr(err, "reason", err))


class KubeBackend:
    """Real cluster access. The client is imported on first use (it is slow to import)."""

    def __init__(
        self, cluster: ClusterConfig, on_retry: Callable[[str], None] | None = None
    ) -> None:
        self.cluster = cluster
        self.on_retry = on_retry or (lambda _msg: None)
        self._api: Any = None
        self._core: Any = None
        self._apps: Any = None

    # --- plumbing ---------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._api is not None:
            return
        from kubernetes import client
        from kubernetes import config as kconfig
        from kubernetes.config.config_exception import ConfigException

        try:
            kconfig.load_kube_config(
                config_file=self.cluster.kubeconfig, context=self.cluster.context
            )
        except (ConfigException, OSError, TypeError) as err:
            raise KubeError(
                f"cannot load the kubeconfig: {err}",
                "set cluster.kubeconfig / cluster.context, or KUBECONFIG, to a file that reaches the Talos cluster "
                "(talosctl kubeconfig writes one)",
            ) from None
        self._api = client.ApiClient()
        self._core = client.CoreV1Api(self._api)
        self._apps = client.AppsV1Api(self._api)

    def describe(self) -> tuple[str, str]:
        """(context, API server URL) the kubeconfig points at; reads files only."""
        from kubernetes import client
        from kubernetes import config as kconfig
        from kubernetes.config.config_exception import ConfigException

        self._connect()
        try:
            _, active = kconfig.list_kube_config_contexts(config_file=self.cluster.kubeconfig)
        except (ConfigException, OSError, TypeError):
            active = None
        name = self.cluster.context or (active or {}).get("name", "") or "?"
        return name, client.Configuration.get_default_copy().host

    def _call(
        self,
        verb: str,
        resource: str,
        fn: Callable[[], Any],
        *,
        namespace: str = "",
        allow_404: bool = False,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException
        from tenacity import (
            RetryError,
            Retrying,
            retry_if_exception,
            stop_after_attempt,
            wait_exponential,
        )

        self._connect()

        def before_sleep(retry_state: Any) -> None:
            err = retry_state.outcome.exception()
            self.on_retry(
                f"API {verb} {resource}: {_describe(err)}; retry {retry_state.attempt_number}/{self.cluster.api_retries}"
            )

        try:
            for attempt in Retrying(
                retry=retry_if_exception(_is_transient),
                stop=stop_after_attempt(self.cluster.api_retries + 1),
                wait=wait_exponential(multiplier=0.2, max=10),
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    return fn()
        except ApiException as err:
            if err.status == 404 and allow_404:
                return None
            raise self._explain(err, verb, resource, namespace) from None
        except RetryError as err:  # pragma: no cover - reraise=True makes this rare
            raise KubeError(f"API {verb} {resource}: {err}") from None
        except Exception as err:
            if type(err).__name__ == "ValidationError" and type(err).__module__.startswith(
                "pydantic"
            ):
                raise KubeError(
                    f"the Kubernetes client refused the {resource} before sending it: {str(err).splitlines()[0:3]}",
                    "the manifest has a field this client version does not know; `leviathan render` shows it",
                ) from None
            if _is_transient(err):
                raise KubeError(
                    f"the Kubernetes API did not answer {verb} {resource}: {_describe(err)}",
                    "check that the cluster is reachable (kubectl get nodes) and retry; the session resumes",
                ) from None
            raise

    def _explain(self, err: Any, verb: str, resource: str, namespace: str) -> KubeError:
        msg = _status_message(err)
        where = f" in namespace {namespace}" if namespace else ""
        if err.status == 403:
            return KubeError(
                f"forbidden: {verb} {resource}{where}: {msg}",
                f"grant your user the RBAC verb '{verb}' on '{resource}'{where} (e.g. a Role/ClusterRole + binding)",
                403,
            )
        if err.status == 401:
            return KubeError(
                f"unauthorized: {msg}",
                "your kubeconfig's credentials expired or are wrong; refresh them (talosctl kubeconfig)",
                401,
            )
        if err.status == 422:
            return KubeError(
                f"the API refused the {resource}: {msg}",
                "this manifest is invalid for your cluster's version; `leviathan render` shows it",
                422,
            )
        if (err.status or 0) >= 500 or err.status == 429:
            return KubeError(
                f"the API kept failing {verb} {resource} ({err.status}): {msg}",
                "the API server is overloaded or down; retry later",
                err.status,
            )
        return KubeError(
            f"{verb} {resource}{where} failed ({err.status}): {msg}", "", err.status or 0
        )

    @staticmethod
    def _json(response: Any) -> Any:
        data = response.data if hasattr(response, "data") else response
        return json.loads(data) if data else None

    def _read(
        self, resource: str, fn: Callable[[], Any], namespace: str = ""
    ) -> dict[str, Any] | None:
        """GET one object as JSON; None when it does not exist."""
        raw = self._call("get", resource, fn, namespace=namespace, allow_404=True)
        return None if raw is None else self._json(raw)

    # --- nodes ------------------------------------------------------------------------------

    def list_nodes(self) -> list[NodeInfo]:
        raw = self._json(
            self._call("list", "nodes", lambda: self._core.list_node(_preload_content=False))
        )
        return [node_from_json(item) for item in raw.get("items", [])]

    def get_node(self, name: str) -> NodeInfo | None:
        raw = self._read("nodes", lambda: self._core.read_node(name, _preload_content=False))
        return None if raw is None else node_from_json(raw)

    # --- namespaces -------------------------------------------------------------------------

    def ensure_namespace(self, manifest: dict[str, Any]) -> str:
        """Create the namespace, or add the privileged PSA label to an existing one. Says which."""
        name = manifest["metadata"]["name"]
        labels = self.namespace_labels(name)
        if labels is None:
            self._call(
                "create",
                "namespaces",
                lambda: self._core.create_namespace(manifest, _preload_content=False),
            )
            return f"created namespace {name} with {PSA_LABEL}=privileged"
        if labels.get(PSA_LABEL) == "privileged":
            return f"namespace {name} exists with {PSA_LABEL}=privileged"
        patch = {"metadata": {"labels": manifest["metadata"]["labels"]}}
        self._call(
            "patch",
            "namespaces",
            lambda: self._core.patch_namespace(name, patch, _preload_content=False),
        )
        was = labels.get(PSA_LABEL, "unset (Talos default: baseline)")
        return f"namespace {name} existed with {PSA_LABEL}={was}; added {PSA_LABEL}=privileged (needed for the privileged storage pod)"

    def namespace_labels(self, name: str) -> dict[str, str] | None:
        raw = self._read(
            "namespaces", lambda: self._core.read_namespace(name, _preload_content=False)
        )
        return None if raw is None else dict((raw.get("metadata") or {}).get("labels") or {})

    # --- config maps and pods ---------------------------------------------------------------

    def put_configmap(self, manifest: dict[str, Any]) -> None:
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        existing = self._read(
            "configmaps",
            lambda: self._core.read_namespaced_config_map(name, ns, _preload_content=False),
            ns,
        )
        if existing is None:
            self._call(
                "create",
                "configmaps",
                lambda: self._core.create_namespaced_config_map(
                    ns, manifest, _preload_content=False
                ),
                namespace=ns,
            )
        else:
            self._call(
                "update",
                "configmaps",
                lambda: self._core.replace_namespaced_config_map(
                    name, ns, manifest, _preload_content=False
                ),
                namespace=ns,
            )

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(
            "pods",
            lambda: self._core.read_namespaced_pod(name, namespace, _preload_content=False),
            namespace,
        )

    def pod_status(self, namespace: str, name: str) -> PodStatus:
        raw = self.get_pod(namespace, name)
        return PodStatus(name, "Missing") if raw is None else pod_status_from_json(raw)

    def delete_pod(self, namespace: str, name: str, wait_s: float = 60.0) -> None:
        self._call(
            "delete",
            "pods",
            lambda: self._core.delete_namespaced_pod(
                name, namespace, grace_period_seconds=0, _preload_content=False
            ),
            namespace=namespace,
            allow_404=True,
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and self.get_pod(namespace, name) is not None:
            time.sleep(0.2)

    def recreate_pod(self, manifest: dict[str, Any]) -> None:
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        if self.get_pod(ns, name) is not None:
            self.delete_pod(ns, name)
        self._call(
            "create",
            "pods",
            lambda: self._core.create_namespaced_pod(ns, manifest, _preload_content=False),
            namespace=ns,
        )

    def follow_logs(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        previous: bool = False,
        follow: bool = True,
    ) -> Iterator[str]:
        response = self._call(
            "get",
            "pods/log",
            lambda: self._core.read_namespaced_pod_log(
                name,
                namespace,
                container=container,
                follow=follow,
                previous=previous or None,
                _preload_content=False,
            ),
            namespace=namespace,
        )
        buffer = b""
        try:
            for chunk in response.stream(4096):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    yield line.decode("utf-8", errors="replace")
            if buffer:
                yield buffer.decode("utf-8", errors="replace")
        finally:
            response.release_conn()

    def pod_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={name}"
        raw = self._json(
            self._call(
                "list",
                "events",
                lambda: self._core.list_namespaced_event(
                    namespace, field_selector=selector, _preload_content=False
                ),
                namespace=namespace,
            )
        )
        items = raw.get("items", [])
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        raw = self._json(
            self._call(
                "list",
                "pods",
                lambda: self._core.list_namespaced_pod(
                    namespace, label_selector=selector, _preload_content=False
                ),
                namespace=namespace,
            )
        )
        return raw.get("items", [])

    # --- server-side apply ------------------------------------------------------------------

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind = manifest["kind"]
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        kwargs = dict(
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
            _preload_content=False,
        )
        if kind == "Deployment":
            call = lambda: self._apps.patch_namespaced_deployment(name, ns, manifest, **kwargs)  # noqa: E731
            resource = "deployments"
        elif kind == "Service":
            call = lambda: self._core.patch_namespaced_service(name, ns, manifest, **kwargs)  # noqa: E731
            resource = "services"
        else:
            raise ValueError(f"apply: unsupported kind {kind}")
        return self._json(self._call("patch", resource, call, namespace=ns))

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(
            "deployments",
            lambda: self._apps.read_namespaced_deployment(name, namespace, _preload_content=False),
            namespace,
        )

    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(
            "services",
            lambda: self._core.read_namespaced_service(name, namespace, _preload_content=False),
            namespace,
        )


def _describe(err: BaseException | None) -> str:
    if err is None:
        return "unknown error"
    status = getattr(err, "status", None)
    if status:
        return f"HTTP {status} {getattr(err, 'reason', '')}".strip()
    return f"{type(err).__name__}: {err}"[:200]
