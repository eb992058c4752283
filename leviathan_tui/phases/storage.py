"""Storage: probe the node's disks, let the operator choose and confirm, format and mount, then
prove the node itself sees the mount.

The chosen disk's identity is recorded once (the DataDisk record) and enforced on every later run:
a disk found at the recorded path with another serial, size, by-id name or filesystem UUID is
refused — never re-chosen silently, never formatted.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from leviathan_tui.agent.lsblk import BlockDevice, assess, identity_mismatch, signatures
from leviathan_tui.errors import GoBack, RefusedAnswer, StepError
from leviathan_tui.events import Choice, DeviceFacts, Question
from leviathan_tui.phases.agent_pod import run_agent
from leviathan_tui.phases.talos_patch import announce_patch, talos_patch_file
from leviathan_tui.records import DataDisk, ModelPlan, MountProof, NodeDisks, NodeFacts
from leviathan_tui.render.manifests import agent_pod, host_check_pod
from leviathan_tui.render.talos import talosctl_command
from leviathan_tui.runner import Step, StepContext
from leviathan_tui.units import decimal_size, human_size

PROBE_POD = "sysadmin-logistics-probe"
FORMAT_POD = "sysadmin-logistics"
MARKER_POD = "sysadmin-logistics-marker"
MARKER_FILE = ".leviathan-marker"

Q_DEVICE = "storage.device"
Q_CONFIRM = "storage.confirm_format"
Q_CONFIRM_FOREIGN = "storage.confirm_foreign"
FACT_SERIAL = "storage.device_serial"
FACT_SIZE = "storage.device_size"


def needed_bytes(ctx: StepContext, plan: ModelPlan | None) -> int | None:
    if plan is None:
        return None
    return plan.total + int(ctx.config.storage.min_free_margin_gib * 2**30)


def device_facts(dev: BlockDevice, label: str, mountpoint: str, need: int | None) -> DeviceFacts:
    verdict = assess(dev, label, mountpoint)
    fits = None if need is None else dev.size >= need
    fit_note = ""
    if need is not None:
        fit_note = (
            f"holds {decimal_size(dev.size)}; the model needs {decimal_size(need)} with margin"
        )
    return DeviceFacts(
        path=dev.path,
        name=dev.name,
        size=dev.size,
        model=dev.model,
        serial=dev.serial,
        transport=dev.transport,
        rotational=dev.rotational,
        fstype=dev.fstype or ("partitioned" if dev.children else ""),
        label=dev.label,
        signatures=tuple(signatures(dev)),
        mounts=tuple(dev.all_mounts),
        by_id=tuple(dev.by_id),
        ours=verdict.ours,
        foreign=verdict.foreign,
        fits=fits,
        fit_note=fit_note,
    )


def device_choice(dev: BlockDevice, label: str, mountpoint: str, need: int | None) -> Choice:
    verdict = assess(dev, label, mountpoint)
    facts = device_facts(dev, label, mountpoint, need)
    selectable, reason = verdict.selectable, verdict.reason
    if selectable and facts.fits is False:
        selectable = False
        reason = f"too small: {facts.fit_note}"
    text = f"{dev.path}  {human_size(dev.size)}  {dev.model or '-'}  serial {dev.serial or '-'}"
    if verdict.ours:
        text += "  (Leviathan XFS: will be mounted, not formatted)"
    elif verdict.foreign:
        text += f"  (holds {verdict.foreign})"
    return Choice(
        dev.path, text, selectable, reason, device=facts, preselect=verdict.ours and selectable
    )


def recorded_disk_mismatch(recorded: DataDisk, dev: BlockDevice | None) -> str:
    """Why the node's device at the recorded path is not the recorded disk ("" when it is)."""
    if dev is None:
        return "the node has no such device now"
    return identity_mismatch(dev, recorded.serial, recorded.size, recorded.by_id, recorded.fs_uuid)


