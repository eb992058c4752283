"""Build: the engine image, built detached on the build host over SSH, pushed, and proven in the
registry by its digest."""

from __future__ import annotations

import re
from typing import Any

from leviathan_tui.diagnose import diagnose
from leviathan_tui.errors import StepError
from leviathan_tui.events import Question
from leviathan_tui.phases.remote_job import RemoteJob, ssh_connect
from leviathan_tui.records import BuildJob, ImageRef, NodeDisks, NodeFacts
from leviathan_tui.render.build_target import (
    MIN_CUDA,
    CpuTarget,
    archs_of,
    check_cuda,
    cpu_target,
    cuda_arch_list,
    libaio_package,
    read_cuda_version,
    read_os_release,
)
from leviathan_tui.render.dockerfile import (
    DOCKERFILE_NAME,
    base_image_probe_command,
    build_command,
    build_id,
    context_files,
    parse_probe,
    push_command,
    remote_dir,
)
from leviathan_tui.render.remote_job import STOPPED_EXIT
from leviathan_tui.render.talos import talos_registry_patch
from leviathan_tui.runner import Step, StepContext

ERROR_LINE = re.compile(r"(?i)\b(error|failed|fatal)\b")


def _level(line: str) -> str:
    return "error" if ERROR_LINE.search(line) else "info"


def _failure(ctx: StepContext, job: RemoteJob, what: str, code: int) -> StepError:
    tail = "\n".join(job.tail)
    found = diagnose(tail, "build")
    last = "\n".join(list(job.tail)[-8:])
    if found:
        hint = found.fix
        if found.rule == "http-registry":
            hint += f"\n  Talos patch for the node:\n{talos_registry_patch(ctx.config)}"
            hint += f'\n  build host /etc/docker/daemon.json: {{"insecure-registries": ["{ctx.config.registry.address}"]}}'
        return StepError(
            f"{what} failed (exit {code}): {found.cause}\n  evidence: {found.evidence}", hint
        )
    return StepError(
        f"{what} failed (exit {code}); last lines:\n{last}",
        f"full log on the build host: {job.log_path}",
    )


def pushed_digest_still_there(ctx: StepContext) -> str | None:
    """The digest recorded by the last push of this very build, if the registry still has it."""
    image, job = ctx.get(ImageRef), ctx.get(BuildJob)
    if image is None or job is None or image.build_id != job.build_id:
        return None
    if job.build_id != build_id(ctx.config, dict(job.build_args)):
        return None
    found = ctx.backends.registry.manifest(ctx.config.build.repository, ctx.config.build.tag)
    return image.digest if found and found.digest == image.digest else None


def not_needed(ctx: StepContext) -> str | None:
    engine = ctx.config.deploy.engine
    if engine != "ktransformers":
        return f"not needed: deploy.engine is {engine}, which runs its own upstream image"
    return None


def arch_list(ctx: StepContext) -> str:
    """TORCH_CUDA_ARCH_LIST: configured, else the node's GPUs, else the operator's answer."""
    configured = ctx.config.build.torch_cuda_arch_list
    if configured != "auto":
        return configured
    facts = ctx.get(NodeFacts)
    computes = [gpu.compute for gpu in (facts.gpus if facts else ()) if gpu.compute]
    if computes:
        return cuda_arch_list(computes)

    def validate(answer: Any) -> str | None:
        unknown = [a for a in archs_of(str(answer)) if a not in MIN_CUDA]
        return (
            f"unknown CUDA architecture {', '.join(unknown)}; e.g. 9.0a, 10.0, 12.0"
            if unknown
            else None
        )

    answer = ctx.ask(
        Question(
            "build.gpu_arch",
            "The node does not report its GPU's compute capability (no GPU Feature Discovery "
            "labels). Which CUDA architectures should the image be built for? "
            "H100/H200: 9.0a · B200/GB200: 10.0 · RTX PRO 6000 Blackwell, RTX 50xx: 12.0",
            placeholder="12.0",
            validate=validate,
            refusal_hint="answer with TORCH_CUDA_ARCH_LIST values such as 9.0a, 10.0 or 12.0",
        )
    )
    return " ".join(archs_of(str(answer)))


