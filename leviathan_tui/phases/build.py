"""Build: the engine image, built detached on the build host over SSH, pushed, and proven in the
registry by its digest."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from pathlib import Path

from leviathan_tui.assets import read_asset
from leviathan_tui.config import Config
from leviathan_tui.diagnose import diagnose
from leviathan_tui.engine import Step, StepContext
from leviathan_tui.errors import StepError
from leviathan_tui.manifests import talos_registry_patch
from leviathan_tui.phases.remote_job import RemoteJob, ssh_connect

DOCKERFILE_NAME = "Dockerfile.leviathan"
ERROR_LINE = re.compile(r"(?i)\b(error|failed|fatal)\b")


def dockerfile_text(config: Config) -> str:
    if config.build.dockerfile:
        path = Path(os.path.expanduser(config.build.dockerfile))
        try:
            return path.read_text(encoding="utf-8")
        except OSError as err:
            raise StepError(f"cannot read build.dockerfile {path}: {err.strerror}") from None
    return read_asset("docker", DOCKERFILE_NAME)


def build_args(config: Config) -> dict[str, str]:
    b = config.build
    args = {
        "BASE_IMAGE": b.base_image,
        "KTRANSFORMERS_REF": b.ktransformers_ref,
        "TORCH_CUDA_ARCH_LIST": b.torch_cuda_arch_list,
        "CPU_INSTRUCT": b.cpu_instruct,
        "ENABLE_DEEPGEMM": str(b.enable_deepgemm),
    }
    args.update(b.build_args)
    return args


def context_files(config: Config) -> dict[str, bytes]:
    files = {DOCKERFILE_NAME: dockerfile_text(config).encode()}
    for item in config.build.context_files:
        path = Path(os.path.expanduser(item))
        try:
            files[path.name] = path.read_bytes()
        except OSError as err:
            raise StepError(
                f"cannot read build.context_files entry {path}: {err.strerror}"
            ) from None
    return files


def build_id(config: Config) -> str:
    """Same inputs, same id: a re-run finds its own build; a changed input starts a new one."""
    digest = hashlib.sha256()
    for name, data in sorted(context_files(config).items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    for key, value in sorted(build_args(config).items()):
        digest.update(f"{key}={value}\0".encode())
    digest.update(
        f"{config.image_ref}\0{config.build.builder}\0{config.build.builder_global_flags}\0{config.build.build_flags}".encode()
    )
    return digest.hexdigest()[:16]


def remote_dir(config: Config) -> str:
    return f"{config.build.remote_dir.rstrip('/')}/{build_id(config)}"


def _builder(config: Config) -> str:
    return " ".join(
        shlex.quote(p) for p in [config.build.builder, *config.build.builder_global_flags]
    )


def build_command(config: Config) -> str:
    parts = [
        _builder(config),
        "build",
        *map(shlex.quote, config.build.build_flags),
        "-f",
        DOCKERFILE_NAME,
    ]
    for key, value in build_args(config).items():
        parts += ["--build-arg", shlex.quote(f"{key}={value}")]
    parts += ["-t", shlex.quote(config.image_ref), "."]
    return " ".join(parts)


def push_command(config: Config) -> str:
    image = shlex.quote(config.image_ref)
    if config.build.builder == "docker":
        return f"{_builder(config)} push {image}"
    tls = "false" if config.registry.scheme == "http" else "true"
    return f"{_builder(config)} push --tls-verify={tls} {image} docker://{config.image_ref}"


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
    digest = ctx.artifact("digest", step="build.push")
    if not digest or ctx.artifact("build_id", step="build.push") != build_id(ctx.config):
        return None
    found = ctx.backends.registry.manifest(ctx.config.build.repository, ctx.config.build.tag)
    return digest if found and found.digest == digest else None


class BuildImageStep(Step):
    id = "build.image"
    title = "Build the engine image on the build host"
    phase = "build"
    needs = ()

    def check(self, ctx: StepContext) -> str | None:
        if ctx.artifact("build_id") != build_id(ctx.config):
            return None
        digest = pushed_digest_still_there(ctx)
        return (
            f"{ctx.config.image_ref} is in the registry with the digest this build produced ({digest[:19]}…)"
            if digest
            else None
        )

    def run(self, ctx: StepContext) -> str:
        bid = build_id(ctx.config)
        directory = remote_dir(ctx.config)
        ctx.set_artifact("build_id", bid)
        ctx.set_artifact("remote_dir", directory)
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
                    ctx.log(
                        f"the previous build {bid} failed (exit {code}); starting it again", "warn"
                    )
                ctx.log(
                    f"uploading {DOCKERFILE_NAME} to {directory} and starting: {build_command(ctx.config)}"
                )
                job.start(build_command(ctx.config), context_files(ctx.config))
            code = job.follow(lambda line: ctx.log(line, _level(line)), ctx.config.build.timeout_s)
            if code != 0:
                raise _failure(ctx, job, "the image build", code)
            ctx.set_artifact("log_lines", job.lines)
            return f"built {ctx.config.image_ref} (build {bid}, {job.lines} log lines)"
        finally:
            job.close()


class PushImageStep(Step):
    id = "build.push"
    title = "Push the image and prove it in the registry"
    phase = "build"
    needs = ("build.image",)

    def check(self, ctx: StepContext) -> str | None:
        digest = pushed_digest_still_there(ctx)
        return f"registry holds {ctx.config.image_ref} at {digest}" if digest else None

    def run(self, ctx: StepContext) -> str:
        registry = ctx.backends.registry
        registry.ping()  # fail fast and clearly when the registry is down
        directory = remote_dir(ctx.config)
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
        ctx.set_artifact("digest", found.digest)
        ctx.set_artifact("media_type", found.media_type)
        ctx.set_artifact("build_id", build_id(ctx.config))
        return f"{ctx.config.image_ref} in the registry at {found.digest}"
