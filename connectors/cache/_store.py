"""The cache's on-disk layout: content-addressed blobs, an index by object version, pins and LRU eviction.

```
<root>/blobs/<d[:2]>/<sha256>   complete objects, read-only, named by their content digest
<root>/index/<key>.json         (uri, size, validator) -> digest; key = sha256 of those three
<root>/partial/<key>.part       a download in progress (preallocated to the object's size)
<root>/partial/<key>.state      its header line and one line per finished byte range
<root>/locks/<key>.lock         held (flock) by whoever downloads that object version
<root>/locks/evict.lock         held while entries are evicted
```

A reader pins a blob with a shared `flock` on it; eviction takes an exclusive non-blocking lock
first, so pinned blobs (in any process) are skipped. The same bytes from two URLs are stored once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.cache._lock import exclusive, is_locked, shared_pin, try_exclusive
from connectors.errors import CacheDiskFull
from connectors.ranged import RemoteObject

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")

logger = logging.getLogger(__name__)


def entry_key(remote: RemoteObject) -> str:
    """The index key of one object version."""
    return hashlib.sha256(f"{remote.uri}\n{remote.size}\n{remote.validator}".encode()).hexdigest()[:40]


def disk_full(root: Path, need: int, exc: OSError) -> CacheDiskFull:
    """The one-line error for ENOSPC while writing into the cache."""
    return CacheDiskFull(
        f"no space left in the file cache {root} (needed {need / 2**20:.0f} MiB): free disk space, "
        "lower max_bytes, or point the cache at a bigger disk (ATOM_CACHE_DIR)",
        root=str(root),
    )


@dataclass(frozen=True)
class Entry:
    """One complete blob, as `ls` and eviction see it."""

    digest: str
    path: Path
    size: int
    used: float
    uris: tuple[str, ...] = ()
    pinned: bool = False


class Store:
    """Paths and the filesystem steps of the cache (blocking; called from threads)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.index = root / "index"
        self.partial = root / "partial"
        self.locks = root / "locks"
        for d in (self.blobs, self.index, self.partial, self.locks):
            d.mkdir(parents=True, exist_ok=True)

    def blob_path(self, digest: str) -> Path:
        """The blob for a content digest; anything but 64 hex digits (a tampered index) is refused.

        Raises:
            ValueError: `digest` is not a sha256 hex digest, so no path is built from it.
        """
        if not _HEX_DIGEST.fullmatch(digest):
            raise ValueError(f"cache digest {digest[:80]!r} is not a sha256 hex digest")
        return self.blobs / digest[:2] / digest

    def lock_path(self, key: str) -> Path:
        return self.locks / f"{key}.lock"

    # -- index ---------------------------------------------------------------------------------

    def read_index(self, key: str) -> dict[str, Any] | None:
        try:
            with open(self.index / f"{key}.json", encoding="utf-8") as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else None
        except (FileNotFoundError, ValueError):
            return None

    def write_index(self, key: str, remote: RemoteObject, digest: str) -> None:
        record = {
            "uri": remote.uri,
            "size": remote.size,
            "validator": remote.validator,
            "digest": digest,
            "fetched": time.time(),
        }
        tmp = self.index / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, self.index / f"{key}.json")

    def pin(self, key: str) -> tuple[int, Path, str, int] | None:
        """Pin the blob an index entry names: (fd, path, digest, size), or None on a miss."""
        record = self.read_index(key)
        if record is None:
            return None
        digest = str(record.get("digest", ""))
        if not _HEX_DIGEST.fullmatch(digest):  # not written by the cache: drop it, fetch again
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.index / f"{key}.json")
            return None
        path = self.blob_path(digest)
        fd = shared_pin(path)
        if fd is None:  # evicted: the index entry is stale
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.index / f"{key}.json")
            return None
        touch(path)
        return fd, path, digest, os.fstat(fd).st_size

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, key: str, remote: RemoteObject, partial: Path, digest: str) -> None:
        """Move a finished partial file to its content address and record it in the index."""
        blob = self.blob_path(digest)
        blob.parent.mkdir(exist_ok=True)
        os.chmod(partial, 0o444)
        if blob.exists():
            os.unlink(partial)  # the same bytes arrived under another name before
        else:
            os.replace(partial, blob)
        self.write_index(key, remote, digest)
        touch(blob)

    # -- eviction ------------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every complete blob with its size, last use and the URIs indexed to it (blocking)."""
        uris: dict[str, list[str]] = {}
        for item in self.index.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                record = json.loads(item.read_text(encoding="utf-8"))
                uris.setdefault(str(record["digest"]), []).append(str(record["uri"]))
        found = []
        for path in self.blobs.glob("??/*"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            found.append(
                Entry(
                    path.name,
                    path,
                    st.st_size,
                    max(st.st_atime, st.st_mtime),
                    tuple(sorted(uris.get(path.name, ()))),
                    is_locked(path),
                )
            )
        return found

    def partials(self, exclude: str = "") -> list[tuple[Path, int, float]]:
        """Partial files no download is working on: (path, bytes on disk, last change)."""
        found = []
        for part in self.partial.glob("*.part"):
            key = part.stem
            if key == exclude or is_locked(self.lock_path(key)):
                continue
            with contextlib.suppress(FileNotFoundError):
                st = part.stat()
                found.append((part, st.st_blocks * 512, st.st_mtime))
        return found

    def used_bytes(self, exclude: str = "") -> int:
        blobs = sum(e.size for e in self.entries())
        busy = 0
        for part in self.partial.glob("*.part"):
            if part.stem != exclude:
                with contextlib.suppress(FileNotFoundError):
                    busy += part.stat().st_blocks * 512
        return blobs + busy

    def evict(self, max_bytes: int, incoming: int = 0, exclude: str = "") -> int:
        """Evict least-recently-used, unpinned blobs (and idle partials) until `incoming` more bytes fit.

        Returns:
            Bytes freed.
        """
        with exclusive(self.locks / "evict.lock"):
            entries = sorted(self.entries(), key=lambda e: e.used)
            partials = sorted(self.partials(exclude), key=lambda p: p[2])
            used = sum(e.size for e in entries) + self._busy_partials(exclude)
            used += sum(size for _, size, _ in partials)
            need = used + incoming - max_bytes
            freed = 0
            candidates: list[tuple[float, Any]] = [(e.used, e) for e in entries]
            candidates += [(mtime, (path, size)) for path, size, mtime in partials]
            candidates.sort(key=lambda c: c[0])
            for _, item in candidates:
                if need <= 0:
                    break
                size = self._evict_one(item)
                need -= size
                freed += size
            if need > 0:
                logger.warning(
                    "file cache %s is over its limit by %d bytes: every other entry is in use",
                    self.root,
                    need,
                )
            return freed

    def _busy_partials(self, exclude: str) -> int:
        busy = 0
        for part in self.partial.glob("*.part"):
            if part.stem != exclude and is_locked(self.lock_path(part.stem)):
                with contextlib.suppress(FileNotFoundError):
                    busy += part.stat().st_blocks * 512
        return busy

    def _evict_one(self, item: Any) -> int:
        if isinstance(item, Entry):
            fd = try_exclusive(item.path)
            if fd is None:
                return 0  # pinned by a reader
            try:
                os.unlink(item.path)
            finally:
                os.close(fd)
            logger.debug("evicted %s (%d bytes) from the file cache", item.digest[:12], item.size)
            return item.size
        path, size = item
        key = path.stem
        fd = try_exclusive(self.lock_path(key))
        if fd is None:
            return 0
        try:
            for leftover in (path, path.with_suffix(".state")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
        finally:
            os.close(fd)
        return int(size)

    def prune_index(self) -> int:
        """Drop index entries whose blob is gone; returns how many."""
        dropped = 0
        for item in self.index.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                record = json.loads(item.read_text(encoding="utf-8"))
                digest = str(record["digest"])
                if not _HEX_DIGEST.fullmatch(digest) or not self.blob_path(digest).exists():
                    item.unlink()
                    dropped += 1
        return dropped


def touch(path: Path) -> None:
    """Mark a blob as just used (its atime/mtime order the LRU)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def is_enospc(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
