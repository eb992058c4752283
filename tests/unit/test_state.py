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
from leviathan_tui.state import SessionLock, State
from tests.conftest import run_env


def test_round_trip_and_statuses(state_dir: Path) -> None:
    st = State.load(state_dir)
    st.set_status("a.b", "running")
    st.set_artifact("a.b", "serial", "S123")
    st.set_answer("storage.device", "/dev/nvme1n1")
    st.set_status("a.b", "done", summary="ok")
    again = State.load(state_dir)
    assert again.status("a.b") == "done"
    assert again.artifact("a.b", "serial") == "S123"
    assert again.answers["storage.device"] == "/dev/nvme1n1"
    raw = json.loads((state_dir / "state.json").read_text())
    assert raw["schema"] == 1 and raw["steps"]["a.b"]["finished_at"]


def test_kill_9_during_save_loop_never_leaves_a_partial_file(tmp_path: Path) -> None:
    writer = textwrap.dedent(
        f"""
        from pathlib import Path
        from leviathan_tui.state import State
        st = State.load(Path({str(tmp_path)!r}))
        i = 0
        while True:
            i += 1
            st.set_artifact("x.y", "counter", i)
            st.set_artifact("x.y", "blob", "z" * (i % 5000))
        """
    )
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", writer], env=run_env())
        time.sleep(0.4)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = json.loads((tmp_path / "state.json").read_text())
        counter = data["steps"]["x.y"]["artifacts"]["counter"]
        assert counter >= 1
        assert len(data["steps"]["x.y"]["artifacts"]["blob"]) in (
            counter % 5000,
            (counter - 1) % 5000,
        )


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
    st = State.load(state_dir, coalesce_s=0.5)
    start = time.monotonic()
    for i in range(300):
        st.set_artifact("download.fetch", "bytes", i, coalesce=True)
    assert time.monotonic() - start < 1.0
    assert st.saves <= 3
    st.flush()
    assert State.load(state_dir).artifact("download.fetch", "bytes") == 299
    os.sync()