class ProbeStep(Step):
    id = "storage.probe"
    title = "List the node's disks"
    phase = "storage"
    publishes = (NodeDisks,)
    reads_records = (NodeFacts,)

    def check(self, ctx: StepContext) -> str | None:
        disk = ctx.get(DataDisk)
        if (
            ctx.get(NodeDisks) is not None
            and disk is not None
            and disk.fs_uuid
            and ctx.state.status("storage.format") in ("done", "skipped")
        ):
            return (
                f"the data disk is chosen ({disk.path}); its identity is checked on the node next"
            )
        return None

    def run(self, ctx: StepContext) -> str:
        listing = probe_node(ctx)
        parsed = [BlockDevice.from_json(d) for d in listing.devices]
        usable = [
            d
            for d in parsed
            if assess(d, ctx.config.storage.label, ctx.config.storage.pod_mount).selectable
        ]
        return (
            f"{len(parsed)} block devices, {len(usable)} of them disks that could be used "
            "(the disk list checks each against the model's size)"
        )


def probe_node(ctx: StepContext) -> NodeDisks:
    """A fresh listing of the node's disks and CPU, published as NodeDisks."""
    pod = agent_pod(
        ctx.config,
        PROBE_POD,
        "probe",
        ["--label", ctx.config.storage.label, "--mountpoint", ctx.config.storage.pod_mount],
    )
    result = run_agent(ctx, pod, lambda e: _log_device(ctx, e))
    if result.get("status") != "done":
        raise StepError(f"probe failed on {ctx.config.cluster.node_name}: {result.get('reason')}")
    listing = NodeDisks(
        tuple(d for d in result.get("devices") or [] if isinstance(d, dict)),
        tuple(str(f) for f in result.get("cpu_flags") or []),
        str(result.get("cpu_model") or ""),
    )
    ctx.runner.state.publish(ProbeStep.id, listing)
    return listing


def _log_device(ctx: StepContext, event: dict[str, Any]) -> None:
    if event.get("event") == "device":
        state = "ok" if event.get("selectable") else f"cannot be used: {event.get('reason')}"
        ctx.log(
            f"{event.get('path')}  {human_size(int(event.get('size') or 0))}  {event.get('model') or '-'}  {state}"
        )


def disk_args(ctx: StepContext, disk: DataDisk, *, check: bool = False) -> list[str]:
    args = [
        "--device",
        disk.path,
        "--serial",
        disk.serial,
        "--size",
        str(disk.size),
        "--label",
        ctx.config.storage.label,
        "--mountpoint",
        ctx.config.storage.pod_mount,
    ]
    for name in disk.by_id:
        args += ["--by-id", name]
    if disk.fs_uuid:
        args += ["--fs-uuid", disk.fs_uuid]
    if check:
        args.append("--check")
    return args


