"""Storage: probe the node's disks, let the operator choose and confirm, format and mount, then
prove the node itself sees the mount."""

from __future__ import annotations

import os
import secrets
from typing import Any

from leviathan_tui.agent.lsblk import BlockDevice, assess, human_size
from leviathan_tui.engine import Step, StepContext
from leviathan_tui.errors import RefusedAnswer, StepError
from leviathan_tui.events import Choice, Question
from leviathan_tui.manifests import (
    agent_pod,
    host_check_pod,
    parse_talos_version,
    talos_storage_patch,
)
from leviathan_tui.phases.agent_pod import run_agent

PROBE_POD = "sysadmin-logistics-probe"
FORMAT_POD = "sysadmin-logistics"
MARKER_POD = "sysadmin-logistics-marker"
MARKER_FILE = ".leviathan-marker"

Q_DEVICE = "storage.device"
Q_CONFIRM = "storage.confirm_format"
Q_CONFIRM_FOREIGN = "storage.confirm_foreign"
A_SERIAL = "storage.device_serial"
A_SIZE = "storage.device_size"


def device_choice(dev: BlockDevice, label: str, mountpoint: str | None = None) -> Choice:
    verdict = assess(dev, label, mountpoint)
    fs = dev.fstype or ("partitioned" if dev.children else "")
    text = f"{dev.path}  {human_size(dev.size)}  {dev.model or '-'}  serial {dev.serial or '-'}"
    if verdict.ours:
        text += "  (Leviathan XFS: will be mounted, not formatted)"
    elif verdict.foreign:
        text += f"  (holds {verdict.foreign})"
    return Choice(
        dev.path,
        text,
        selectable=verdict.selectable,
        reason=verdict.reason,
        details={
            "name": dev.name,
            "size": dev.size,
            "size_h": human_size(dev.size),
            "model": dev.model,
            "serial": dev.serial,
            "transport": dev.transport,
            "rotational": dev.rotational,
            "fstype": fs,
            "label": dev.label,
            "mounts": dev.all_mounts,
            "ours": verdict.ours,
            "foreign": verdict.foreign,
            "by_id": dev.by_id,
        },
    )


def probed_devices(ctx: StepContext) -> list[BlockDevice]:
    raw = ctx.artifact("devices", step="storage.probe") or []
    return [BlockDevice.from_json(d) for d in raw]


class ProbeStep(Step):
    id = "storage.probe"
    title = "List the node's disks"
    phase = "storage"
    needs = ("preflight.node",)

    def check(self, ctx: StepContext) -> str | None:
        if ctx.state.status("storage.format") in ("done", "skipped") and ctx.artifact("devices"):
            return "disk already chosen and formatted in this session"
        return None

    def run(self, ctx: StepContext) -> str:
        pod = agent_pod(
            ctx.config,
            PROBE_POD,
            "probe",
            ["--label", ctx.config.storage.label, "--mountpoint", ctx.config.storage.pod_mount],
        )
        result = run_agent(ctx, pod, lambda e: _log_device(ctx, e))
        if result.get("status") != "done":
            raise StepError(
                f"probe failed on {ctx.config.cluster.node_name}: {result.get('reason')}"
            )
        devices = result.get("devices") or []
        ctx.set_artifact("devices", devices)
        parsed = [BlockDevice.from_json(d) for d in devices]
        usable = [
            d
            for d in parsed
            if assess(d, ctx.config.storage.label, ctx.config.storage.pod_mount).selectable
        ]
        return f"{len(parsed)} block devices, {len(usable)} can hold the model"


def _log_device(ctx: StepContext, event: dict[str, Any]) -> None:
    if event.get("event") == "device":
        state = "ok" if event.get("selectable") else f"unsafe: {event.get('reason')}"
        ctx.log(
            f"{event.get('path')}  {human_size(int(event.get('size') or 0))}  {event.get('model') or '-'}  {state}"
        )


