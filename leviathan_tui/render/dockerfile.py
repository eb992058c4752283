"""The engine image's build inputs: the Dockerfile, its build arguments, the files uploaded
beside it, and the build and push commands run on the build host."""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path

from leviathan_tui.assets import read_asset
from leviathan_tui.config import Config
from leviathan_tui.errors import StepError

DOCKERFILE_NAME = "Dockerfile.leviathan"


def dockerfile_text(config: Config) -> str:
    if config.build.dockerfile:
        path = Path(os.path.expanduser(config.build.dockerfile))
        try:
            return path.read_text(encoding="utf-8")
        except OSError as err:
            raise StepError(f"cannot read build.dockerfile {path}: {err.strerror}") from None
    return read_asset("docker", DOCKERFILE_NAME)


def build_args(config: Config, overrides: dict[str, str] | None = None) -> dict[str, str]:
    b = config.build
    args = {
        "BASE_IMAGE": b.base_image,
        "KTRANSFORMERS_REF": b.ktransformers_ref,
        "TORCH_CUDA_ARCH_LIST": b.torch_cuda_arch_list,
        "CPU_INSTRUCT": b.cpu_instruct,
        "ENABLE_DEEPGEMM": str(b.enable_deepgemm),
    }
    args.update(overrides or {})
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


def build_id(config: Config, overrides: dict[str, str] | None = None) -> str:
    """Same inputs, same id: a re-run finds its own build; a changed input starts a new one."""
    digest = hashlib.sha256()
    for name, data in sorted(context_files(config).items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    for key, value in sorted(build_args(config, overrides).items()):
        digest.update(f"{key}={value}\0".encode())
    digest.update(
        f"{config.image_ref}\0{config.build.builder}\0{config.build.builder_global_flags}\0{config.build.build_flags}".encode()
    )
    return digest.hexdigest()[:16]


def remote_dir(config: Config, overrides: dict[str, str] | None = None) -> str:
    return f"{config.build.remote_dir.rstrip('/')}/{build_id(config, overrides)}"


def _builder(config: Config) -> str:
    return " ".join(
        shlex.quote(p) for p in [config.build.builder, *config.build.builder_global_flags]
    )


def build_command(config: Config, overrides: dict[str, str] | None = None) -> str:
    parts = [
        _builder(config),
        "build",
        *map(shlex.quote, config.build.build_flags),
        "-f",
        DOCKERFILE_NAME,
    ]
    for key, value in build_args(config, overrides).items():
        parts += ["--build-arg", shlex.quote(f"{key}={value}")]
    parts += ["-t", shlex.quote(config.image_ref), "."]
    return " ".join(parts)


def push_command(config: Config) -> str:
    image = shlex.quote(config.image_ref)
    if config.build.builder == "docker":
        return f"{_builder(config)} push {image}"
    tls = "false" if config.registry.scheme == "http" else "true"
    return f"{_builder(config)} push --tls-verify={tls} {image} docker://{config.image_ref}"
