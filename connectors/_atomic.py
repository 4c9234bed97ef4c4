"""Atomic local files: write beside the target, fsync, rename over it; no half-written file is ever visible.

Every connector that puts a file on local disk (FILE sinks and objects, downloads from any store)
goes through these helpers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def temp_beside(path: Path, suffix: str = ".tmp") -> Path:
    """Create an empty hidden temp file next to `path` (mode 0o666 minus the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def fsync_dir(directory: Path) -> None:
    """Make renames in `directory` durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish(tmp: Path, path: Path) -> None:
    """fsync `tmp` and rename it over `path` (keeping `path`'s mode when it exists)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.copymode(path, tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def unlink_quietly(path: Path | None) -> None:
    """Remove a file if it is there."""
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def write_atomically(path: Path, fill: Callable[[Path], object]) -> Path:
    """`fill(tmp)` writes the content into a temp file beside `path`, which then replaces `path`.

    On any error the temp file is removed and `path` stays as it was.
    """
    tmp = temp_beside(path)
    try:
        fill(tmp)
        publish(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise
    return path


def copy_atomically(src: Path | str, path: Path) -> Path:
    """Copy the file `src` to `path` atomically."""
    return write_atomically(path, lambda tmp: shutil.copyfile(src, tmp))


def bytes_atomically(data: bytes, path: Path) -> Path:
    """Store `data` at `path` atomically."""
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))
