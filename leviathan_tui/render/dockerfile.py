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


PROBED_FILES = ("/etc/os-release", "/usr/local/cuda/version.json", "/usr/local/cuda/version.txt")


def base_image_probe_command(config: Config) -> str:
    """Prints the base image's distribution and CUDA files, read without running the image:
    `==> PATH` then the file, for each of PROBED_FILES (docker/podman create + cp; buildah mount),
    then the build host's CPU flags after `==> cpu flags`."""
    b = _builder(config)
    image = shlex.quote(config.build.base_image)
    if config.build.builder == "buildah":
        read = (
            f'ctr=$({b} from --pull=missing {image}) && mnt=$({b} mount "$ctr") && '
            + " ".join(f'echo "==> {f}"; cat "$mnt{f}" 2>/dev/null; echo;' for f in PROBED_FILES)
            + f' {b} umount "$ctr" >/dev/null; {b} rm "$ctr" >/dev/null'
        )
    else:
        read = (
            f"cid=$({b} create {image} true) && "
            + " ".join(
                f'echo "==> {f}"; {b} cp "$cid:{f}" - 2>/dev/null | tar -xO 2>/dev/null; echo;'
                for f in PROBED_FILES
            )
            + f' {b} rm -f "$cid" >/dev/null'
        )
    return f"{read}; echo '==> cpu flags'; grep -m1 -E '^(flags|Features)' /proc/cpuinfo"


def parse_probe(output: str) -> dict[str, str]:
    """`==> NAME` sections of base_image_probe_command's output."""
    sections: dict[str, str] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("==> "):
            current = line[4:].strip()
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return sections


def push_command(config: Config) -> str:
    image = shlex.quote(config.image_ref)
    if config.build.builder == "docker":
        return f"{_builder(config)} push {image}"
    tls = "false" if config.registry.scheme == "http" else "true"
    return f"{_builder(config)} push --tls-verify={tls} {image} docker://{config.image_ref}"
