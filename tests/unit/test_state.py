import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from leviathan_tui.errors import UsageError
from leviathan_tui.records import DataDisk, ModelFiles
from leviathan_tui.state import SessionLock, State
from tests.conftest import run_env


def test_round_trip_of_statuses_records_and_answers(state_dir: Path) -> None:
    st = State.load(state_dir)
    st.set_status("storage.format", "running")
    disk = DataDisk("/dev/nvme1n1", "S123", 3840755982336, by_id=("nvme-X_S123",), fs_uuid="u-1")
    st.publish("storage.format", disk)
    st.set_answer("storage.device", "/dev/nvme1n1")
    st.set_status("storage.format", "done", summary="ok")
    again = State.load(state_dir)
    assert again.status("storage.format") == "done"
    assert again.get(DataDisk) == disk  # typed, tuples and all
    assert again.owner(DataDisk) == "storage.format"
    assert again.answers["storage.device"] == "/dev/nvme1n1"
    raw = json.loads((state_dir / "state.json").read_text())
    assert raw["schema"] == 2 and raw["steps"]["storage.format"]["finished_at"]
    assert raw["records"]["DataDisk"]["data"]["serial"] == "S123"


def test_an_older_schema_is_moved_aside_with_a_message(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    old = {"schema": 1, "steps": {"storage.format": {"status": "done", "artifacts": {}}}}
    (state_dir / "state.json").write_text(json.dumps(old))
    st = State.load(state_dir)
    assert st.steps == {} and "older Leviathan" in st.notices[0]
    assert len(list(state_dir.glob("state.json.unreadable-*"))) == 1


def test_a_record_of_the_wrong_type_is_moved_aside_not_a_bug(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    bad = {
        "schema": 2,
        "steps": {},
        "records": {
            "DataDisk": {
                "step": "storage.format",
                "data": {"path": "/dev/x", "serial": "S", "size": "huge"},
            }
        },
        "answers": {},
    }
    (state_dir / "state.json").write_text(json.dumps(bad))
    st = State.load(state_dir)
    assert st.get(DataDisk) is None
    assert "DataDisk: size" in st.notices[0]
    assert list(state_dir.glob("state.json.unreadable-*"))


def test_read_only_load_never_moves_anything(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "state.json").write_text("{broken")
    st = State.load(state_dir, read_only=True)
    assert "left as it is" in st.notices[0]
    assert (state_dir / "state.json").read_text() == "{broken"
    st.set_status("a.b", "done")  # a read-only state never writes
    assert (state_dir / "state.json").read_text() == "{broken"


def test_kill_9_during_save_loop_never_leaves_a_partial_file(tmp_path: Path) -> None:
    writer = textwrap.dedent(
        f"""
        from pathlib import Path
        from leviathan_tui.state import State
        from leviathan_tui.records import BuildJob
        st = State.load(Path({str(tmp_path)!r}))
        i = 0
        while True:
            i += 1
            st.publish("build.image", BuildJob("z" * (i % 5000), "dir", i))
        """
    )
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", writer], env=run_env())
        deadline = time.monotonic() + 20
        while not (tmp_path / "state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the writer's start-up (imports) varies with the machine's load
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = json.loads((tmp_path / "state.json").read_text())
        job = data["records"]["BuildJob"]["data"]
        assert job["log_lines"] >= 1
        assert len(job["build_id"]) == job["log_lines"] % 5000  # never a mix of two saves


def test_corrupt_file_is_kept_aside(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "state.json").write_text("{not json")
    st = State.load(state_dir)
    assert st.steps == {}
    assert st.notices and "moved aside" in st.notices[0]
    kept = list(state_dir.glob("state.json.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_text() == "{not json"


def test_unknown_schema_version_is_kept_aside(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "state.json").write_text(json.dumps({"schema": 99, "steps": {}}))
    st = State.load(state_dir)
    assert "schema version 99" in st.notices[0]
    assert list(state_dir.glob("state.json.unreadable-*"))


def test_second_holder_is_refused_naming_the_pid(state_dir: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from pathlib import Path; from leviathan_tui.state import SessionLock; import time; l=SessionLock(Path({str(state_dir)!r})); l.acquire(); print('locked', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=run_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError) as err:
            SessionLock(state_dir).acquire()
        assert str(holder.pid) in str(err.value)
        assert err.value.exit_code == 2
    finally:
        holder.kill()
        holder.wait()
    lock = SessionLock(state_dir)
    lock.acquire()  # free again once the holder is gone
    lock.release()


def test_progress_saves_are_coalesced(state_dir: Path) -> None:
    st = State.load(state_dir, coalesce_s=30.0)  # a window no slow machine outlasts here
    for i in range(300):
        st.publish("download.fetch", ModelFiles("F", 9, i, False), coalesce=True)
    assert st.saves <= 2  # not one write per progress update
    st.flush()
    assert State.load(state_dir).get(ModelFiles).total == 299
    os.sync()