def build_targets(ctx: StepContext, probe: dict[str, str]) -> dict[str, str]:
    """Build arguments for the node's GPUs and CPU and the base image's distribution; refuses
    what cannot work, before anything is built."""
    archs = arch_list(ctx)
    os_release = read_os_release(probe.get("/etc/os-release", ""))
    cuda = read_cuda_version(
        probe.get("/usr/local/cuda/version.json", "")
        or probe.get("/usr/local/cuda/version.txt", "")
    )
    base = ctx.config.build.base_image
    ctx.log(
        f"base image {base}: {os_release.get('PRETTY_NAME', 'distribution unknown')}, "
        f"CUDA {'.'.join(map(str, cuda)) if cuda else 'unknown'}"
    )
    if cuda is None:
        ctx.log(
            "cannot read the base image's CUDA version: the architectures are not checked against it",
            "warn",
        )
    problem = check_cuda(archs, cuda)
    if problem:
        raise StepError(
            f"{problem}: the image would have no kernels for the node's GPU",
            "use a base image with a newer CUDA (build.base_image), e.g. one built on CUDA 12.8 for Blackwell",
        )
    if ctx.config.build.cpu_instruct != "auto":
        target = CpuTarget(ctx.config.build.cpu_instruct, "native", "")
        ctx.log(f"CPU_INSTRUCT={target.cpu_instruct} as configured", "warn")
    else:
        disks = ctx.get(NodeDisks)
        target = cpu_target(disks.cpu_flags if disks else ())
        host = set(probe.get("cpu flags", "").partition(":")[2].split())
        extra = sorted(host - set(disks.cpu_flags if disks else ()) & _ISA_FLAGS)
        if extra:
            ctx.log(
                f"the build host has {', '.join(extra[:8])}{'…' if len(extra) > 8 else ''} that the "
                f"node lacks: the image is built for the node ({target.march}, CPU_INSTRUCT="
                f"{target.cpu_instruct}), not for the build host"
            )
    args = {
        "TORCH_CUDA_ARCH_LIST": archs,
        "CPU_INSTRUCT": target.cpu_instruct,
        "LIBAIO_PACKAGE": libaio_package(os_release),
    }
    if target.march != "native":
        args["TARGET_MARCH"] = target.march
        args["TARGET_CPU_FLAGS"] = target.lscpu_flags
    ctx.log("building for: " + ", ".join(f"{k}={v}" for k, v in args.items()))
    return args


_ISA_FLAGS = {
    f
    for f in (
        "avx avx2 fma f16c bmi1 bmi2 avx512f avx512bw avx512cd avx512dq avx512vl avx512_vnni "
        "avx512_vpopcntdq avx512_bf16 avx512vbmi avx512_vbmi2 amx_tile amx_bf16 amx_int8"
    ).split()
}


