"""Reading the operator's files without trusting them: config, replay, --machine and state.

Every reader refuses what is not a regular file (a FIFO would hang, /dev/zero would never end), caps
the bytes it reads (measured on what was read, not on `st_size`), caps nesting depth (deep YAML or
JSON would end in a RecursionError), and refuses YAML aliases (an alias bomb expands without
bound). Every refusal is one UsageError naming the file and what was expected: exit 2.
"""

from __future__ import annotations

import os
import stat
from functools import cache
from pathlib import Path
from typing import Any

from leviathan_tui.errors import UsageError

MAX_INPUT_BYTES = 1024 * 1024
MAX_DEPTH = 32


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bounded_text(path: Path, what: str, max_bytes: int = MAX_INPUT_BYTES) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise UsageError(f"{path}: cannot read {what}: {err.strerror or err}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path}: {what} must be a regular file; this is {_kind(mode)}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise UsageError(f"{path}: cannot read {what}: {err.strerror or err}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between stat and open
            raise UsageError(f"{path}: {what} must be a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(65536, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        raise UsageError(f"{path}: cannot read {what}: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise UsageError(f"{path}: {what} is larger than {max_bytes} bytes; refusing it")
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: {what} is not UTF-8 text (byte {err.start})") from None


def check_json_depth(text: str, path: Path | str, what: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than `max_depth` before the parser recurses into it."""
    depth = 0
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise UsageError(f"{path}: {what} is nested deeper than {max_depth} levels")
        elif char in "]}":
            depth -= 1


@cache
def _no_alias_loader() -> Any:
    """A SafeLoader that refuses aliases and deep nesting while composing (PyYAML is imported
    only when a YAML file is read: the TUI paints its first screen before that)."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        max_depth = MAX_DEPTH

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, "YAML aliases (*name) are not accepted here", event.start_mark
                )
            self._depth += 1
            try:
                if self._depth > self.max_depth:
                    event = self.peek_event()
                    raise yaml.composer.ComposerError(
                        None,
                        None,
                        f"nested deeper than {self.max_depth} levels",
                        event.start_mark,
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return NoAliasLoader


def parse_yaml(text: str, path: Path | str, what: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_no_alias_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        problem = getattr(err, "problem", None) or str(err)
        raise UsageError(
            f"{path}:{mark.line + 1 if mark else '?'}: {what}: YAML error at {where}: {problem}"
        ) from None
    except RecursionError:
        raise UsageError(f"{path}: {what} is nested too deeply") from None


def load_yaml_file(path: Path, what: str, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    return parse_yaml(read_bounded_text(path, what, max_bytes), path, what)


def load_json_file(path: Path, what: str, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    import json

    text = read_bounded_text(path, what, max_bytes)
    check_json_depth(text, path, what)
    try:
        return json.loads(text)
    except ValueError as err:
        raise UsageError(f"{path}: {what} is not JSON: {err}") from None
    except RecursionError:
        raise UsageError(f"{path}: {what} is nested too deeply") from None
