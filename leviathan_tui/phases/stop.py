"""What goes on after the wizard stops, and stopping it: the download pod on the node, the helper
pods, and the detached build or push on the build host."""

from __future__ import annotations

from typing import Any

from leviathan_tui.config import Config
from leviathan_tui.errors import LeviathanError
from leviathan_tui.phases.download import FETCH_POD
from leviathan_tui.phases.storage import FORMAT_POD, MARKER_POD, PROBE_POD
from leviathan_tui.records import BuildJob
from leviathan_tui.state import State

HELPER_PODS = (
    FETCH_POD,
    FETCH_POD + "-check",
    FETCH_POD + "-verify",
    PROBE_POD,
    FORMAT_POD,
    MARKER_POD,
    "leviathan-host-check",
)
UNFINISHED = ("running", "interrupted")
STOPPED = "stopped on request (leviathan stop, or Stop it and quit); the next run takes it up"
STOPPED_MARKS = (STOPPED, "stopped by leviathan stop; the next run starts it again")  # and before
STEP_OF_POD = {FETCH_POD: "download.fetch"}


def _left_running(state: State, step_id: str) -> bool:
    record = state.steps.get(step_id)
    return record is not None and record.status in UNFINISHED and record.error not in STOPPED_MARKS


def _mark_stopped(state: State, step_id: str) -> None:
    if _left_running(state, step_id):
        state.set_status(step_id, "interrupted", error=STOPPED)


def still_running(state: State, config: Config, dry_run: bool) -> list[str]:
    """What may still run on the node or the build host, from the saved session."""
    items = []
    # a dry run's pods are local processes, deleted when it closes; its build host's are not
    if _left_running(state, "download.fetch") and not dry_run:
        items.append(f"the download (pod {FETCH_POD} on {config.cluster.node_name})")
    job = state.get(BuildJob)
    for step, what in (("build.image", "image build"), ("build.push", "push")):
        if _left_running(state, step) and job is not None:
            items.append(f"the {what} on {config.ssh.host} (in {job.remote_dir})")
    return items


def goes_on_after(
    running: list[str], waiting: list[str], config: Config, dry_run: bool
) -> list[str]:
    """For steps running now: what keeps running after the wizard quits, and what stops.
    A step waiting for an answer has started nothing yet: it asks again on the next run."""
    items = [f"{step} waits for your answer: it asks again on the next run" for step in waiting]
    for step in running:
        if step == "download.fetch" and dry_run:
            items.append("the download stops with the dry run and resumes on the next run")
        elif step == "download.fetch":
            items.append(f"the download goes on (pod {FETCH_POD} on {config.cluster.node_name})")
        elif step in ("build.image", "build.push"):
            what = "image build" if step == "build.image" else "push"
            items.append(f"the {what} keeps running on {config.ssh.host} (detached)")
        else:
            items.append(f"{step} stops and resumes on the next run")
    return items


def stop_work(config: Config, backends: Any, state: State, log: Any) -> list[str]:
    """Delete Leviathan's helper pods and stop the remote build and push; returns what was done.
    The Deployment and the files on the disks are left alone."""
    done: list[str] = []
    namespace = config.cluster.namespace
    for name in HELPER_PODS:
        try:
            if backends.kube.get_pod(namespace, name) is not None:
                backends.kube.delete_pod(namespace, name)
                if name in STEP_OF_POD:
                    _mark_stopped(state, STEP_OF_POD[name])
                done.append(f"deleted pod {name}")
                log(f"deleted pod {namespace}/{name}")
        except LeviathanError as err:
            log(f"cannot delete pod {name}: {err.message}")
    job = state.get(BuildJob)
    if job is not None:
        from leviathan_tui.render.remote_job import stop_command

        def no_new_keys(host: str, key_type: str, fingerprint: str) -> bool:
            raise LeviathanError(
                f"the build host {host} presents a key that is not in known_hosts ({fingerprint})",
                "connect once with the wizard to accept it, then stop again",
            )

        def no_secrets(prompt: str) -> str:
            raise LeviathanError(
                "the SSH key needs a passphrase", "load it into ssh-agent (ssh-add) and stop again"
            )

        try:
            session = backends.ssh.connect(no_new_keys, no_secrets)
        except LeviathanError as err:
            log(f"cannot reach the build host to stop the build: {err.message}")
            return done
        try:
            for name in ("build", "push"):
                code, out, err = session.run(stop_command(job.remote_dir, name))
                if code == 0 and out.strip() == "stopped":
                    _mark_stopped(state, "build.image" if name == "build" else "build.push")
                    done.append(f"stopped the {name} on {config.ssh.host}")
                    log(f"stopped the {name} in {job.remote_dir} on {config.ssh.host}")
        finally:
            session.close()
    return done
