"""Property-based: any config, replay, --machine, state file or chat stream is either accepted or
answered with one UsageError (exit 2) — never another exception, never a hang."""

from __future__ import annotations

import json
import string
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leviathan_tui.errors import UsageError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = st.sampled_from(
    [
        "cluster",
        "storage",
        "model",
        "ssh",
        "deploy",
        "build",
        "download",
        "port",
        "node_name",
        "answers",
        "version",
        "config",
        "blockdevices",
        "name",
        "path",
        "size",
        "type",
        "children",
        "schema",
        "steps",
        "records",
        "DataDisk",
        "status",
        "x",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(string.printable, max_size=30),
    st.sampled_from(["/dev/nvme1n1", "nvme1n1", "disk", "loop", "done", "running", "1.2.3.4:5000"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=5)
    ),
    max_leaves=25,
)
DOCS = st.one_of(st.dictionaries(KEYS, VALUES, max_size=6), VALUES)


def write(text: str | bytes) -> Path:
    handle = tempfile.NamedTemporaryFile("wb", suffix=".yaml", delete=False)
    handle.write(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    handle.close()
    return Path(handle.name)


def as_yaml(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return json.dumps(doc, default=str)


@SETTINGS
@given(st.one_of(DOCS.map(as_yaml), st.text(max_size=200), st.binary(max_size=200)))
def test_any_config_file_is_accepted_or_refused_with_usage_error(content: Any) -> None:
    from leviathan_tui.config import load_config

    path = write(content)
    try:
        load_config(path)
    except UsageError as err:
        assert str(path) in err.message
    finally:
        path.unlink()


@SETTINGS
@given(st.one_of(DOCS.map(as_yaml), st.text(max_size=200)))
def test_any_replay_file_is_accepted_or_refused_with_usage_error(content: str) -> None:
    from leviathan_tui.replay import ReplayFile

    path = write(content)
    try:
        ReplayFile.load(path)
    except UsageError as err:
        assert str(path) in err.message
    finally:
        path.unlink()


@SETTINGS
@given(st.one_of(DOCS.map(lambda d: json.dumps(d, default=str)), st.text(max_size=200)))
def test_any_machine_file_is_accepted_or_refused_with_usage_error(content: str) -> None:
    import argparse

    from leviathan_tui.commands import load_machine

    path = write(content)
    try:
        load_machine(argparse.Namespace(machine=path, dry_run=True))
    except UsageError as err:
        assert str(path) in err.message
    finally:
        path.unlink()


@SETTINGS
@given(st.one_of(DOCS.map(lambda d: json.dumps(d, default=str)), st.text(max_size=200)))
def test_any_state_file_loads_or_is_moved_aside_never_raises(content: str) -> None:
    from leviathan_tui.state import State

    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "state.json").write_bytes(content.encode("utf-8", "surrogatepass"))
        read_only = State.load(Path(directory), read_only=True)
        assert (Path(directory) / "state.json").read_bytes() == content.encode(
            "utf-8", "surrogatepass"
        )
        state = State.load(Path(directory))
        if state.notices:
            assert not (Path(directory) / "state.json").exists()
            assert list(Path(directory).glob("state.json.unreadable-*"))
        assert bool(read_only.notices) == bool(state.notices)


CHUNK_PARTS = st.one_of(
    st.just("data: [DONE]"),
    st.just(": ping"),
    st.just(""),
    DOCS.map(lambda d: "data: " + json.dumps(d, default=str)),
    st.builds(
        lambda content, extra: (
            "data: "
            + json.dumps({"choices": [{"delta": {"content": content}, **extra}]}, default=str)
        ),
        SCALARS,
        st.dictionaries(st.sampled_from(["finish_reason", "index", "role"]), SCALARS, max_size=2),
    ),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(CHUNK_PARTS, max_size=12))
def test_any_chat_stream_is_a_reply_or_one_protocol_error(lines: list[str]) -> None:
    from leviathan_tui.chat_stream import ChatEngineError, ChatProtocolError
    from tests.unit.test_chat_stream import read

    start = time.monotonic()
    try:
        reply = read(lines)
    except (ChatProtocolError, ChatEngineError) as err:
        assert err.detail and "\n" not in err.detail
    else:
        assert isinstance(reply.text, str)
    assert time.monotonic() - start < 2.0
