"""The dry run's container builder on the simulated build host (`docker`, `podman`, `buildah`).

`build` prints what a KTransformers image build prints, paced by LEVIATHAN_DRY_RUN_SPEED, with
the build arguments it was given; `push` records the tag and a digest in the simulated registry.
Everything around it — the detached job, its log, exit file and reattachment — is the real
remote-job code running in a local shell.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

from leviathan_tui.dryrun.world import World

BUILD_LOG = [
    "STEP 1/9: FROM {BASE_IMAGE}",
    "STEP 2/9: ARG KTRANSFORMERS_REF={KTRANSFORMERS_REF}",
    "STEP 5/9: RUN apt-get update && apt-get install -y --no-install-recommends git ... libnuma-dev",
    "Setting up libtbb-dev:amd64 (2021.8.0-2) ...",
    "STEP 7/9: RUN git clone --branch {KTRANSFORMERS_REF} --depth 1 https://github.com/kvcache-ai/ktransformers.git",
    "Cloning into 'ktransformers'...",
    "STEP 8/9: RUN bash install.sh",
    "-- TORCH_CUDA_ARCH_LIST: {TORCH_CUDA_ARCH_LIST}",
    "-- CPU_INSTRUCT: {CPU_INSTRUCT}",
    "[ 12%] Building CXX object csrc/ktransformers_ext/CMakeFiles/cpuinfer_ext.dir/cpu_backend/cpuinfo.cpp.o",
    "[ 48%] Building CUDA object csrc/balance_serve/CMakeFiles/sched_ext.dir/sched.cu.o",
    "[ 87%] Linking CXX shared module cpuinfer_ext.cpython-311-x86_64-linux-gnu.so",
    "Successfully installed ktransformers-0.4.1",
    "STEP 9/9: WORKDIR /opt/ktransformers",
    "COMMIT {IMAGE}",
    "Successfully tagged {IMAGE}",
]
PUSH_LOG = [
    "Getting image source signatures",
    "Copying blob sha256:4f4fb700ef54 done",
    "Writing manifest to image destination",
]


def _pace(lines: list[str], seconds_each: float) -> None:
    speed = float(os.environ.get("LEVIATHAN_DRY_RUN_SPEED") or 1.0)
    for line in lines:
        print(line, flush=True)
        time.sleep(seconds_each / speed)


def build(args: list[str]) -> int:
    values = {"BASE_IMAGE": "?", "KTRANSFORMERS_REF": "?", "TORCH_CUDA_ARCH_LIST": "?"}
    values["CPU_INSTRUCT"] = "?"
    image = "?"
    for i, arg in enumerate(args):
        if arg == "--build-arg" and i + 1 < len(args):
            key, _, value = args[i + 1].partition("=")
            values[key] = value
        elif arg == "-t" and i + 1 < len(args):
            image = args[i + 1]
    values["IMAGE"] = image
    _pace([line.format(**values) for line in BUILD_LOG], 0.5)
    Path("dry-run-image").write_text(image + "\n" + "\n".join(args) + "\n", encoding="utf-8")
    return 0


def push(args: list[str]) -> int:
    refs = [a for a in args if not a.startswith("-") and not a.startswith("docker://")]
    if not refs:
        print("Error: no image to push", file=sys.stderr)
        return 125
    image = refs[0]
    recipe = Path("dry-run-image")
    content = recipe.read_bytes() if recipe.exists() else image.encode()
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    _pace(PUSH_LOG, 0.3)
    repository = image.split("/", 1)[1] if "/" in image else image
    with World(Path(os.environ["LEVIATHAN_DRY_WORLD"])).edit() as data:
        data["registry"][repository] = digest
    print(f"{image}: digest: {digest}", flush=True)
    return 0


BASE_IMAGE_FILES = {  # the simulated base image: what a CUDA 12.8 PyTorch image on Ubuntu holds
    "etc/os-release": 'PRETTY_NAME="Ubuntu 22.04.5 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\n',
    "usr/local/cuda/version.json": '{"cuda": {"name": "CUDA SDK", "version": "12.8.1"}}\n',
}


def base_image_root() -> Path:
    root = Path(os.environ["LEVIATHAN_DRY_WORLD"]) / "build-host" / "base-image"
    for name, text in BASE_IMAGE_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def copy_out(args: list[str]) -> int:
    """`cp CONTAINER:PATH -`: the file as a tar stream, as docker and podman write it."""
    import io
    import tarfile

    source = next((a for a in args if ":" in a), "")
    path = base_image_root() / source.partition(":")[2].lstrip("/")
    if not path.is_file():
        print(f"Error: no such file in the image: {source}", file=sys.stderr)
        return 1
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=path.name)
    sys.stdout.buffer.write(buffer.getvalue())
    return 0


def main(argv: list[str]) -> int:
    simple = {
        "create": lambda rest: print("dry-run-container") or 0,
        "from": lambda rest: print("dry-run-container") or 0,
        "mount": lambda rest: print(base_image_root()) or 0,
        "cp": copy_out,
        "rm": lambda rest: 0,
        "umount": lambda rest: 0,
    }
    for index, arg in enumerate(argv):  # global flags (e.g. --storage-driver vfs) come first
        if arg == "build":
            return build(argv[index + 1 :])
        if arg == "push":
            return push(argv[index + 1 :])
        if arg in simple:
            return simple[arg](argv[index + 1 :])
    print(f"dry-run builder: {' '.join(argv) or 'nothing'} is not simulated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
