"""Build: the engine image, built detached on the build host over SSH, pushed, and proven in the
registry by its digest."""

from __future__ import annotations

import re

from leviathan_tui.diagnose import diagnose
from leviathan_tui.errors import StepError
from leviathan_tui.phases.remote_job import RemoteJob, ssh_connect
from leviathan_tui.records import BuildJob, ImageRef
from leviathan_tui.render.dockerfile import (
    DOCKERFILE_NAME,
    build_command,
    build_id,
    context_files,
    push_command,
    remote_dir,
)
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
    image = ctx.get(ImageRef)
    if image is None or image.build_id != build_id(ctx.config):
        return None
    found = ctx.backends.registry.manifest(ctx.config.build.repository, ctx.config.build.tag)
    return image.digest if found and found.digest == image.digest else None


class BuildImageStep(Step):
    id = "build.image"
    title = "Build the engine image on the build host"
    phase = "build"
    publishes = (BuildJob,)

    def check(self, ctx: StepContext) -> str | None:
        job = ctx.get(BuildJob)
        if job is None or job.build_id != build_id(ctx.config):
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
        ctx.publish(BuildJob(bid, directory))
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
            ctx.publish(BuildJob(bid, directory, job.lines))
            return f"built {ctx.config.image_ref} (build {bid}, {job.lines} log lines)"
        finally:
            job.close()


class PushImageStep(Step):
    id = "build.push"
    title = "Push the image and prove it in the registry"
    phase = "build"
    publishes = (ImageRef,)
    reads_records = (BuildJob,)

    def check(self, ctx: StepContext) -> str | None:
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
            ImageRef(ctx.config.image_ref, found.digest, found.media_type, build_id(ctx.config))
        )
        return f"{ctx.config.image_ref} in the registry at {found.digest}"