class FormatStep(Step):
    id = "storage.format"
    title = "Format and mount the data disk"
    phase = "storage"
    needs = ("storage.probe",)

    def check(self, ctx: StepContext) -> str | None:
        device, serial, size = ctx.artifact("device"), ctx.artifact("serial"), ctx.artifact("size")
        if not device or serial is None or not size:
            return None
        pod = agent_pod(
            ctx.config, FORMAT_POD, "disk", _disk_args(ctx, device, serial, size, check=True)
        )
        result = run_agent(ctx, pod, lambda e: None)
        if result.get("status") == "done":
            return f"{device} (serial {serial or '-'}) is mounted as our XFS at {ctx.config.storage.pod_mount}"
        ctx.log(f"recorded disk no longer ready: {result.get('reason')}", "warn")
        return None

    def run(self, ctx: StepContext) -> str:
        label = ctx.config.storage.label
        devices = {d.path: d for d in probed_devices(ctx)}
        if not devices:
            raise StepError("the probe found no block devices", "run the storage phase again")
        mountpoint = ctx.config.storage.pod_mount
        choices = [device_choice(d, label, mountpoint) for d in devices.values()]
        question = Question(
            Q_DEVICE,
            "Which disk should hold the model?",
            kind="choice",
            choices=choices,
            placeholder="/dev/DEVICE",
            details={
                "refusal_hint": "choose a disk from the probe listing that is not mounted and not the Talos system disk"
            },
        )
        path = str(ctx.ask(question))
        dev = devices[path]
        _check_recorded_identity(ctx, dev)
        ctx.state.set_answer(A_SERIAL, dev.serial)
        ctx.state.set_answer(A_SIZE, dev.size)
        verdict = assess(dev, label, mountpoint)
        allow_foreign = False
        if not verdict.ours:
            ctx.ask(confirm_question(dev, verdict.foreign))
            if verdict.foreign:
                ctx.ask(foreign_question(dev, verdict.foreign))
                allow_foreign = True
        args = _disk_args(ctx, dev.path, dev.serial, dev.size)
        if allow_foreign:
            args.append("--allow-foreign-fs")
        pod = agent_pod(ctx.config, FORMAT_POD, "disk", args)
        result = run_agent(ctx, pod, lambda e: _log_format(ctx, e))
        status = result.get("status")
        if status == "refused":
            raise RefusedAnswer(
                f"the node refused to format {dev.path}: {result.get('reason')}",
                "nothing was formatted; choose another disk",
            )
        if status != "done":
            raise StepError(f"formatting {dev.path} failed: {result.get('reason')}")
        for key in ("serial", "size", "free_bytes", "fs_bytes", "formatted", "by_id"):
            ctx.set_artifact(key, result.get(key))
        ctx.set_artifact("device", dev.path)
        formatted = (
            "formatted and mounted"
            if result.get("formatted")
            else "mounted (already ours, not formatted)"
        )
        return f"{dev.path} {formatted} at {ctx.config.storage.host_mount}; {human_size(int(result.get('free_bytes') or 0))} free"


def _check_recorded_identity(ctx: StepContext, dev: BlockDevice) -> None:
    """A recorded serial/size (from the session or the replay file) must still match the disk."""
    for key, actual in ((A_SERIAL, dev.serial), (A_SIZE, dev.size)):
        recorded = ctx.engine.answerer.recorded(key)
        if recorded is not None and str(recorded) != str(actual):
            raise RefusedAnswer(
                f"{dev.path} is not the recorded disk: {key} was {recorded!r}, the node now reports {actual!r}",
                "device names can move between boots; choose the disk again by serial",
            )


def _disk_args(
    ctx: StepContext, device: str, serial: str, size: int, *, check: bool = False
) -> list[str]:
    args = [
        "--device",
        device,
        "--serial",
        serial or "",
        "--size",
        str(size),
        "--label",
        ctx.config.storage.label,
        "--mountpoint",
        ctx.config.storage.pod_mount,
    ]
    if check:
        args.append("--check")
    return args


