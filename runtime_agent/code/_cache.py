"""The code cache's machinery: per-key lock files, build-then-rename directories, safe unpacking."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from connectors.errors import UnsafeArchive
from connectors.safe_archive import unpack as safe_unpack
from runtime_agent.errors import CodeFetchError

_USERINFO = re.compile(r"(://)[^/@\s]+@")


def masked(text: str) -> str:
    """`text` without the password or token a URL in it may carry."""
    return _USERINFO.sub(r"\1***@", text)


@contextlib.asynccontextmanager
async def locked(path: Path) -> AsyncIterator[None]:
    """Hold an exclusive lock on the file `path` (polled, so a cancelled run leaves no waiter)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)


async def build_once(root: Path, final: Path, build: Callable[[Path], Awaitable[None]]) -> bool:
    """Make the directory `final` with `build(tmp)` unless it exists; False when it already did.

    The build runs in a fresh directory under `root/tmp`, renamed to `final` when it succeeds
    and removed when it fails, under the lock `root/locks/<kind>-<name>.lock`.
    """
    if await asyncio.to_thread(final.is_dir):
        return False
    async with locked(root / "locks" / f"{final.parent.name}-{final.name}.lock"):
        if await asyncio.to_thread(final.is_dir):
            return False
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{final.name[:40]}-", dir=root / "tmp"))
        try:
            await build(tmp)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, final)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, tmp, True)
            if await asyncio.to_thread(
                final.is_dir
            ):  # an agent that does not share our lock directory won the race
                return False
            raise
    return True


def unpack(archive: Path, dest: Path, what: str) -> None:
    """Unpack a tar(.gz) or zip into `dest`; one member that would land outside it refuses the archive.

    Raises:
        CodeFetchError: not a readable archive, or an unsafe member (`what` names the code; see
            `connectors.safe_archive`).
    """
    try:
        safe_unpack(archive, dest, what)
    except UnsafeArchive as exc:
        raise CodeFetchError(str(exc)) from exc
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CodeFetchError(f"{what}: not a readable tar.gz or zip ({exc})") from exc


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()
