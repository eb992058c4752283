"""What the engine image is built for: the node's GPUs and CPU, the base image's distribution."""

from __future__ import annotations

import pytest

from leviathan_tui.errors import StepError
from leviathan_tui.render.build_target import (
    check_cuda,
    cpu_target,
    cuda_arch_list,
    libaio_package,
    read_cuda_version,
    read_os_release,
)
from leviathan_tui.render.dockerfile import parse_probe

SAPPHIRE_RAPIDS = (
    "fpu sse sse2 ssse3 sse4_1 sse4_2 cx16 lahf_lm popcnt avx avx2 bmi1 bmi2 f16c fma abm movbe "
    "xsave avx512f avx512bw avx512cd avx512dq avx512vl avx512_vnni avx512_vpopcntdq avx512_bf16 "
    "amx_tile amx_bf16 amx_int8"
).split()
ZEN2 = "sse sse2 ssse3 sse4_1 sse4_2 cx16 lahf_lm popcnt avx avx2 bmi1 bmi2 f16c fma abm movbe xsave".split()


@pytest.mark.parametrize(
    ("computes", "expected"),
    [
        (["12.0"], "12.0+PTX"),
        (["9.0"], "9.0a+PTX"),
        (["10.0", "9.0"], "9.0a 10.0+PTX"),
        (["12.0", "12.0"], "12.0+PTX"),
    ],
)
def test_cuda_architectures_follow_the_node_gpus(computes, expected) -> None:
    assert cuda_arch_list(computes) == expected


def test_a_cuda_too_old_for_blackwell_is_refused_with_the_reason() -> None:
    assert "cannot build 12.0 (needs CUDA 12.8" in check_cuda("12.0+PTX", (12, 4))
    assert check_cuda("12.0+PTX", (12, 8)) == ""
    assert "9.0a" in check_cuda("9.0a 10.0+PTX", (11, 8))
    assert check_cuda("9.0a", None) == ""  # unknown: not refused here, warned by the step


def test_the_cpu_target_is_the_nodes_not_the_build_hosts() -> None:
    fancy = cpu_target(SAPPHIRE_RAPIDS)
    assert (fancy.cpu_instruct, fancy.march) == ("FANCY", "x86-64-v4")
    assert "amx_tile" in fancy.lscpu_flags and "avx512f" in fancy.lscpu_flags
    zen2 = cpu_target(ZEN2)
    assert (zen2.cpu_instruct, zen2.march, zen2.lscpu_flags) == ("AVX2", "x86-64-v3", "none")
    with pytest.raises(StepError, match="lacks avx, avx2"):
        cpu_target("sse sse2 ssse3 sse4_1 sse4_2 f16c fma".split())


@pytest.mark.parametrize(
    ("os_release", "package"),
    [
        ('ID=ubuntu\nVERSION_ID="24.04"\n', "libaio1t64"),
        ('ID=ubuntu\nVERSION_ID="22.04"\n', "libaio1"),
        ('ID=debian\nVERSION_ID="13"\n', "libaio1t64"),
        ('ID=debian\nVERSION_ID="12"\n', "libaio1"),
        ("", "libaio1"),
    ],
)
def test_libaio_follows_the_distribution(os_release: str, package: str) -> None:
    assert libaio_package(read_os_release(os_release)) == package


def test_the_probe_output_is_read_per_file() -> None:
    out = (
        '==> /etc/os-release\nID=ubuntu\nVERSION_ID="24.04"\n'
        '==> /usr/local/cuda/version.json\n{"cuda": {"version": "12.8.1"}}\n'
        "==> /usr/local/cuda/version.txt\n==> cpu flags\nflags\t: fpu avx2\n"
    )
    probe = parse_probe(out)
    assert read_cuda_version(probe["/usr/local/cuda/version.json"]) == (12, 8)
    assert read_os_release(probe["/etc/os-release"])["VERSION_ID"] == "24.04"
    assert "avx2" in probe["cpu flags"]
    assert read_cuda_version("CUDA Version 11.8.89") == (11, 8)