class BuildImageStep(Step):
    id = "build.image"
    title = "Build the engine image on the build host"
    phase = "build"
    publishes = (BuildJob,)
    reads_records = (NodeFacts, NodeDisks)  # the image is built for the node's GPUs and CPU

    def check(self, ctx: StepContext) -> str | None:
        skip = not_needed(ctx)
        if skip:
            return skip
        job = ctx.get(BuildJob)
        if job is None or job.build_id != build_id(ctx.config, dict(job.build_args)):
            return None
        digest = pushed_digest_still_there(ctx)
        return (
            f"{ctx.config.image_ref} is in the registry with the digest this build produced ({digest[:19]}…)"
            if digest
            else None
        )

    def run(self, ctx: StepContext) -> str:
        session = ssh_connect(ctx)
        try:
            code, out, err = session.run(base_image_probe_command(ctx.config), timeout=1800)
        finally:
            session.close()
        if code != 0 and "==> /etc/os-release" not in out:
            raise StepError(
                f"cannot read the base image {ctx.config.build.base_image} on the build host: "
                f"{(err or out).strip()[-300:]}",
                "check build.base_image and that the build host can pull it",
            )
        overrides = build_targets(ctx, parse_probe(out))
        bid = build_id(ctx.config, overrides)
        directory = remote_dir(ctx.config, overrides)
        ctx.publish(BuildJob(bid, directory, 0, tuple(sorted(overrides.items()))))
        command = build_command(ctx.config, overrides)
        job = RemoteJob(ctx, directory, "build", lambda: ssh_connect(ctx))
        try:
            state, code = job.status()
            if state == "done" and code == 0:
                ctx.log(f"build {bid} already finished on the build host (exit 0)")
                return f"image {ctx.config.image_ref} built earlier (build {bid})"
            if state == "running":
                ctx.log(f"build {bid} is still running on the build host: reattaching to its log")
            else:
                if state == "done":
                    ended = "was stopped" if code == STOPPED_EXIT else "failed"
                    ctx.log(
                        f"the previous build {bid} {ended} (exit {code}); starting it again", "warn"
                    )
                ctx.log(f"uploading {DOCKERFILE_NAME} to {directory} and starting: {command}")
                job.start(command, context_files(ctx.config))
            code = job.follow(lambda line: _follow(ctx, line), ctx.config.build.timeout_s)
            if code != 0:
                raise _failure(ctx, job, "the image build", code)
            ctx.publish(BuildJob(bid, directory, job.lines, tuple(sorted(overrides.items()))))
            return f"built {ctx.config.image_ref} (build {bid}, {job.lines} log lines)"
        finally:
            job.close()


STEP_LINE = re.compile(r"^(?:STEP|Step|#\d+ \[[^\]]*\s)?\s*(\d+)/(\d+)[ :\]]")


def _follow(ctx: StepContext, line: str) -> None:
    ctx.log(line, _level(line))
    match = STEP_LINE.match(line)
    if match:
        ctx.progress(int(match.group(1)), int(match.group(2)), unit="build step", note=line[:120])


class PushImageStep(Step):
    id = "build.push"
    title = "Push the image and prove it in the registry"
    phase = "build"
    publishes = (ImageRef,)
    reads_records = (BuildJob,)

    def check(self, ctx: StepContext) -> str | None:
        skip = not_needed(ctx)
        if skip:
            return skip
        digest = pushed_digest_still_there(ctx)
        return f"registry holds {ctx.config.image_ref} at {digest}" if digest else None

    def run(self, ctx: StepContext) -> str:
        registry = ctx.backends.registry
        registry.ping()  # fail fast and clearly when the registry is down
        directory = ctx.need(BuildJob).remote_dir
        job = RemoteJob(ctx, directory, "push", lambda: ssh_connect(ctx))
        try:
            state, code = job.status()
            pushed_before = state == "done" and code == 0
            if (
                pushed_before
                and registry.manifest(ctx.config.build.repository, ctx.config.build.tag) is None
            ):
                ctx.log(
                    "an earlier push finished but the registry no longer has the tag: pushing again",
                    "warn",
                )
                pushed_before = False
            if state == "running":
                ctx.log("push still running on the build host: reattaching")
            elif not pushed_before:
                ctx.log(f"pushing: {push_command(ctx.config)}")
                job.start(push_command(ctx.config), {})
            code = job.follow(lambda line: ctx.log(line, _level(line)), ctx.config.build.timeout_s)
            if code != 0:
                raise _failure(ctx, job, "the push", code)
        finally:
            job.close()
        repo, tag = ctx.config.build.repository, ctx.config.build.tag
        if tag not in registry.tags(repo):
            raise StepError(
                f"the push said it succeeded but {registry.base}/v2/{repo}/tags/list has no {tag}",
                "check registry.address matches the registry the build host pushes to",
            )
        found = registry.manifest(repo, tag)
        if found is None:
            raise StepError(f"tag {tag} is listed but its manifest is missing in {registry.base}")
        ctx.publish(
            ImageRef(
                ctx.config.image_ref, found.digest, found.media_type, ctx.need(BuildJob).build_id
            )
        )
        return f"{ctx.config.image_ref} in the registry at {found.digest}"