def _log_format(ctx: StepContext, event: dict[str, Any]) -> None:
    if event.get("event") == "format":
        ctx.log(
            f"{event.get('device')}: {'formatted' if event.get('formatted') else event.get('reason')}"
        )
    elif event.get("event") == "result" and event.get("status") != "done":
        ctx.log(f"refused: {event.get('reason')}", "error")


def confirm_question(dev: BlockDevice, foreign: str) -> Question:
    def validate(answer: Any) -> str | None:
        if str(answer).strip() != dev.name:
            return f"the confirmation must be the device name {dev.name!r}, got {answer!r}: nothing will be formatted"
        return None

    return Question(
        Q_CONFIRM,
        f"Format {dev.path} as XFS? Everything on it is lost. Type the device name ({dev.name}) to confirm.",
        kind="text",
        destructive=True,
        placeholder=dev.name,
        validate=validate,
        details={
            "device": dev.path,
            "name": dev.name,
            "model": dev.model,
            "serial": dev.serial,
            "size": dev.size,
            "size_h": human_size(dev.size),
            "fstype": dev.fstype or ("partitioned" if dev.children else "none"),
            "label": dev.label,
            "foreign": foreign,
        },
    )


def foreign_question(dev: BlockDevice, foreign: str) -> Question:
    expected = f"erase {dev.name}"

    def validate(answer: Any) -> str | None:
        if str(answer).strip() != expected:
            return (
                f"the second confirmation must be exactly {expected!r}: nothing will be formatted"
            )
        return None

    return Question(
        Q_CONFIRM_FOREIGN,
        f"{dev.path} already holds {foreign}. Formatting destroys that data. Type '{expected}' to go on.",
        kind="text",
        destructive=True,
        placeholder=expected,
        validate=validate,
        details={"device": dev.path, "name": dev.name, "foreign": foreign, "loud": True},
    )


class VerifyHostStep(Step):
    id = "storage.verify_host"
    title = "Prove the node sees the mount"
    phase = "storage"
    needs = ("storage.format",)

    def check(self, ctx: StepContext) -> str | None:
        token = ctx.artifact("token")
        if (
            token
            and ctx.artifact("serial") == ctx.artifact("serial", step="storage.format")
            and ctx.state.status("storage.format") == "skipped"
        ):
            return "the node saw the disk's marker earlier and the disk is still mounted"
        return None

    def run(self, ctx: StepContext) -> str:
        token = secrets.token_hex(8)
        mount = ctx.config.storage.pod_mount
        writer = agent_pod(
            ctx.config,
            MARKER_POD,
            "hostcheck",
            ["--path", mount, "--marker", MARKER_FILE, "--write", token],
        )
        result = run_agent(ctx, writer, lambda e: None)
        if result.get("status") != "done":
            raise StepError(
                f"cannot write the marker through the privileged pod: {result.get('reason')}"
            )
        reader = host_check_pod(ctx.config, MARKER_FILE)
        result = run_agent(ctx, reader, lambda e: None)
        seen = result.get("marker")
        if result.get("status") != "done" or seen != token:
            version = parse_talos_version(ctx.artifact("os_image", step="preflight.node") or "")
            why, patch = talos_storage_patch(
                ctx.config, version, ctx.artifact("serial", step="storage.format")
            )
            path = _save_patch(ctx, patch)
            raise StepError(
                f"the disk mounted in the privileged pod is not visible to other pods on the node "
                f"({result.get('reason') or f'marker {seen!r} != {token!r}'}). {why}",
                f"apply the Talos patch saved at {path} (talosctl -n {ctx.config.cluster.node_name} patch mc --patch @{path}), "
                "reboot the node if Talos asks, then run Leviathan again",
            )
        ctx.set_artifact("token", token)
        ctx.set_artifact("serial", ctx.artifact("serial", step="storage.format"))
        return f"an unprivileged pod sees the XFS at {ctx.config.storage.host_mount}"


def _save_patch(ctx: StepContext, patch: str) -> str:
    path = ctx.state.directory / "talos-storage-patch.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(patch, encoding="utf-8")
    return os.fspath(path)
