"""The front's state file: the last accepted routing table, so a restarted front serves without control.

Writes are atomic: a temp file in the same folder, fsync, rename over the old file, fsync the folder.
A reader sees the old table or the new one, never a mix, even after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import TYPE_CHECKING

from runtime_agent.front.routes import RouteError, parse_table

if TYPE_CHECKING:
    from pathlib import Path

    from runtime_agent.front.routes import RoutingTable

__all__ = ["StateError", "load_table", "save_table"]


class StateError(Exception):
    """The state file exists but cannot be read as a routing table."""


def save_table(path: Path, table: RoutingTable) -> None:
    """Write `table` to `path` atomically (blocking: call it through `asyncio.to_thread`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(table.wire(), indent=2).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_table(path: Path) -> RoutingTable | None:
    """The routing table kept in `path`; None when there is no such file.

    Raises:
        StateError: the file cannot be read or holds no valid table.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the state file {path}: {exc}") from exc
    try:
        return parse_table(data)
    except RouteError as exc:
        raise StateError(f"the state file {path} holds no valid routing table: {exc}") from exc