class FormatStep(Step):
    id = "storage.format"
    title = "Format and mount the data disk"
    phase = "storage"
    publishes = (DataDisk,)
    reads_records = (NodeDisks, ModelPlan)

    def check(self, ctx: StepContext) -> str | None:
        disk = ctx.get(DataDisk)
        if disk is None or not disk.fs_uuid:
            return None
        pod = agent_pod(ctx.config, FORMAT_POD, "disk", disk_args(ctx, disk, check=True))
        result = run_agent(ctx, pod, lambda e: None)
        if result.get("status") == "done":
            ctx.publish(dataclasses.replace(disk, free_bytes=int(result.get("free_bytes") or 0)))
            return f"{disk.path} (serial {disk.serial or '-'}) is mounted as our XFS at {ctx.config.storage.host_mount}"
        ctx.log(f"the recorded disk needs attention: {result.get('reason')}", "warn")
        return None

    def run(self, ctx: StepContext) -> str:
        recorded = ctx.get(DataDisk)
        listing = ctx.need(NodeDisks)
        if recorded is not None and ctx.state.status(ProbeStep.id) == "skipped":
            listing = probe_node(ctx)  # the identity is checked against the node as it is now
        devices = {d.path: d for d in (BlockDevice.from_json(x) for x in listing.devices)}
        if not devices:
            raise StepError("the probe found no block devices", "run the storage phase again")
        if recorded is not None:
            dev = devices.get(recorded.path)
            mismatch = recorded_disk_mismatch(recorded, dev)
            if mismatch:
                raise RefusedAnswer(
                    f"the disk at {recorded.path} is not the recorded data disk: recorded "
                    f"{recorded.identity()}; the node now reports {mismatch}. Nothing was formatted",
                    "if the disk was replaced on purpose, forget the recorded disk and choose again: "
                    "leviathan reset --disk (or leviathan reset to forget the whole session)",
                )
            assert dev is not None
            ctx.log(f"the recorded data disk: {recorded.identity()}")
            allow_foreign = self._confirm(ctx, dev)  # Esc here stops the run: the disk is fixed
        else:
            last_highlighted = None
            while True:
                dev = self._choose(ctx, devices, last_highlighted)
                try:
                    allow_foreign = self._confirm(ctx, dev)
                except GoBack:
                    ctx.log(f"back to the disk list: {dev.path} not chosen, nothing formatted")
                    last_highlighted = dev.path  # the cursor stays there; Enter is still needed
                    continue
                break
            recorded = DataDisk(
                path=dev.path,
                serial=dev.serial,
                size=dev.size,
                model=dev.model,
                by_id=tuple(dev.by_id),
                label=dev.label,
            )
            ctx.publish(recorded)  # confirmed: the identity is fixed from here on
            ctx.runner.answerer.record_fact(FACT_SERIAL, dev.serial)
            ctx.runner.answerer.record_fact(FACT_SIZE, dev.size)
        args = disk_args(ctx, recorded)
        if allow_foreign:
            args.append("--allow-foreign-fs")
        pod = agent_pod(ctx.config, FORMAT_POD, "disk", args)
        result = run_agent(ctx, pod, lambda e: _log_format(ctx, e))
        status = result.get("status")
        label = ctx.config.storage.label
        if status == "refused":
            raise RefusedAnswer(
                f"the node refused to format {dev.path}: {result.get('reason')}",
                "nothing was formatted; check the disk, or forget it and choose another: leviathan reset --disk",
            )
        if status != "done":
            raise StepError(f"formatting {dev.path} failed: {result.get('reason')}")
        disk = dataclasses.replace(
            recorded,
            fs_uuid=str(result.get("fs_uuid") or ""),
            label=str(result.get("label") or label),
            mountpoint=ctx.config.storage.host_mount,
            free_bytes=int(result.get("free_bytes") or 0),
            fs_bytes=int(result.get("fs_bytes") or 0),
            formatted=bool(result.get("formatted")),
        )
        ctx.publish(disk)
        announce_patch(ctx, ctx.get(NodeFacts), disk)  # now pinned to this disk's serial
        formatted = (
            "formatted and mounted" if disk.formatted else "mounted (already ours, not formatted)"
        )
        return f"{dev.path} {formatted} at {ctx.config.storage.host_mount}; {human_size(disk.free_bytes)} free"

    def _confirm(self, ctx: StepContext, dev: BlockDevice) -> bool:
        """The typed confirmation(s); True when the louder one allowed erasing a filesystem."""
        label, mountpoint = ctx.config.storage.label, ctx.config.storage.pod_mount
        verdict = assess(dev, label, mountpoint)
        if verdict.ours:
            return False  # our XFS: mounted, never formatted, nothing to confirm
        facts = device_facts(dev, label, mountpoint, needed_bytes(ctx, ctx.get(ModelPlan)))
        ctx.ask(confirm_question(facts))
        if verdict.foreign:
            ctx.ask(foreign_question(facts))
            return True
        return False

    def _choose(
        self, ctx: StepContext, devices: dict[str, BlockDevice], highlight: str | None = None
    ) -> BlockDevice:
        plan = ctx.get(ModelPlan)
        need = needed_bytes(ctx, plan)
        label, mountpoint = ctx.config.storage.label, ctx.config.storage.pod_mount
        choices = [device_choice(d, label, mountpoint, need) for d in devices.values()]
        if highlight is not None:
            choices = [dataclasses.replace(c, preselect=c.value == highlight) for c in choices]
        size_note = f" The model needs {decimal_size(need)} with margin." if need else ""
        question = Question(
            Q_DEVICE,
            f"Which disk should hold the model?{size_note}",
            kind="choice",
            screen="device",
            choices=choices,
            placeholder="/dev/DEVICE",
            reuse_answer=False,  # a choice made before an interruption is asked again
            refusal_hint="choose a whole disk from the probe listing that can hold the model, "
            "is not mounted and is not the Talos system disk",
        )
        path = str(ctx.ask(question))
        dev = devices[path]
        for key, actual in ((FACT_SERIAL, dev.serial), (FACT_SIZE, dev.size)):
            expected = ctx.runner.answerer.recorded(key)
            if expected is not None and str(expected) != str(actual):
                raise RefusedAnswer(
                    f"{dev.path} is not the recorded disk: {key} was {expected!r}, the node reports {actual!r}",
                    "device names can move between boots; choose the disk again by serial",
                )
        return dev


