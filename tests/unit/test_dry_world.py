"""The dry run's kept world on a file system that cannot be written: read, never a traceback."""

import errno
import os
from pathlib import Path

import pytest

from leviathan_tui.dryrun import world as world_module
from leviathan_tui.dryrun.world import World
from leviathan_tui.state import StateWriteError


def _read_only(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    real_open = os.open

    def refusing_open(path, flags, *args):  # type: ignore[no-untyped-def]
        if str(path).startswith(str(directory)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(world_module.os, "open", refusing_open)


def test_a_kept_world_on_a_read_only_file_system_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    World.open(tmp_path / "world", None)
    _read_only(monkeypatch, tmp_path)
    world, note = World.open(tmp_path / "world", None)  # the plan and `health` only read it
    assert "kept" in note
    assert world.read()["formats"] == []
    with pytest.raises(StateWriteError, match="cannot change the simulated world") as raised:
        with world.edit() as data:
            data["formats"].append({"device": "/dev/nvme1n1"})
    assert "writable" in raised.value.hint


def test_no_world_and_no_way_to_write_one_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "world").mkdir()
    _read_only(monkeypatch, tmp_path)
    with pytest.raises(StateWriteError, match="Read-only file system"):
        World.open(tmp_path / "world", None)
