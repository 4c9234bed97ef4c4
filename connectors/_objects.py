"""Shared base of the object-store connectors (S3, ALIYUNOSS): objects, reads and sinks on a few primitives.

`ObjectStoreConnector` implements the whole `Connector` API once; `connectors.s3` and
`connectors.oss` only supply blocking primitives over their SDK (stat, list page, ranged get,
put, multipart create/part/complete/abort, delete, ping) and map SDK errors to ours. The
primitives run in a bounded thread pool per connector (the SDKs are synchronous), so the event
loop never blocks; the file cache calls them from its own threads through `ObjectRange`.

Targets:
- a key (`data/train.parquet`): one object;
- a prefix ending in "/" (`data/parts/`) or a glob (`data/*.csv`): every matching object in
  key order (names starting with "_" or "." are skipped, as Hadoop/Spark markers).
"""

from __future__ import annotations

import abc
import asyncio
import fnmatch
import functools
import logging
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlparse

from connectors._atomic import copy_atomically
from connectors._object_io import ObjectRange, fetch_local, release, upload_file
from connectors._object_read import prefix_reader, single_reader
from connectors._options import conf_int
from connectors.base import ConnectionConfig, Connector, ObjectInfo, ReadOptions, WriteOptions
from connectors.errors import ConnectorConfigError, ConnectorError, SourceUnavailable

if TYPE_CHECKING:
    from connectors._object_sink import ObjectSink
    from connectors._paging import PagedReader
    from connectors.cache import FileCache

logger = logging.getLogger(__name__)

T = TypeVar("T")

MiB = 1 << 20
GLOB_CHARS = "*?["


def is_prefix_target(target: str) -> bool:
    """A target naming many objects: ends with "/" (or is empty), or holds a glob character."""
    return not target or target.endswith("/") or any(c in target for c in GLOB_CHARS)


def resolve_endpoint(config: ConnectionConfig, default: Callable[[str], str | None]) -> str | None:
    """The endpoint URL for a connection record.

    `addr` may be a full URL (`http://127.0.0.1:9000`, `port` fills in a missing port) or a host
    (`port` and `source_conf["scheme"]` complete it; without a scheme, https for port 443 or
    none, http for any other port). With no `addr` (and no `source_conf["endpoint"]`), the
    store's public endpoint for `source_conf["region"]` is used (`default(region)`).
    """
    conf = config.source_conf
    addr = (config.addr or str(conf.get("endpoint", "") or "")).strip().rstrip("/")
    if not addr:
        return default(str(conf.get("region", "") or ""))
    if "://" in addr:
        parsed = urlparse(addr)
        if config.port and parsed.port is None:
            addr = f"{parsed.scheme}://{parsed.hostname}:{config.port}{parsed.path}"
        return addr
    scheme = str(conf.get("scheme", "") or ("https" if config.port in (None, 443) else "http"))
    return f"{scheme}://{addr}" + (f":{config.port}" if config.port else "")


