"""MYSQL connector: MySQL/MariaDB tables and queries as DataFrames or Arrow tables, and atomic table sinks.

Reads page by key, never by OFFSET (`_mysql_read`): a table is read in pages of
`WHERE key > last ORDER BY key LIMIT n`, where key is the primary key (or a single-column unique
NOT NULL key, or `ReadOptions.key`); a SELECT query is paged the same way as a derived table
when `ReadOptions.key` names one of its columns, and otherwise streamed once (`_mysql_stream`).
Pages come through connectorx (Arrow over the binary protocol, ~15x pymysql) when it is installed
and the columns allow it, else through pymysql; both give the same dtypes (`_mysql_types`).
A dropped connection is retried with backoff and the read resumes after the last page handed
on (`_paging.resumable_pages`).

Writes go through `sink()` (`_mysql_sink`): rows are staged in a private table and applied in
one step at commit (append, replace, upsert, run keys). Objects (model files) live in the
table `atom_objects` (`_mysql_objects`). Every driver error is translated at this boundary into
a `ConnectorError` (`_mysql_errors`), without the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, TypeVar

import pymysql

from connectors import _mysql_bulk
from connectors._mysql_errors import LOST_CODES, ErrorContext
from connectors._mysql_objects import ObjectStore
from connectors._mysql_read import KeysetRead
from connectors._mysql_settings import ConnectorSettings
from connectors._mysql_sink import MySQLSink, drop_table
from connectors._mysql_sql import CONVERSIONS, is_query
from connectors._mysql_stream import StreamRead, quiet_close
from connectors._mysql_types import Column
from connectors._paging import PagedReader, resumable_pages, rows_advance
from connectors.base import ConnectionConfig, Connector, ObjectInfo, ReadOptions, WriteOptions
from connectors.errors import ConnectorConfigError, ConnectorError, SourceUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PORT = 3306
_DRIVER_OPTIONS = ("charset", "read_timeout", "write_timeout", "init_command", "ssl", "unix_socket")


class MySQLConnector(Connector):
    """One MySQL/MariaDB database: a pymysql connection (opened on first use) plus connectorx for bulk reads.

    `source_conf` keys are listed in `connectors._mysql_settings` (engine, partitions, decimal,
    connect_timeout, write_batch_rows, unix_socket, charset, read_timeout, write_timeout,
    init_command, ssl). Column dtypes of reads are listed in `connectors._mysql_types`.

    Example:
        >>> cfg = ConnectionConfig("MYSQL", addr="127.0.0.1", account="root", space="test")
        >>> async with MySQLConnector(cfg) as conn:
        ...     async for df in conn.read("orders", ReadOptions(paginate_read_num=100_000)): ...
    """

    connect_type: ClassVar[str] = "MYSQL"

    def __init__(self, config: ConnectionConfig) -> None:
        """Check the config; nothing connects until the first call.

        Args:
            config: addr, port, account, password and space (the database) of the server.

        Raises:
            ConnectorConfigError: a bad `source_conf` value.
        """
        super().__init__(config)
        conf = config.source_conf
        self.settings = ConnectorSettings.from_conf(conf)
        self.host = config.addr or "127.0.0.1"
        self.port = int(config.port or DEFAULT_PORT)
        self.database = config.space or str(conf.get("database", "") or "")
        self.connect_timeout = float(conf.get("connect_timeout", 5))
        self.unix_socket: str | None = conf.get("unix_socket") or None
        self.errors = ErrorContext(
            user=config.account,
            host=self.unix_socket or self.host,
            port=0 if self.unix_socket else self.port,
            database=self.database,
        )
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._lock = threading.Lock()  # one statement at a time on the shared connection
        self._streams: set[pymysql.connections.Connection[Any]] = set()
        self._stages: dict[str, weakref.finalize[Any, Any]] = {}
        self._orphans: set[str] = set()
        self._bulk = self._bulk_engine()
        self.objects = ObjectStore(self)

    def __repr__(self) -> str:
        return f"MySQLConnector({self.config.describe()})"

    @property
    def where(self) -> str:
        """`host:port/db` (or the socket path), for messages."""
        return self.errors.where

    def _bulk_engine(self) -> _mysql_bulk.BulkEngine | None:
        conf = self.config.source_conf
        if self.settings.engine == "pymysql" or not _mysql_bulk.available():
            if self.settings.engine == "connectorx":
                raise ConnectorConfigError(
                    "source_conf engine='connectorx' needs connectorx: pip install connectorx"
                )
            return None
        return _mysql_bulk.BulkEngine(
            user=self.config.account,
            password=self.config.password,
            host=self.host,
            port=self.port,
            database=self.database,
            unix_socket=self.unix_socket,
            init_command=conf.get("init_command"),
            errors=self.errors,
            partitions=self.settings.partitions,
        )

    def _choose_engine(self, wanted: str, columns: list[Column], name: str) -> str:
        """The engine a read uses: connectorx unless it is missing or cannot decode a column."""
        if wanted == "pymysql" or self._bulk is None:
            return "pymysql"
        reasons = []
        odd = [c.name for c in columns if not c.bulk_ok]
        if odd:
            reasons.append(f"connectorx cannot decode columns {', '.join(odd)} exactly")
        if self.config.source_conf.get("ssl"):
            reasons.append("ssl is configured")
        if reasons:
            log = logger.warning if wanted == "connectorx" else logger.info
            log("%s: reading with pymysql (%s)", name, "; ".join(reasons))
            return "pymysql"
        return "connectorx"

    # -- the pymysql connection ------------------------------------------------------------

    def _open(self) -> pymysql.connections.Connection[Any]:
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.config.account or None,
            "password": self.config.password,
            "database": self.database or None,
            "connect_timeout": self.connect_timeout,
            "charset": "utf8mb4",
            "autocommit": True,
            "conv": CONVERSIONS,
        }
        kwargs.update(
            {k: self.config.source_conf[k] for k in _DRIVER_OPTIONS if k in self.config.source_conf}
        )
        try:
            return pymysql.connect(**kwargs)
        except (pymysql.MySQLError, OSError) as exc:
            raise self.errors.from_pymysql(exc, "connecting") from exc

    def _run_locked(
        self,
        fn: Callable[[pymysql.connections.Connection[Any]], T],
        doing: str,
        target: str | None,
        retry_stale: bool = False,
    ) -> T:
        """Run `fn(connection)` holding the connection lock; translate driver errors. Blocking.

        With `retry_stale`, a connection that turns out to be dead (the server restarted or
        timed it out) is replaced once and `fn` runs again: only for statements that are safe
        to repeat (reads, metadata).
        """
        with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None
                if self._conn is None:
                    self._conn = self._open()
                try:
                    return fn(self._conn)
                except (pymysql.MySQLError, OSError) as exc:
                    error = self.errors.from_pymysql(exc, doing, target)
                    if isinstance(error, SourceUnavailable):
                        self._drop_locked()
                        code = error.context.get("code")
                        if retry_stale and not fresh and attempt == 1 and code in LOST_CODES:
                            logger.info("MySQL connection to %s was dropped; reconnecting", self.where)
                            continue
                    raise error from exc
        raise AssertionError("unreachable")

    def _drop_locked(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    async def _call(
        self,
        fn: Callable[[pymysql.connections.Connection[Any]], T],
        doing: str,
        target: str | None = None,
        *,
        retry_stale: bool = False,
    ) -> T:
        """Run `fn(connection)` in a worker thread, holding the connection lock."""
        return await asyncio.to_thread(self._run_locked, fn, doing, target, retry_stale)

    @staticmethod
    def _execute(cur: Any, sql: Any, params: Any = None) -> None:
        logger.debug("SQL %s", sql)
        cur.execute(sql, params)

    async def ping(self) -> None:
        """Connect (if needed, replacing a dropped connection) and run `SELECT 1`.

        Raises:
            AuthenticationFailed, SourceUnavailable, TargetNotFound (unknown database).
        """

        def select_one(conn: pymysql.connections.Connection[Any]) -> None:
            with conn.cursor() as cur:
                self._execute(cur, "SELECT 1")
                cur.fetchall()

        await self._call(select_one, "pinging", retry_stale=True)

    async def aclose(self) -> None:
        """Drop unfinished sinks' staging tables, close the connection, streams and bulk threads."""
        stages = list(self._stages) + list(self._orphans)
        for stage in stages:
            with contextlib.suppress(ConnectorError):
                await self._call(lambda c, s=stage: drop_table(self, c, s), f"dropping {stage}", stage)  # type: ignore[misc]
            self._unregister_stage(stage)
        self._orphans.clear()

        def close() -> None:
            with self._lock:
                self._drop_locked()
            for conn in list(self._streams):
                quiet_close(conn)
            self._streams.clear()
            if self._bulk is not None:
                self._bulk.close()

        await asyncio.to_thread(close)

    # -- staging tables of sinks ------------------------------------------------------------

    def _register_stage(self, sink: MySQLSink, stage: str) -> None:
        """Remember a sink's stage: dropped at `aclose()` if the sink never finishes."""
        self._stages[stage] = weakref.finalize(sink, self._orphans.add, stage)

    def _unregister_stage(self, stage: str) -> None:
        finalizer = self._stages.pop(stage, None)
        if finalizer is not None:
            finalizer.detach()
        self._orphans.discard(stage)

    # -- read and write ----------------------------------------------------------------------

    def read(self, target: str, options: ReadOptions | None = None) -> PagedReader:
        """Stream a table or a SELECT query as DataFrames (or Arrow tables), paging by key.

        Args:
            target: a table name (`t` or `db.t`) or a SELECT query.
            options: read knobs. `key` names the paging column (tables default to the primary
                key; queries without a key are streamed once with pymysql). `paginate_read_num`
                defaults to 100,000 rows. `connect_read_num` is rows per fetch of the pymysql
                engine. `resume_from` is a key value (keyset reads) or a row count (keyless
                queries). `arrow=True` yields `pyarrow.Table`s. `retries`/`retry_backoff_s`
                govern reconnects when the server drops the connection mid-read.

        Returns:
            A `PagedReader`; its `cursor` is the last key handed on (keyless queries: the row count).

        Raises:
            TargetNotFound: the table does not exist (raised on the first batch).
            ConnectorConfigError: a table has no single-column unique key and no `key` is set.
            SchemaChanged: the columns changed between two pages (see `_mysql_read`).
            SourceUnavailable: the server stayed away through every retry.
        """
        options = options or ReadOptions()
        settings = self.settings.read(options)
        query = is_query(target)
        if query and not options.key:
            stream = StreamRead(self, target, settings)
            pages = resumable_pages(
                stream.pages, cursor=options.resume_from, advance=rows_advance, options=options, name="query"
            )
            return PagedReader(pages, options, advance=rows_advance, name="query")
        keyset = KeysetRead(self, target, settings, query=query)
        pages = resumable_pages(
            keyset.pages,
            cursor=options.resume_from,
            advance=keyset.advance,
            options=options,
            name=keyset.name,
        )
        return PagedReader(pages, options, advance=keyset.advance, name=keyset.name)

    def sink(self, target: str, options: WriteOptions | None = None) -> MySQLSink:
        """An atomic streaming writer to the table `target` (created from the first batch if missing).

        Args:
            target: the table (`t` or `db.t`).
            options: mode (append, replace, upsert), key columns (upsert matching; the primary
                key of a created table), run_key (rows carry it in `_atom_run`; a later sink with
                the same run key replaces them).

        Raises:
            ConnectorConfigError: a query as target, or upsert without key columns.
        """
        options = options or WriteOptions()
        if is_query(target):
            raise ConnectorConfigError(f"cannot write to a query: name a table, not {target[:40]!r}")
        if options.mode == "upsert" and not options.key:
            raise ConnectorConfigError("mode upsert needs key columns: pass key='id' (or a list)")
        if options.run_key and len(options.run_key) > 128:
            raise ConnectorConfigError(f"run_key is {len(options.run_key)} characters; at most 128 fit")
        return MySQLSink(self, target, options)

    # -- objects -----------------------------------------------------------------------------

    async def get_object(self, path: str) -> bytes:
        """Read one object stored by `put_object` (raises TargetNotFound when missing)."""
        return await self.objects.get(path)

    async def put_object(self, path: str, data: bytes) -> str:
        """Store `data` under `path` in the `atom_objects` table; returns its `mysql://` URI."""
        return await self.objects.put(path, data)

    async def stat_object(self, path: str) -> ObjectInfo:
        """Size, MD5 etag and modification time of one object (raises TargetNotFound)."""
        return await self.objects.stat(path)

    def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose path starts with `prefix`, in path order (keyset pages)."""
        return self.objects.list_objects(prefix)
