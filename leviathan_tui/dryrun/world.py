"""The dry run's simulated world, kept in the dry-run state directory.

It holds what a real cluster and build host would remember between runs: the node (its disks from
`--machine`, what was formatted and mounted), the namespace labels, the applied Deployment, the
registry's tags and the build host's accepted key. The files a dry download writes, and the build
host's job directories, live beside it. The wizard and the agents it runs as local processes share
it through `World.edit()` (an flock'd read-modify-write), so a dry-run resume behaves like a real
one: the formatted disk stays formatted and mounted, a partial download continues from its bytes,
a pushed image stays pushed.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from leviathan_tui.state import StateWriteError, atomic_write

WORLD_FILE = "world.json"
WORLD_VERSION = 1
SCALE = 20_000  # the dry download moves 1 byte for every 20,000 the real one would

DEFAULT_NODE = {
    "os_image": "Talos (v1.11.2)",
    "kubelet_version": "v1.33.4",
    "internal_ip": "192.168.3.20",  # shown, never contacted
    "cpu": 64.0,
    "memory_bytes": 768 * 2**30,
    "gpus": 1,
    "labels": {
        "nvidia.com/gpu.product": "NVIDIA-RTX-PRO-6000-Blackwell-Workstation-Edition",
        "nvidia.com/gpu.memory": "97887",
        "nvidia.com/gpu.count": "1",
        "nvidia.com/gpu.compute.major": "12",
        "nvidia.com/gpu.compute.minor": "0",
    },
    "cpu_model": "AMD EPYC 9554 64-Core Processor",
    "cpu_flags": (
        "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
        "sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl "
        "pni pclmulqdq monitor ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave "
        "avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse "
        "3dnowprefetch osvw ibs skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc "
        "mwaitx cpb cat_l3 cdp_l3 hw_pstate ssbd mba ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 "
        "smep bmi2 erms invpcid cqm rdt_a avx512f avx512dq rdseed adx smap avx512ifma clflushopt "
        "clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx512_bf16 clzero "
        "irperf xsaveerptr rdpru wbnoinvd amd_ppin avx512vbmi umip pku ospke avx512_vbmi2 gfni "
        "vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid fsrm flush_l1d"
    ).split(),
}


def _unwritable(directory: Path, err: OSError) -> StateWriteError:
    return StateWriteError(
        f"cannot change the simulated world in {directory}: {err.strerror or err}",
        "make the state directory writable, or pass another --state-dir",
    )


def _fresh(machine: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": WORLD_VERSION,
        "machine": machine,
        "node": copy.deepcopy(DEFAULT_NODE),
        "disks": {},  # device path -> {fstype, label, uuid}: what mkfs changed
        "mounts": {},  # local mountpoint -> device path
        "formats": [],  # every mkfs run, in order
        "namespaces": {},  # name -> labels
        "applied": {},  # "Kind/name" -> manifest
        "deployment_applied_at": 0.0,
        "registry": {},  # "repository:tag" -> digest
        "known_hosts": [],  # "host fingerprint" accepted
    }


class World:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / WORLD_FILE
        self.lock_path = directory / "world.lock"

    # --- places -----------------------------------------------------------------------------

    @property
    def node_root(self) -> Path:
        """The node's filesystem as the dry run keeps it (hostPath volumes map under here)."""
        return self.directory / "node"

    @property
    def build_host_root(self) -> Path:
        return self.directory / "build-host"

    @property
    def hub_root(self) -> Path:
        return self.directory / "hub"

    # --- lifecycle --------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, machine: dict[str, Any] | None) -> tuple[World, str]:
        """The kept world, or a new one when none exists or `machine` differs from the kept one.
        Returns (world, a line for the operator)."""
        from leviathan_tui.dryrun.machine import default_machine

        world = cls(directory)
        directory.mkdir(parents=True, exist_ok=True)
        wanted = machine or None
        with world.edit() as data:
            if not data:
                data.update(_fresh(wanted or default_machine()))
                return world, f"dry run: a new simulated world in {directory}"
            if wanted is not None and data.get("machine") != wanted:
                data.clear()
                data.update(_fresh(wanted))
                return world, (
                    f"dry run: --machine describes other disks than the kept world; "
                    f"started a new simulated world in {directory}"
                )
        return (
            world,
            f"dry run: the simulated world kept in {directory} (what earlier runs did stays done)",
        )

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write under an exclusive lock (the agents share the world). A world kept
        on a read-only file system can still be read; changing it is refused with one line."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            if not self.path.is_file():
                raise _unwritable(self.directory, err) from None
            cannot_lock = err
        else:
            cannot_lock = None
        if cannot_lock is not None:
            data = self._load()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                raise _unwritable(self.directory, cannot_lock)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._load()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        finally:
            os.close(fd)

    def read(self) -> dict[str, Any]:
        with self.edit() as data:
            return copy.deepcopy(data)

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # a damaged simulated world is started anew
        if not isinstance(data, dict) or data.get("version") != WORLD_VERSION:
            return {}
        return data
