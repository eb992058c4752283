"""What the engine image is built for: the node's GPUs and CPU, and the base image's distribution.

- CUDA architectures come from the node's GPUs (GPU Feature Discovery's compute capability):
  Hopper 9.0 is built as 9.0a (its special instructions), everything else as reported, the
  newest with +PTX. "9.0a 10.0" has no kernels for a 12.0 Blackwell workstation card.
- A CUDA toolkit too old for an architecture cannot build it (nvcc's supported
  --gpu-architecture values): sm_90a needs CUDA 12.0, sm_100 and sm_120 need 12.8.
- KTransformers v0.4.1 compiles balance_serve with `-march=native` (csrc/balance_serve/
  CMakeLists.txt:33, sched/CMakeLists.txt:1, kvc2/CMakeLists.txt:154) and reads the build host's
  `lscpu` for AVX-512/AMX (csrc/ktransformers_ext/CMakeLists.txt:126-158): the image is built for
  the node instead — CPU_INSTRUCT and an -march level from the node's flags, and an `lscpu` that
  reports the node's flags during the build.
- Ubuntu 24.04 renamed libaio1 to libaio1t64.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from leviathan_tui.errors import StepError

MIN_CUDA = {  # architecture -> the first CUDA release whose nvcc builds it
    "7.0": (9, 0),
    "7.5": (10, 0),
    "8.0": (11, 0),
    "8.6": (11, 1),
    "8.7": (11, 4),
    "8.9": (11, 8),
    "9.0": (11, 8),
    "9.0a": (12, 0),
    "10.0": (12, 8),
    "10.0a": (12, 8),
    "10.3": (12, 9),
    "12.0": (12, 8),
    "12.1": (12, 9),
}

X86_64_V2 = {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}
X86_64_V3 = X86_64_V2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
X86_64_V4 = X86_64_V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
CPU_PRESETS = (  # KTransformers' CPU_INSTRUCT presets and the instructions each one uses
    (
        "FANCY",
        {
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512dq",
            "avx512_vnni",
            "avx512_vpopcntdq",
            "fma",
            "f16c",
            "avx2",
        },
    ),
    ("AVX512", {"avx512f", "avx512bw", "fma", "f16c", "avx2"}),
    ("AVX2", {"fma", "f16c", "avx", "avx2"}),
)
LSCPU_MARKERS = ("avx512", "amx")  # what ktransformers_ext's CMakeLists looks for in lscpu


def cuda_arch_list(computes: Iterable[str]) -> str:
    """'12.0' -> '12.0+PTX'; ['9.0', '10.0'] -> '9.0a 10.0+PTX' (TORCH_CUDA_ARCH_LIST syntax)."""
    archs = sorted({c for c in computes if c}, key=lambda c: tuple(int(x) for x in c.split(".")))
    if not archs:
        raise ValueError("no GPU architecture")
    named = ["9.0a" if arch == "9.0" else arch for arch in archs]
    named[-1] += "+PTX"
    return " ".join(named)


def archs_of(arch_list: str) -> list[str]:
    return [a.removesuffix("+PTX") for a in re.split(r"[;\s]+", arch_list.strip()) if a]


def check_cuda(arch_list: str, cuda: tuple[int, int] | None) -> str:
    """Why this CUDA cannot build these architectures, or ""."""
    if cuda is None:
        return ""
    too_new = [a for a in archs_of(arch_list) if MIN_CUDA.get(a, (0, 0)) > cuda]
    if not too_new:
        return ""
    needs = max(MIN_CUDA[a] for a in too_new)
    return (
        f"the base image has CUDA {cuda[0]}.{cuda[1]}, which cannot build {', '.join(too_new)} "
        f"(needs CUDA {needs[0]}.{needs[1]} or newer)"
    )


@dataclass(frozen=True)
class CpuTarget:
    cpu_instruct: str  # KTransformers' preset
    march: str  # for the balance_serve parts that say -march=native
    lscpu_flags: str  # what the build's lscpu reports


def cpu_target(node_flags: Iterable[str]) -> CpuTarget:
    flags = set(node_flags)
    if not flags:
        raise StepError(
            "the node's CPU flags are unknown (the probe did not report them)",
            "run the storage phase again so the probe reads /proc/cpuinfo, or set build.cpu_instruct",
        )
    preset = next((name for name, needs in CPU_PRESETS if needs <= flags), None)
    if preset is None:
        lacking = sorted(CPU_PRESETS[-1][1] - flags)
        raise StepError(
            f"the node's CPU lacks {', '.join(lacking)}, which KTransformers' slowest CPU kernels "
            "(CPU_INSTRUCT=AVX2) need",
            "use deploy.engine: llamacpp (its generic build runs on any x86-64), or a node with AVX2",
        )
    if X86_64_V4 <= flags:
        march = "x86-64-v4"
    elif X86_64_V3 <= flags:
        march = "x86-64-v3"
    else:
        march = "x86-64-v2"
    reported = " ".join(sorted(f for f in flags if f.startswith(LSCPU_MARKERS)))
    return CpuTarget(preset, march, reported or "none")


def read_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def libaio_package(os_release: dict[str, str]) -> str:
    if os_release.get("ID") == "ubuntu":
        version = re.match(r"(\d+)\.(\d+)", os_release.get("VERSION_ID", ""))
        if version and (int(version.group(1)), int(version.group(2))) >= (24, 4):
            return "libaio1t64"
    debian = (
        re.match(r"(\d+)", os_release.get("VERSION_ID", ""))
        if os_release.get("ID") == "debian"
        else None
    )
    if debian and int(debian.group(1)) >= 13:
        return "libaio1t64"
    return "libaio1"


def read_cuda_version(version_json: str) -> tuple[int, int] | None:
    """CUDA's /usr/local/cuda/version.json -> (12, 8)."""
    try:
        data = json.loads(version_json)
        text = data["cuda"]["version"]
    except (ValueError, KeyError, TypeError):
        match = re.search(r"CUDA Version (\d+)\.(\d+)", version_json)
        return (int(match.group(1)), int(match.group(2))) if match else None
    match = re.match(r"(\d+)\.(\d+)", str(text))
    return (int(match.group(1)), int(match.group(2))) if match else None
