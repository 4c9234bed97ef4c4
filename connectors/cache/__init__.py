"""The shared download cache: remote objects (HTTP, S3, OSS) as pinned, content-addressed local files.

```python
from connectors.cache import default_cache
from connectors.http import HttpRangeSource

async with await default_cache().fetch(HttpRangeSource("https://host/train.parquet")) as cached:
    df = pd.read_parquet(cached.path)        # cached.path is never evicted while pinned
```

- Large objects download in parallel byte ranges (`parallel` connections, `part_size` parts)
  through the `connectors.ranged.RangeSource` contract; every store implements only that.
- Blobs are stored under their content digest (`content_digest`: the sha256 of the sha256s
  of each 1 MiB block, hashed by the workers as bytes land); an index maps (uri, size,
  validator) to the digest, so a changed object (new ETag) is fetched again and the same bytes
  from two URLs are stored once.
- One download per object version: readers in this process share an in-flight future, other
  processes block on the version's `flock` and then find the finished entry.
- An interrupted download (even SIGKILL) resumes: the partial file and a state file of finished
  parts survive, and the next fetch downloads only the missing parts.
- A size limit (`max_bytes`) evicts least-recently-used blobs that nobody has pinned.
- `prefetch()` (or `python -m connectors.cache fetch URL`) starts a download ahead of the reader.

The cache lives in `root` (default `~/.cache/atom/files`); library code reads no environment
variable, the runtime agent passes `ATOM_CACHE_DIR` to `default_cache(root)`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.cache._fetch import Download, ObjectChanged, Progress, content_digest
from connectors.cache._lock import exclusive
from connectors.cache._store import CacheDiskFull, Entry, Store, disk_full, entry_key, is_enospc
from connectors.errors import SourceUnavailable
from connectors.ranged import RangeSource, RemoteObject

__all__ = [
    "CacheDiskFull",
    "CacheStats",
    "CachedFile",
    "Entry",
    "FileCache",
    "cache_for",
    "ObjectChanged",
    "content_digest",
    "Progress",
    "default_cache",
]

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path("~/.cache/atom/files")


class CachedFile:
    """A pinned cache entry: `path` is not evicted (by any process) until `release()`.

    Use it as `async with await cache.fetch(src) as cached:` (or `with`), or call `release()`.

    Attributes:
        path: the local, read-only file holding the object's bytes.
        size: bytes.
        digest: the content digest (hex; see `content_digest`: sha256 over per-MiB sha256s).
        uri: the object it came from (secret-free).
    """

    def __init__(self, path: Path, size: int, digest: str, uri: str, fd: int) -> None:
        self.path = path
        self.size = size
        self.digest = digest
        self.uri = uri
        self._fd: int | None = fd

    @property
    def pinned(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the pin; the entry may be evicted from now on."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> CachedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    async def __aenter__(self) -> CachedFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def __del__(self, _suppress: type[contextlib.suppress] = contextlib.suppress) -> None:
        with _suppress(Exception):  # bound early: module globals may be gone at interpreter exit
            self.release()

    def __repr__(self) -> str:
        state = "pinned" if self.pinned else "released"
        return f"<CachedFile {self.uri} {self.size} bytes sha256:{self.digest[:12]} {state}>"


@dataclass
class CacheStats:
    """What this `FileCache` object did (this process only).

    Attributes:
        hits: fetches served by an entry that was already complete.
        downloads: downloads this process ran.
        fetched_bytes: bytes received from sources.
        resumed: downloads that continued a partial file.
    """

    hits: int = 0
    downloads: int = 0
    fetched_bytes: int = 0
    resumed: int = 0


class FileCache:
    """A content-addressed download cache on local disk (see the module docstring)."""

    DEFAULT_MAX_BYTES = 20 * 2**30
    """The size limit when none is given: 20 GiB."""

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        max_bytes: int = 20 * 2**30,  # = DEFAULT_MAX_BYTES
        part_size: int = 16 * 2**20,
        parallel: int = 4,
        retries: int = 5,
        retry_backoff_s: float = 0.2,
    ) -> None:
        """Open (and create) a cache directory; cheap, no download starts.

        Args:
            root: the cache directory (default `~/.cache/atom/files`).
            max_bytes: size limit; least-recently-used unpinned blobs are evicted to respect it.
            part_size: bytes per range request.
            parallel: connections per object.
            retries: retries of one range after a dropped connection without progress.
            retry_backoff_s: the first retry's delay (doubles per retry, at most 5 s).
        """
        self.root = Path(root or DEFAULT_ROOT).expanduser()
        self.max_bytes = max_bytes
        self.part_size = part_size
        self.parallel = parallel
        self.retries = retries
        self.retry_backoff_s = retry_backoff_s
        self.stats = CacheStats()
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._inflight: dict[str, concurrent.futures.Future[None]] = {}
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="atom-cache")

    @property
    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = Store(self.root)
            except OSError as exc:
                if is_enospc(exc):
                    raise disk_full(self.root, 0, exc) from exc
                raise
        return self._store

    # -- fetch ---------------------------------------------------------------------------------

    async def fetch(self, source: RangeSource, *, progress: Progress | None = None) -> CachedFile:
        """The object `source` names, as a pinned local file; downloads it unless cached.

        Concurrent fetches of one object (tasks, threads, processes) share one download.

        Args:
            source: the remote object.
            progress: called with (bytes done, total) from worker threads while this call downloads.

        Returns:
            A pinned `CachedFile`; release it (or use `async with`) when done reading.

        Raises:
            TargetNotFound, AuthenticationFailed, PermissionDenied: from the source.
            SourceUnavailable: the source stayed unreachable through the retries.
            CacheDiskFull: no room on the cache's disk, or the object exceeds `max_bytes`.
        """
        for _ in range(4):
            remote = await asyncio.to_thread(self._stat, source)
            key = entry_key(remote)
            pinned = await asyncio.to_thread(self._pin, key, remote)
            if pinned is not None:
                self.stats.hits += 1
                return pinned
            future = self._claim(key, source, remote, progress)
            try:
                await asyncio.shield(asyncio.wrap_future(future))
            except ObjectChanged as exc:
                logger.info("%s changed during the download (%s); fetching it again", remote.uri, exc)
                continue
            pinned = await asyncio.to_thread(self._pin, key, remote)
            if pinned is not None:
                return pinned
        raise ObjectChanged(f"{source.uri} kept changing while it was downloaded: try again later")

    def fetch_sync(self, source: RangeSource, *, progress: Progress | None = None) -> CachedFile:
        """Blocking `fetch` (for threads and command-line tools)."""
        for _ in range(4):
            remote = self._stat(source)
            key = entry_key(remote)
            pinned = self._pin(key, remote)
            if pinned is not None:
                self.stats.hits += 1
                return pinned
            try:
                self._claim(key, source, remote, progress).result()
            except ObjectChanged as exc:
                logger.info("%s changed during the download (%s); fetching it again", remote.uri, exc)
                continue
            pinned = self._pin(key, remote)
            if pinned is not None:
                return pinned
        raise ObjectChanged(f"{source.uri} kept changing while it was downloaded: try again later")

    def prefetch(self, source: RangeSource, *, progress: Progress | None = None) -> asyncio.Task[None]:
        """Start downloading `source` now; a later `fetch` of it waits for this download or finds it done."""

        async def run() -> None:
            (await self.fetch(source, progress=progress)).release()

        return asyncio.create_task(run(), name=f"atom-prefetch {source.uri}")

    # -- internals -----------------------------------------------------------------------------

    def _stat(self, source: RangeSource) -> RemoteObject:
        failures = 0
        while True:
            try:
                return source.stat()
            except SourceUnavailable as exc:
                failures += 1
                if failures > self.retries:
                    raise
                delay = exc.retry_after or min(5.0, self.retry_backoff_s * 2 ** (failures - 1))
                if self._stop.wait(delay):
                    raise

    def _pin(self, key: str, remote: RemoteObject) -> CachedFile | None:
        found = self.store.pin(key)
        if found is None:
            return None
        fd, path, digest, size = found
        return CachedFile(path, size, digest, remote.uri, fd)

    def _claim(
        self, key: str, source: RangeSource, remote: RemoteObject, progress: Progress | None
    ) -> concurrent.futures.Future[None]:
        """The in-flight download of `key` in this process, started here if there is none."""
        with self._lock:
            future = self._inflight.get(key)
            if future is not None:
                return future
            future = concurrent.futures.Future()
            self._inflight[key] = future
        try:
            self._pool.submit(self._download, future, key, source, remote, progress)
        except BaseException:
            with self._lock:
                self._inflight.pop(key, None)
            raise
        return future

    def _download(
        self,
        future: concurrent.futures.Future[None],
        key: str,
        source: RangeSource,
        remote: RemoteObject,
        progress: Progress | None,
    ) -> None:
        try:
            self._download_locked(key, source, remote, progress)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(None)
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _download_locked(
        self, key: str, source: RangeSource, remote: RemoteObject, progress: Progress | None
    ) -> None:
        if remote.size > self.max_bytes:
            raise CacheDiskFull(
                f"{remote.uri} is {remote.size / 2**20:.0f} MiB, more than the file cache's limit of "
                f"{self.max_bytes / 2**20:.0f} MiB ({self.root}): raise max_bytes",
                root=str(self.root),
            )
        store = self.store
        with exclusive(store.lock_path(key)):  # other processes wait here for our download
            if store.read_index(key) is not None and (found := store.pin(key)) is not None:
                os.close(found[0])  # another process finished it while we waited
                return
            store.evict(self.max_bytes, remote.size, exclude=key)
            started = time.monotonic()
            download = Download(
                source,
                remote,
                store,
                key,
                part_size=self.part_size,
                parallel=self.parallel,
                retries=self.retries,
                backoff=self.retry_backoff_s,
                progress=progress,
                stop=self._stop,
            )
            try:
                digest = download.run()
            finally:
                self.stats.fetched_bytes += download.fetched
            self.stats.downloads += 1
            if download.fetched < remote.size:
                self.stats.resumed += 1
            try:
                store.publish(key, remote, store.partial / f"{key}.part", digest)
            except OSError as exc:
                if is_enospc(exc):
                    raise disk_full(self.root, remote.size, exc) from exc
                raise
            with contextlib.suppress(FileNotFoundError):
                os.unlink(store.partial / f"{key}.state")
            seconds = time.monotonic() - started
            logger.info(
                "cached %s (%d bytes, %.0f MB/s) as sha256:%s",
                remote.uri,
                remote.size,
                download.fetched / max(seconds, 1e-6) / 1e6,
                digest[:12],
            )

    # -- maintenance ---------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every complete entry (blocking)."""
        return self.store.entries()

    def prune(self, max_bytes: int | None = None) -> int:
        """Evict unpinned entries down to `max_bytes` (default: the limit); returns bytes freed."""
        freed = self.store.evict(self.max_bytes if max_bytes is None else max_bytes)
        self.store.prune_index()
        return freed

    def close(self) -> None:
        """Stop running downloads (their partial files stay resumable) and release the threads."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


_default: FileCache | None = None
_default_lock = threading.Lock()


CONF_KNOBS = ("max_bytes", "part_size", "parallel")
"""`source_conf` keys `cache_<knob>` a connection may set beside `cache_dir`."""


def cache_for(conf: Mapping[str, Any], where: str = "") -> tuple[FileCache, bool]:
    """The cache a connection's `source_conf` asks for, and whether the connection owns it.

    `cache_dir`, `cache_max_bytes`, `cache_part_size` (bytes per range request) or
    `cache_parallel` (connections per object) give the connection its own cache (close it
    with the connection); otherwise it shares the process-wide `default_cache()`.
    """
    from connectors._options import conf_int  # deferred: keeps this module's import light

    options = {
        name: conf_int(conf, f"cache_{name}", 0, minimum=1, where=where)
        for name in CONF_KNOBS
        if conf.get(f"cache_{name}")
    }
    if conf.get("cache_dir") or options:
        return FileCache(conf.get("cache_dir") or None, **options), True
    return default_cache(), False


def default_cache(root: Path | str | None = None, *, max_bytes: int | None = None) -> FileCache:
    """The process-wide cache; `root` (the agent's ATOM_CACHE_DIR) and `max_bytes` reconfigure it."""
    global _default
    with _default_lock:
        wanted = Path(root or DEFAULT_ROOT).expanduser()
        moved = root is not None and (_default is None or _default.root != wanted)
        resized = max_bytes is not None and (_default is None or _default.max_bytes != max_bytes)
        if _default is None or moved or resized:
            current = _default
            _default = FileCache(
                wanted if root is not None or current is None else current.root,
                max_bytes=max_bytes or (current.max_bytes if current else FileCache.DEFAULT_MAX_BYTES),
            )
        return _default