class ObjectStoreConnector(Connector):
    """A bucket of an object store; subclasses implement the blocking `_` primitives.

    sourceConf options every object store takes: `region`, `scheme`, `max_workers` (SDK
    threads, default 8), `multipart_threshold` and `part_size` (bytes; uploads above the
    threshold go in parts), `direct_read_bytes` (objects up to this size are read with one GET
    instead of through the file cache, default 16 MiB), `cache_dir`, `cache_part_size` and
    `cache_parallel` (a file cache of this connector's own; default: the shared one),
    `connect_timeout` / `read_timeout` (seconds), `list_page_size` (keys per listing request,
    at most 1000).
    """

    scheme: ClassVar[str] = ""
    """URI scheme of object names: s3, oss."""
    min_part_size: ClassVar[int] = 5 * MiB
    """The store's smallest multipart part (all but the last)."""

    def __init__(self, config: ConnectionConfig) -> None:
        super().__init__(config)
        if not config.space:
            raise ConnectorConfigError(
                f"{config.describe()}: no bucket: set the connection's connectSpace to the bucket name"
            )
        self.bucket = config.space

        def option(name: str, default: int) -> int:
            return conf_int(config.source_conf, name, default, where=config.describe())

        self.max_workers = max(1, option("max_workers", 8))
        self.part_size = max(self.min_part_size, option("part_size", 8 * MiB))
        self.multipart_threshold = max(self.part_size, option("multipart_threshold", 16 * MiB))
        self.direct_read_bytes = option("direct_read_bytes", 16 * MiB)
        self.list_page_size = min(1000, max(1, option("list_page_size", 1000)))
        self._executor: ThreadPoolExecutor | None = None
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._cache: FileCache | None = None
        self._pins: list[Any] = []
        self._own_cache = False

    # -- primitives (blocking; run in the connector's threads) --------------------------------

    @abc.abstractmethod
    def _make_client(self) -> Any:
        """Build the SDK client (called once, lazily, from a worker thread)."""

    @abc.abstractmethod
    def _head(self, key: str) -> ObjectInfo:
        """Size, ETag and mtime of one object; raise TargetNotFound when missing."""

    @abc.abstractmethod
    def _list_page(self, prefix: str, token: str | None, limit: int) -> tuple[list[ObjectInfo], str | None]:
        """One listing page under `prefix` in key order, and the token of the next (None: last)."""

    @abc.abstractmethod
    def _get_into(
        self, key: str, start: int, end: int | None, write: Callable[[bytes], None], if_match: str = ""
    ) -> None:
        """Stream bytes [start, end) (end None: to the object's end) into `write`, in order.

        With `if_match` (an ETag), the store refuses (412 -> `ObjectChanged`) once the object changed.
        """

    @abc.abstractmethod
    def _put(self, key: str, data: bytes) -> None:
        """Store a small object in one request."""

    @abc.abstractmethod
    def _mp_create(self, key: str) -> str:
        """Start a multipart upload; returns its id."""

    @abc.abstractmethod
    def _mp_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Upload part `number` (from 1); returns its ETag."""

    @abc.abstractmethod
    def _mp_complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Complete the upload: the object appears, whole, under `key`."""

    @abc.abstractmethod
    def _mp_abort(self, key: str, upload_id: str) -> None:
        """Abandon the upload and free its parts."""

    @abc.abstractmethod
    def _delete(self, key: str) -> None:
        """Delete one object (no error when it is already gone)."""

    @abc.abstractmethod
    def _ping(self) -> None:
        """One cheap request that needs the bucket and valid credentials."""

    @abc.abstractmethod
    def _translate(self, exc: Exception, key: str, doing: str) -> ConnectorError | None:
        """The connector error for an SDK exception (None: not an SDK error)."""

    def _close_client(self, client: Any) -> None:  # noqa: B027 - optional hook
        """Release the SDK client's pooled connections."""

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The SDK client, built on first use (thread-safe)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def uri(self, key: str) -> str:
        """The secret-free name of an object: `s3://bucket/key`."""
        return f"{self.scheme}://{self.bucket}/{key}"

    def where(self, key: str = "") -> str:
        """How messages name an object or the bucket, with the endpoint."""
        return f"{self.uri(key)} ({self.config.describe()})"

    def blocking(self, doing: str, key: str, fn: Callable[..., T], *args: Any) -> T:
        """Run a primitive here (a worker thread), translating SDK errors to connector errors."""
        try:
            return fn(*args)
        except ConnectorError:
            raise
        except Exception as exc:
            err = self._translate(exc, key, doing)
            if err is None:
                if not isinstance(exc, OSError):
                    raise
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                err = SourceUnavailable(
                    f"{self.where(key)}: connection failed while {doing} ({detail}); check the endpoint",
                    key=key,
                )
            raise err from exc

    async def call(self, doing: str, key: str, fn: Callable[..., T], *args: Any) -> T:
        """Run a primitive in the connector's thread pool (errors translated)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix=f"atom-{self.scheme}")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self.blocking, doing, key, fn, *args)
        )

    def cache(self) -> FileCache:
        """The file cache large objects go through.

        The process-wide default cache, unless sourceConf sets `cache_dir` or `cache_<knob>`
        (see `connectors.cache.cache_for`): then one owned by this connector (closed by `aclose()`).
        """
        if self._cache is None:
            from connectors.cache import cache_for  # deferred: only large reads need it

            self._cache, self._own_cache = cache_for(self.config.source_conf, self.config.describe())
        return self._cache

    def range_source(self, key: str) -> ObjectRange:
        """The object as a `RangeSource` for the file cache."""
        return ObjectRange(self, key)

    # -- objects -------------------------------------------------------------------------------

    async def stat_object(self, path: str) -> ObjectInfo:
        """Size, ETag and mtime of one object.

        Raises:
            TargetNotFound: no such object or bucket.
        """
        return await self.call("reading", path, self._head, path)

    async def get_object(self, path: str) -> bytes:
        """Read one object whole (one GET)."""
        buf = bytearray()
        await self.call("reading", path, self._get_into, path, 0, None, buf.extend)
        return bytes(buf)

    async def put_object(self, path: str, data: bytes) -> str:
        """Store `data` under `path` atomically (multipart above `multipart_threshold`); returns its URI."""
        if len(data) <= self.multipart_threshold:
            await self.call("writing", path, self._put, path, bytes(data))
            return self.uri(path)
        with tempfile.TemporaryDirectory(prefix="atom-put-") as tmp:
            local = Path(tmp) / "object"
            await asyncio.to_thread(local.write_bytes, data)
            return await self.upload(str(local), path)

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object under `prefix`, in key order (one listing request per page)."""
        token: str | None = None
        while True:
            page, token = await self.call(
                "listing", prefix, self._list_page, prefix, token, self.list_page_size
            )
            for info in page:
                yield info
            if token is None:
                return

    async def delete_object(self, path: str) -> None:
        """Delete one object (no error when it is already gone)."""
        await self.call("deleting", path, self._delete, path)

    async def download(self, path: str, dest: str) -> str:
        """Copy one object to the local file `dest` atomically, through the file cache (parallel ranges)."""
        async with fetch_local(self, path, large=True) as local:
            await asyncio.to_thread(copy_atomically, local, Path(dest))
        return dest

    async def upload(self, src: str, path: str) -> str:
        """Store the local file `src` under `path` atomically (multipart for large files); returns its URI."""
        await self.call("writing", path, upload_file, self, Path(src), path)
        return self.uri(path)

    async def local_file(self, target: str) -> Path:
        """The file cache's local copy of one object (parallel ranges), pinned until `aclose()`.

        Raises:
            TargetNotFound: no such object or bucket.
        """
        cached = await self.cache().fetch(self.range_source(target))
        self._pins.append(cached)
        return Path(cached.path)

    async def prefetch(self, target: str) -> None:
        """Bring the large objects of `target` (a key, prefix or glob) into the file cache.

        Objects up to `direct_read_bytes` are skipped: reads fetch those with one GET anyway.
        """
        infos = await self.matching(target) if is_prefix_target(target) else [await self.stat_object(target)]
        for info in infos:
            if info.size > self.direct_read_bytes:
                await release(await self.cache().fetch(self.range_source(info.path)))

    async def ping(self) -> None:
        """Check the endpoint answers, the bucket exists and the credentials work."""
        await self.call("checking", "", self._ping)

    async def aclose(self) -> None:
        """Close the SDK client and stop the threads (the connector reopens them on next use)."""
        pins, self._pins = self._pins, []
        for cached in pins:
            await release(cached)
        cache, self._cache = self._cache, None
        if cache is not None and self._own_cache:
            cache.close()
        executor, self._executor = self._executor, None
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(self._close_client, client)
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True)

    # -- read and sink -------------------------------------------------------------------------

    def read(self, target: str, options: ReadOptions | None = None) -> PagedReader:
        """Stream an object, or every object under a prefix, as pages.

        Args:
            target: a key, a prefix ending in "/", or a glob (`data/*.csv`).
            options: read knobs; `data_format` overrides the extension; `resume_from` takes a
                reader's `cursor` (one object: the format's cursor; a prefix:
                `{"key": ..., "rows": ...}`).

        Returns:
            A `PagedReader`. A dropped connection is retried with backoff and resumes at the cursor.

        Raises:
            TargetNotFound: no such object/bucket, or nothing matches the prefix (on the first batch).
            SchemaChanged: two objects of a prefix read have different columns.
        """
        options = options or ReadOptions()
        if is_prefix_target(target):
            return prefix_reader(self, target, options)
        return single_reader(self, target, options)

    @classmethod
    def run_keyed_by_default(cls, target: str) -> bool:
        """Only datasets (targets ending in "/"): a run's rows go to a part named after it."""
        return target.endswith("/")

    def sink(self, target: str, options: WriteOptions | None = None) -> ObjectSink:
        """A streaming writer to an object (or a new part object under a prefix ending in "/").

        Batches are encoded into a local temp file; `commit()` uploads it (multipart when large),
        so the object changes only at commit, whole. See `connectors._object_sink`.
        """
        from connectors._object_sink import ObjectSink  # deferred: import cycle

        return ObjectSink(self, target, options or WriteOptions())

    # -- listing helpers -----------------------------------------------------------------------

    async def matching(self, target: str) -> list[ObjectInfo]:
        """The objects a prefix/glob target names, in key order (markers and hidden names skipped)."""
        cut = min((target.index(c) for c in GLOB_CHARS if c in target), default=len(target))
        literal = target[:cut]
        found = []
        async for info in self.list_objects(literal):
            name = PurePosixPath(info.path).name
            if info.path.endswith("/") or name.startswith(("_", ".")):
                continue
            if cut < len(target) and not fnmatch.fnmatchcase(info.path, target):
                continue
            found.append(info)
        return found
