"""Content-addressed operator code (codeMode BUNDLE): control's store and the deterministic packer.

Control keeps each uploaded tar.gz or zip once, as `{home}/code/sha256/<hex>`, named by the
sha256 of its bytes; an upload is streamed to a temporary file beside it, hashed on the way,
and renamed into place when complete, so a half-received bundle is never served. `pack_dir`
turns a directory into a tar.gz that is byte-for-byte the same for the same tree (sorted
entries, fixed times, owners and modes), so `atom apply` of an unchanged directory uploads nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import os
import re
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from connectors.errors import ConfigError, UnsafeArchive
from connectors.safe_archive import check_archive
from control.errors import ControlError, InvalidSpec, NotFound, TooLarge

DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
CHUNK = 1 << 20

#: directory names and file suffixes `pack_dir` leaves out (caches and VCS data, not code)
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".atom"}
)
SKIP_SUFFIXES = (".pyc", ".pyo")


class CodeTooLarge(TooLarge):
    """A bundle over `ATOM_CODE_MAX_BYTES` (413)."""

    status_code = 413


class NotAnArchive(ControlError, ConfigError):
    """An upload that is neither a tar.gz nor a zip (415)."""

    status_code = 415


class UnsafeBundle(ControlError, ConfigError):
    """An archive with a member that would unpack outside its folder: `..`, absolute, a link out,
    a device (422)."""

    status_code = 422


def check_members(path: Path, size: int) -> None:
    """Read every member header of a stored upload; refuse unreadable or unsafe archives (blocking).

    Raises:
        NotAnArchive: the bytes do not read as a tar.gz or zip (415).
        UnsafeBundle: a member would unpack outside its folder (422).
    """
    what = f"the uploaded code ({size} bytes)"
    try:
        check_archive(path, what)
    except UnsafeArchive as exc:
        raise UnsafeBundle(str(exc), member=exc.context.get("member")) from exc
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise NotAnArchive(f"{what} is not a readable tar.gz or zip ({exc}): upload it again") from exc


@dataclass(frozen=True)
class StoredCode:
    """One bundle in the store."""

    digest: str
    """`sha256:<hex>` of its bytes."""
    size: int
    path: Path
    created: bool
    """False when the same bytes were already stored."""


def human(size: int) -> str:
    """`4.0 GiB`, `12.5 MiB`, `300 B`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def parse_digest(digest: str) -> str:
    """The hex part of `sha256:<hex>`.

    Raises:
        InvalidSpec: not a sha256 digest (the field named is `digest`).
    """
    found = DIGEST.match(digest.strip())
    if found is None:
        raise InvalidSpec(
            f"{digest!r} is not a code digest: expected sha256:<64 lower-case hex digits>", field="digest"
        )
    return found.group(1)


