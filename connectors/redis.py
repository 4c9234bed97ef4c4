"""REDIS connector: key patterns read as DataFrames, sinks write hashes, objects are string keys.

Reads. A target with glob characters (`user:*`) is a SCAN MATCH pattern; a target without them
is one key when a key of that name exists, else a prefix (`orders:` reads `orders:*`). Rows:

- hash: one row per key, `_key` plus the fields;
- string holding a JSON object: one row per key, `_key` plus the object's members (nested values
  as JSON text); any other string: `_key, value`;
- list: `_key, index, value` per element; set: `_key, member`; sorted set: `_key, member, score`;
  stream: `_key, id, <fields>` per entry.

A pattern read uses SCAN (never KEYS) on every primary, `connect_read_num` keys per SCAN COUNT
and per value pipeline (default 5000); see `connectors._redis_read` for the pipelining, the
cursor and the de-duplication. A single list/zset/stream/set key is paged by position (see
`connectors._redis_keys`). Pages hold exactly `paginate_read_num` rows (the last one fewer).
Keys containing `__atom_` are Atom's own and never read.

Types: a prefix written by the sink has a schema key `<prefix>__atom_schema` (column -> Arrow
type) that restores each column's dtype; other values arrive as text and numeric-looking columns
become int64/float64 (per page, only widening: int -> float -> string). Values that are not
UTF-8 come back as bytes.

Sinks write hashes under `<prefix><key columns joined by ':'>` (without `key`: a row number under
the run key or a per-sink id), every column a field (nulls left out; a `_key` column, as reads
give, is not stored), staged and renamed into place atomically; see `connectors._redis_write`.

Objects are for small model files only (at most 512 MiB; keep big ones in S3/OSS): plain string
keys `atom:objects:<path>` (source_conf `objects_prefix` changes the namespace), readable with a
plain GET, with their size, etag and time in a companion hash.

Connection: `addr`/`port` (6379), `password` and `account` (ACL user), `space` = db index,
`colony_type` SINGLE or GROUP (Redis Cluster; addr/port is a seed node). `source_conf`:
`unix_socket`, `ssl` (+ `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`,
`ssl_check_hostname`), `connect_timeout` (5 s), `socket_timeout` (60 s), `dedup` (True),
`staging_ttl_s` (86400), `write_batch_rows` (5000), `objects_prefix`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from redis import exceptions as rx

from connectors._paging import DEFAULT_PAGE_ROWS, PagedReader, resumable_pages
from connectors._redis_client import (
    MARK,
    SCHEMA_SUFFIX,
    Client,
    Topology,
    companion,
    glob_escape,
    is_pattern,
    literal_prefix,
    make_client,
    slot_tags,
    topology,
    translate,
)
from connectors._redis_keys import ELEMENT_TYPES, key_advance, key_pages
from connectors._redis_read import DEFAULT_SCAN_COUNT, scan_pages
from connectors._redis_resp import RedisSettings
from connectors._redis_scan import ScanPlan, ScanState
from connectors._redis_types import parse_type
from connectors._redis_write import Writer
from connectors.base import ConnectionConfig, Connector, ObjectInfo, ReadOptions, Sink, WriteOptions
from connectors.errors import ConnectorConfigError, RequestRejected, SourceUnavailable, TargetNotFound

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RedisConnector", "RedisSink"]

T = TypeVar("T")

OBJECTS_PREFIX = "atom:objects:"
MAX_OBJECT_BYTES = 512 << 20
_META_KIND = MARK.encode() + b"meta:"


class RedisConnector(Connector):
    """One Redis server (SINGLE) or Redis Cluster (GROUP); connects on first use.

    Example:
        >>> cfg = ConnectionConfig("REDIS", addr="127.0.0.1", space="0")
        >>> async with RedisConnector(cfg) as conn:
        ...     async for df in conn.read("user:*", ReadOptions(paginate_read_num=10_000)): ...
    """

    connect_type: ClassVar[str] = "REDIS"

    def __init__(self, config: ConnectionConfig) -> None:
        """Check the config; nothing connects until the first call.

        Raises:
            ConnectorConfigError: a colony type, db index or option that cannot work.
        """
        super().__init__(config)
        self.settings = RedisSettings.from_config(config)
        self.objects_prefix = str(self.settings.conf.get("objects_prefix", OBJECTS_PREFIX))
        self._client: Client | None = None
        self._topology: Topology | None = None

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """The secret-free name of the store, for messages."""
        return self.settings.where

    def _redis(self) -> Client:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    async def _guard(self, work: Awaitable[T], doing: str, target: str = "") -> T:
        """Await redis-py work within `socket_timeout`; errors become connector errors."""
        try:
            async with asyncio.timeout(self.settings.socket_timeout):
                return await work
        except TimeoutError as exc:
            raise SourceUnavailable(
                f"{self.where} did not answer within {self.settings.socket_timeout:g}s while {doing}: "
                "check the server is up and not overloaded, then retry"
            ) from exc
        except (rx.RedisError, rx.RedisClusterException, OSError) as exc:
            raise translate(exc, self.where, doing, target) from exc

    async def _call(self, *args: Any, doing: str, target: str = "") -> Any:
        """One command through redis-py; errors become connector errors."""
        return await self._guard(self._redis().execute_command(*args), doing, target)

    async def topology(self) -> Topology:
        """The primaries (GROUP: discovered from the seed node, cached until `aclose`)."""
        if self._topology is None:
            found = await self._guard(topology(self.settings, self._redis()), "discovering the cluster")
            if found.cluster:
                await asyncio.to_thread(slot_tags)  # ~0.2 s of CRC16 once per process: off the loop
            self._topology = found
        return self._topology

    async def ping(self) -> None:
        """Connect, log in and PING (GROUP: also check every slot has a primary).

        Raises:
            AuthenticationFailed, PermissionDenied, SourceUnavailable, ConnectorConfigError.
        """
        await self.topology()
        await self._call("PING", doing="pinging")

    async def aclose(self) -> None:
        """Close the redis-py client (readers and sinks close their own sockets)."""
        client, self._client = self._client, None
        self._topology = None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    # -- read --------------------------------------------------------------------------------

    def read(self, target: str, options: ReadOptions | None = None) -> PagedReader:
        """Stream a key pattern, prefix or single key as DataFrames (Arrow tables with `arrow`).

        Args:
            target: `user:*` (pattern), `orders:` (prefix) or the name of one key.
            options: read knobs; `connect_read_num` is keys per SCAN COUNT and value pipeline
                (single keys: elements per round trip); `resume_from` a reader's `cursor`.

        Returns:
            A `PagedReader` whose `cursor` can resume the read.

        Raises:
            TargetNotFound: nothing matches (raised on the first batch).
        """
        options = options or ReadOptions()
        if not target:
            raise ConnectorConfigError(f"a Redis read needs a key, prefix or pattern ({self.where})")
        page_rows = options.paginate_read_num or DEFAULT_PAGE_ROWS
        count = options.connect_read_num or DEFAULT_SCAN_COUNT
        found: dict[str, Any] = {}

        async def open_pages(cursor: Any) -> AsyncIterator[Any]:
            try:
                if "plan" not in found:
                    await self._resolve(target, options, page_rows, count, found)
                if found["plan"] is None:
                    pages = key_pages(
                        self._key_call(target),
                        target,
                        found["kind"],
                        cursor,
                        count=count,
                        page_rows=page_rows,
                        arrow=options.arrow,
                        where=self.where,
                    )
                else:
                    pages = scan_pages(found["plan"], found["state"], cursor)
                async for page in pages:
                    yield page
            except SourceUnavailable:
                self._topology = None  # a failover may have moved the primaries
                raise

        def advance(frame: Any, cursor: Any) -> Any:
            return found["advance"](frame, cursor)

        name = f"{self.where} {target}"
        pages = resumable_pages(
            open_pages, cursor=options.resume_from, advance=advance, options=options, name=name
        )
        return PagedReader(pages, options, advance=advance, name=name)

    def _key_call(self, target: str) -> Any:
        async def call(*args: Any) -> Any:
            return await self._call(*args, doing=f"reading key {target}", target=target)

        return call

    async def _resolve(
        self, target: str, options: ReadOptions, page_rows: int, count: int, found: dict[str, Any]
    ) -> None:
        """Decide what the target is (one key or a pattern) and prepare its read."""
        resume = options.resume_from
        topo = await self.topology()
        if not is_pattern(target) and not (isinstance(resume, dict) and "key" not in resume):
            kind = (await self._call("TYPE", target, doing="reading the key type", target=target)).decode()
            if kind in ELEMENT_TYPES:
                found.update(plan=None, kind=kind, advance=key_advance(kind, target))
                return
        pattern = target if is_pattern(target) else glob_escape(target) + "*"
        prefix = literal_prefix(target) if is_pattern(target) else target
        raw = await self._call(
            "HGETALL", prefix + SCHEMA_SUFFIX, doing="reading the schema key", target=target
        )
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[0::2], raw[1::2], strict=True)
        schema = {k.decode(): t for k, v in pairs if (t := parse_type(v.decode())) is not None}
        plan = ScanPlan(
            settings=self.settings,
            nodes=topo.nodes,
            pattern=pattern.encode(),
            target=target,
            count=count,
            page_rows=page_rows,
            arrow=options.arrow,
            schema=schema or None,
            dedup=str(self.settings.conf.get("dedup", True)).lower() not in ("0", "false", "no", "off"),
            must_exist=resume is None and not raw,
        )
        state = ScanState(plan, resume)
        found.update(plan=plan, state=state, advance=state.advance)

    # -- write -------------------------------------------------------------------------------

    def sink(self, target: str, options: WriteOptions | None = None) -> Sink:
        """A streaming writer of hashes under the key prefix `target` (see `_redis_write`).

        Raises:
            ConnectorConfigError: no prefix, or upsert without key columns.
        """
        options = options or WriteOptions()
        if not target:
            raise ConnectorConfigError(f"a Redis sink needs a key prefix such as 'orders:' ({self.where})")
        if options.mode == "upsert" and not options.key:
            raise ConnectorConfigError("mode upsert needs key columns: pass key='id' (or a list)")
        return RedisSink(self, target, options)

    # -- objects -----------------------------------------------------------------------------

    def _object_keys(self, path: str) -> tuple[bytes, bytes]:
        key = (self.objects_prefix + path).encode()
        return key, companion(key, _META_KIND, self.settings.cluster)

    def _uri(self, key: bytes) -> str:
        s = self.settings
        where = s.unix_socket or f"{s.host}:{s.port}"
        return f"redis://{where}/{s.db}/{key.decode()}"

    async def put_object(self, path: str, data: bytes) -> str:
        """Store `data` as the string key `atom:objects:<path>` (size, etag and time beside it).

        Returns:
            `redis://host:port/db/atom:objects:<path>`.

        Raises:
            RequestRejected: more than 512 MiB (Redis' limit; keep big models in S3/OSS).
        """
        if len(data) > MAX_OBJECT_BYTES:
            raise RequestRejected(
                f"object {path!r} is {len(data)} bytes; {self.where} stores at most 512 MiB per key: "
                "keep large models in an S3/OSS connection"
            )
        key, meta = self._object_keys(path)
        etag = hashlib.sha256(data).hexdigest()[:32]

        async def store() -> None:
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.set(key, data)
                pipe.delete(meta)
                pipe.hset(meta, mapping={"size": len(data), "etag": etag, "modified": repr(time.time())})
                await pipe.execute()

        await self._guard(store(), f"storing object ({len(data)} bytes)", path)
        return self._uri(key)

    async def get_object(self, path: str) -> bytes:
        """Read one object whole.

        Raises:
            TargetNotFound: no object at `path`.
        """
        key, _ = self._object_keys(path)
        data = await self._call("GET", key, doing="reading an object", target=path)
        if data is None:
            raise TargetNotFound(f"no object {path!r} in {self.where} (key {key.decode()}): check the path")
        return bytes(data)

    async def stat_object(self, path: str) -> ObjectInfo:
        """Size, etag and time of one object.

        Raises:
            TargetNotFound: no object at `path`.
        """
        key, meta = self._object_keys(path)
        size = await self._call("STRLEN", key, doing="reading an object's size", target=path)
        exists = await self._call("EXISTS", key, doing="reading an object's size", target=path)
        if not exists:
            raise TargetNotFound(f"no object {path!r} in {self.where} (key {key.decode()}): check the path")
        info = await self._call("HGETALL", meta, doing="reading an object's metadata", target=path)
        info = dict(info) if isinstance(info, dict) else dict(zip(info[0::2], info[1::2], strict=True))
        return ObjectInfo(
            path=path,
            size=int(size),
            etag=info.get(b"etag", b"").decode(),
            modified=float(info.get(b"modified", b"0") or 0),
        )

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose path starts with `prefix`, in path order (SCAN on every primary)."""
        pattern = glob_escape(self.objects_prefix + prefix) + "*"

        async def scan() -> list[bytes]:
            return [k async for k in self._redis().scan_iter(match=pattern, count=1000)]

        keys = await self._guard(scan(), "listing objects", prefix)
        skip = len(self.objects_prefix.encode())
        for key in sorted(k for k in keys if MARK.encode() not in k):
            with contextlib.suppress(TargetNotFound):
                yield await self.stat_object(key[skip:].decode())


class RedisSink(Sink):
    """Hashes under a key prefix, staged and committed atomically (see `_redis_write`)."""

    def __init__(self, connector: RedisConnector, target: str, options: WriteOptions) -> None:
        super().__init__(target, options)
        self._connector = connector
        self._writer: Writer | None = None

    async def _get_writer(self) -> Writer:
        if self._writer is None:
            topo = await self._connector.topology()
            self._writer = Writer(self._connector.settings, topo, self.target, self.options)
        return self._writer

    async def write(self, batch: pd.DataFrame) -> None:
        """Stage rows under hidden keys; they become visible at `commit()`."""
        writer = await self._get_writer()
        await asyncio.to_thread(writer.write, batch)
        self.rows += len(batch)

    async def commit(self) -> int:
        """Rename the staged rows into place in one MULTI/EXEC (per hash slot in a cluster)."""
        self._finished = True
        writer = await self._get_writer()
        try:
            await asyncio.to_thread(writer.commit)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(writer.abort)
            raise
        finally:
            await asyncio.to_thread(writer.close)
        return self.rows

    async def abort(self) -> None:
        """Delete the staged rows; the target stays as it was."""
        self._finished = True
        writer = self._writer
        if writer is None:
            return
        try:
            await asyncio.to_thread(writer.abort)
        finally:
            await asyncio.to_thread(writer.close)
