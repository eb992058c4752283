import json
from pathlib import Path

from leviathan_tui.agent.lsblk import assess, parse_lsblk

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lsblk"


def load(name: str):
    return {d.path: d for d in parse_lsblk(json.loads((FIXTURES / name).read_text()))}


def test_talos_gpu_node_layout() -> None:
    devs = load("talos-gpu-node.json")
    system = assess(devs["/dev/nvme0n1"], "leviathan")
    assert not system.selectable and "Talos system disk" in system.reason
    empty = assess(devs["/dev/nvme1n1"], "leviathan")
    assert empty.selectable and not empty.foreign and not empty.ours
    scratch = assess(devs["/dev/nvme2n1"], "leviathan")
    assert scratch.selectable and scratch.foreign == "ext4 label 'scratch'"


def test_mounted_partition_makes_the_disk_unsafe() -> None:
    devs = load("talos-mounted.json")
    verdict = assess(devs["/dev/nvme2n1"], "leviathan")
    assert not verdict.selectable and "/var/mnt/scratch" in verdict.reason


def test_this_machine_root_disk_is_refused() -> None:
    devs = load("this-machine.json")
    root_disks = [d for d in devs.values() if "/" in d.all_mounts]
    assert root_disks
    for disk in root_disks:
        assert not assess(disk, "leviathan").selectable
    zero = [d for d in devs.values() if d.size == 0]
    assert all(not assess(d, "leviathan").selectable for d in zero)


def test_our_own_xfs_is_recognised() -> None:
    devs = parse_lsblk(
        {
            "blockdevices": [
                {
                    "name": "nvme1n1",
                    "path": "/dev/nvme1n1",
                    "size": 10,
                    "type": "disk",
                    "fstype": "xfs",
                    "label": "leviathan",
                    "mountpoints": [None],
                }
            ]
        }
    )
    verdict = assess(devs[0], "leviathan")
    assert verdict.ours and verdict.selectable
    assert not assess(devs[0], "other").ours


def test_partition_and_rom_are_not_formattable() -> None:
    devs = parse_lsblk(
        {"blockdevices": [{"name": "sr0", "path": "/dev/sr0", "size": 1024, "type": "rom"}]}
    )
    assert "only whole disks" in assess(devs[0], "leviathan").reason


def test_a_loop_device_is_refused_unless_a_test_rig_allows_it() -> None:
    devs = parse_lsblk(
        {"blockdevices": [{"name": "loop0", "path": "/dev/loop0", "size": 2**40, "type": "loop"}]}
    )
    verdict = assess(devs[0], "leviathan")
    assert not verdict.selectable and verdict.reason.startswith("a loop device")
    assert assess(devs[0], "leviathan", allow_loop=True).selectable