def _log_format(ctx: StepContext, event: dict[str, Any]) -> None:
    if event.get("event") == "format":
        ctx.log(
            f"{event.get('device')}: {'formatted' if event.get('formatted') else event.get('reason')}"
        )
    elif event.get("event") == "result" and event.get("status") != "done":
        ctx.log(f"refused: {event.get('reason')}", "error")


def confirm_question(dev: DeviceFacts) -> Question:
    def validate(answer: Any) -> str | None:
        if str(answer).strip() != dev.name:
            return (
                f"that is not {dev.name!r}: nothing will be formatted. Type the device name exactly"
            )
        return None

    return Question(
        Q_CONFIRM,
        f"Format {dev.path} as XFS? Everything on it is lost. Type the device name to confirm.",
        screen="confirm",
        destructive=True,
        expected=dev.name,
        placeholder=dev.name,
        device=dev,
        validate=validate,
    )


def foreign_question(dev: DeviceFacts) -> Question:
    expected = f"erase {dev.name}"

    def validate(answer: Any) -> str | None:
        if str(answer).strip() != expected:
            return (
                f"the second confirmation must be exactly {expected!r}: nothing will be formatted"
            )
        return None

    return Question(
        Q_CONFIRM_FOREIGN,
        f"{dev.path} already holds {dev.foreign}. Formatting destroys that data. Type '{expected}' to go on.",
        screen="confirm",
        destructive=True,
        loud=True,
        expected=expected,
        placeholder=expected,
        device=dev,
        validate=validate,
    )


class VerifyHostStep(Step):
    id = "storage.verify_host"
    title = "Prove the node sees the mount"
    phase = "storage"
    publishes = (MountProof,)
    reads_records = (DataDisk,)

    def check(self, ctx: StepContext) -> str | None:
        proof, disk = ctx.get(MountProof), ctx.get(DataDisk)
        if (
            proof
            and disk
            and proof.serial == disk.serial
            and ctx.state.status("storage.format") == "skipped"
        ):
            return "the node saw the disk's marker earlier and the disk is still mounted"
        return None

    def run(self, ctx: StepContext) -> str:
        disk = ctx.need(DataDisk)
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
            facts = ctx.get(NodeFacts)
            path, why = talos_patch_file(ctx, facts, disk)
            raise StepError(
                f"the disk mounted in the privileged pod is not visible to other pods on the node "
                f"({result.get('reason') or f'marker {seen!r} != {token!r}'}). {why}",
                f"apply the Talos patch saved at {path} "
                f"({talosctl_command((facts.internal_ip if facts else '') or ctx.config.cluster.node_name, str(path))}), "
                "reboot the node if Talos asks, then run Leviathan again",
            )
        ctx.publish(MountProof(token, disk.serial))
        return f"an unprivileged pod sees the XFS at {ctx.config.storage.host_mount}"