def archive_kind(head: bytes) -> str | None:
    """`tar.gz`, `zip`, or None from a file's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "tar.gz"
    if head.startswith(ZIP_MAGICS):
        return "zip"
    return None


class CodeStore:
    """Bundles under `{home}/code`, one file per digest.

    Args:
        home: control's data directory (`ATOM_HOME`).
        max_bytes: the largest bundle `put` accepts (`ATOM_CODE_MAX_BYTES`).
    """

    def __init__(self, home: Path, *, max_bytes: int) -> None:
        self.root = home / "code"
        self.blobs = self.root / "sha256"
        self.tmp = self.root / "tmp"
        self.max_bytes = max_bytes

    def path_of(self, digest: str) -> Path:
        """The stored file for `digest`.

        Raises:
            InvalidSpec: a malformed digest.
            NotFound: no bundle with that digest.
        """
        path = self.blobs / parse_digest(digest)
        if not path.is_file():
            raise NotFound(
                f"code {digest} is not in control's store: upload it again (`atom apply` does)", digest=digest
            )
        return path

    def too_large(self, size: int, *, exact: bool = True) -> CodeTooLarge:
        what = f"{human(size)} ({size} bytes)" if exact else f"more than {human(size)} ({size} bytes)"
        return CodeTooLarge(
            f"code bundle of {what} is over the limit of {human(self.max_bytes)} "
            f"(ATOM_CODE_MAX_BYTES={self.max_bytes}): make it smaller or raise the limit",
            size=size,
            limit=self.max_bytes,
        )

    async def put(self, chunks: AsyncIterable[bytes], *, length: int | None = None) -> StoredCode:
        """Store a streamed bundle; never holds more than about 1 MiB of it in memory.

        Args:
            chunks: the body.
            length: the announced size (Content-Length), checked before anything is read.

        Raises:
            CodeTooLarge: over `max_bytes` (announced, or counted while reading).
            NotAnArchive: not a tar.gz or zip (or not a readable one).
            UnsafeBundle: a member would unpack outside its folder.
        """
        if length is not None and length > self.max_bytes:
            raise self.too_large(length)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.blobs.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.tmp)
        tmp = Path(name)
        hasher = hashlib.sha256()
        size = 0
        head = b""
        try:
            with os.fdopen(fd, "wb") as out:
                pending: list[bytes] = []
                pending_size = 0
                async for chunk in chunks:
                    if not chunk:
                        continue
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self.too_large(self.max_bytes, exact=False)
                    if len(head) < 8:
                        head = (head + chunk)[:8]
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= CHUNK:
                        await asyncio.to_thread(_write, out, hasher, b"".join(pending))
                        pending, pending_size = [], 0
                if pending:
                    await asyncio.to_thread(_write, out, hasher, b"".join(pending))
            if archive_kind(head) is None:
                raise NotAnArchive(
                    f"the uploaded code ({size} bytes) is neither a tar.gz nor a zip: "
                    "upload a directory with `atom apply`, or an archive of it"
                )
            await asyncio.to_thread(check_members, tmp, size)
            hexdigest = hasher.hexdigest()
            final = self.blobs / hexdigest
            created = not final.exists()
            if created:
                os.replace(tmp, final)
            return StoredCode(f"sha256:{hexdigest}", size, final, created)
        finally:
            _discard(tmp)


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _write(out: BinaryIO, hasher: hashlib._Hash, data: bytes) -> None:
    hasher.update(data)
    out.write(data)


# -- the deterministic packer (client side) -------------------------------------------------------


class _HashingWriter:
    """A write-only file that hashes what it is given and passes it on (or drops it)."""

    def __init__(self, out: BinaryIO | None) -> None:
        self.out = out
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()

    @property
    def digest(self) -> str:
        return f"sha256:{self.hasher.hexdigest()}"


def tree_entries(root: Path) -> Iterator[tuple[str, Path]]:
    """(archive name, path) of everything `pack_dir` packs, sorted, skipping `SKIP_DIRS`/`SKIP_SUFFIXES`."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        base = Path(dirpath)
        rel = base.relative_to(root)
        for name in sorted([*dirnames, *(f for f in filenames if not f.endswith(SKIP_SUFFIXES))]):
            yield (rel / name).as_posix(), base / name


def pack_dir(root: Path, out: BinaryIO | None = None) -> tuple[str, int]:
    """Write `root` as a deterministic tar.gz to `out` (None: only hash it).

    Entries are sorted and carry mtime 0, owner 0/0 and mode 0644 (0755 for directories and
    executables); the gzip header has no name and time 0. The same tree gives the same bytes.

    Returns:
        (`sha256:<hex>`, size in bytes) of the tar.gz.
    """
    sink = _HashingWriter(out)
    entries = sorted(tree_entries(root))
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, path in entries:
            info = tar.gettarinfo(str(path), arcname=name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            executable = info.isdir() or bool(info.mode & stat.S_IXUSR)
            info.mode = 0o755 if executable else 0o644
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return sink.digest, sink.size


def file_digest(path: Path) -> tuple[str, int]:
    """(`sha256:<hex>`, size) of a file, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return f"sha256:{hasher.hexdigest()}", size
