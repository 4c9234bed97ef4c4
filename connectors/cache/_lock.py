"""File locks for the download cache: `flock` locks that work across threads and processes.

`flock` locks belong to an open file description, so two opens of one file in the same process
exclude each other like two processes do, and the kernel drops a lock when its holder dies
(a SIGKILLed download leaves no stale lock behind).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing); blocks until it is free."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def try_exclusive(path: Path) -> int | None:
    """An fd holding an exclusive lock on the existing file `path`, or None when it is locked or gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_locked(path: Path) -> bool:
    """Whether some process holds a lock on `path` right now."""
    fd = try_exclusive(path)
    if fd is None:
        return path.exists()
    os.close(fd)
    return False


def shared_pin(path: Path) -> int | None:
    """An fd holding a shared lock on `path` (a pin: eviction skips it), or None if it is gone.

    The lock is taken, then the path is checked to still name the locked file, so a blob
    evicted between the open and the lock is not mistaken for a live one.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        st = os.fstat(fd)
        now = os.stat(path)
        if (st.st_ino, st.st_dev) != (now.st_ino, now.st_dev):
            raise FileNotFoundError(path)
    except FileNotFoundError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd
