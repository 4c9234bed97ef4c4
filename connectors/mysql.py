"""MYSQL connector: MySQL/MariaDB tables and queries as DataFrames, over pymysql in worker threads.

Reads page by key, never by OFFSET: a table is read with
`SELECT * FROM t WHERE key > %s ORDER BY key LIMIT n`, where key is the primary key (or a
single-column unique NOT NULL key, or `ReadOptions.key`). A SELECT query is wrapped as a derived
table and paged the same way when `ReadOptions.key` names one of its columns; otherwise it is
streamed once with an unbuffered cursor on a connection of its own. Within a page, rows come in
`connect_read_num`-row fetches. Writes run in one transaction (create table if missing, DELETE for
replace, batched multi-row INSERTs, commit) and roll back whole on any error. Objects (model files)
live in the table `atom_objects`. Every pymysql error is translated into a `ConnectorError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, TypeVar

import pandas as pd
import pymysql

from connectors._mysql_sql import (
    CONVERSIONS,
    create_table_sql,
    frame_from_rows,
    is_query,
    quote_ident,
    records,
    split_table,
)
from connectors._paging import DEFAULT_PAGE_ROWS, PagedReader, key_advance, rows_advance
from connectors.base import ConnectionConfig, Connector, ReadOptions, WriteMode
from connectors.errors import (
    AuthenticationFailed,
    ConnectorConfigError,
    ConnectorError,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PORT = 3306
DEFAULT_FETCH_ROWS = 10_000
"""Rows per fetch when `connect_read_num` is 0 (capped at the page size)."""
WRITE_BATCH_ROWS = 5_000
"""Rows per `executemany` call when writing (pymysql turns each into multi-row INSERTs)."""
OBJECTS_TABLE = "atom_objects"

_LOST = {2006, 2013, 2055}  # server gone / lost during query / lost at handshake
_UNREACHABLE = {2002, 2003, 2005} | _LOST | {1040, 1053, 1205, 1213}
_DENIED = {1044, 1142, 1143, 1227, 1370}
_DRIVER_OPTIONS = ("charset", "read_timeout", "write_timeout", "init_command", "ssl", "unix_socket")


class MySQLConnector(Connector):
    """One MySQL/MariaDB database; one connection, opened on first use.

    `source_conf` may set `connect_timeout` (seconds, default 5), `charset` (default utf8mb4),
    `read_timeout`, `write_timeout`, `init_command`, `ssl` and `write_batch_rows`.

    Example:
        >>> cfg = ConnectionConfig("MYSQL", addr="127.0.0.1", account="root", space="test")
        >>> async with MySQLConnector(cfg) as conn:
        ...     async for df in conn.read("orders", ReadOptions(paginate_read_num=10_000)): ...
    """

    connect_type: ClassVar[str] = "MYSQL"

    def __init__(self, config: ConnectionConfig) -> None:
        """Keep the config; nothing connects until the first call.

        Args:
            config: addr, port, account, password and space (the database) of the server.
        """
        super().__init__(config)
        conf = config.source_conf
        self.host = config.addr or "127.0.0.1"
        self.port = int(config.port or DEFAULT_PORT)
        self.database = config.space or str(conf.get("database", "") or "")
        self.connect_timeout = float(conf.get("connect_timeout", 5))
        self.write_batch_rows = int(conf.get("write_batch_rows", WRITE_BATCH_ROWS))
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._lock = threading.Lock()  # one statement at a time on the shared connection
        self._streams: set[pymysql.connections.Connection[Any]] = set()

    # -- connection and error mapping ------------------------------------------------------

    @property
    def where(self) -> str:
        """`host:port/db`, for messages."""
        return f"{self.host}:{self.port}" + (f"/{self.database}" if self.database else "")

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
            raise self._translate(exc, "connecting") from exc

    def _translate(self, exc: BaseException, doing: str, target: str | None = None) -> ConnectorError:
        """The connector error for a pymysql or socket error raised while `doing`."""
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        detail = str(exc.args[1]) if len(exc.args) > 1 else (str(exc) or type(exc).__name__)
        user = self.config.account
        ctx: dict[str, Any] = {"code": code, "where": self.where}
        if code == 1045:
            return AuthenticationFailed(
                f"MySQL refused user {user!r} at {self.host}:{self.port}: check the account and password",
                **ctx,
            )
        if code in _DENIED:
            return PermissionDenied(
                f"MySQL user {user!r} may not do this ({doing}) at {self.where}: {detail}; "
                "ask for the grant or use another account",
                **ctx,
            )
        if code == 1049:
            return TargetNotFound(
                f"MySQL database {self.database!r} does not exist at {self.host}:{self.port}: "
                "create it or fix the connection's space",
                **ctx,
            )
        if code == 1146:
            name = target or "the table"
            return TargetNotFound(
                f"MySQL table {name} does not exist in {self.where}: check the data source's table name",
                **ctx,
            )
        if code == 1046:
            return ConnectorConfigError(
                f"no database selected at {self.host}:{self.port}: set the connection's space (database) "
                "or qualify the table as db.table",
                **ctx,
            )
        if code in _UNREACHABLE or isinstance(exc, (OSError, pymysql.err.InterfaceError)):
            return SourceUnavailable(
                f"MySQL at {self.host}:{self.port} is unreachable or dropped the connection while {doing} "
                f"({detail}): check the server is up and reachable, then retry",
                **ctx,
            )
        if isinstance(exc, pymysql.err.OperationalError) and code is not None and code >= 2000:
            return SourceUnavailable(f"MySQL client error while {doing} at {self.where}: {detail}", **ctx)
        return RequestRejected(f"MySQL refused {doing} at {self.where}: {detail}", **ctx)

    def _run_locked(
        self, fn: Callable[[pymysql.connections.Connection[Any]], T], doing: str, target: str | None
    ) -> T:
        with self._lock:
            if self._conn is None:
                self._conn = self._open()
            try:
                return fn(self._conn)
            except (pymysql.MySQLError, OSError) as exc:
                error = self._translate(exc, doing, target)
                if isinstance(error, SourceUnavailable):
                    self._drop_locked()
                raise error from exc

    def _drop_locked(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    async def _call(
        self, fn: Callable[[pymysql.connections.Connection[Any]], T], doing: str, target: str | None = None
    ) -> T:
        """Run `fn(connection)` in a worker thread, holding the connection lock."""
        return await asyncio.to_thread(self._run_locked, fn, doing, target)

    @staticmethod
    def _execute(cur: Any, sql: str, params: Any = None) -> None:
        logger.debug("SQL %s", sql)
        cur.execute(sql, params)

    async def ping(self) -> None:
        """Connect (if needed) and run `SELECT 1`.

        Raises:
            AuthenticationFailed, SourceUnavailable, TargetNotFound (unknown database).
        """

        def select_one(conn: pymysql.connections.Connection[Any]) -> None:
            with conn.cursor() as cur:
                self._execute(cur, "SELECT 1")
                cur.fetchall()

        await self._call(select_one, "pinging")

    async def aclose(self) -> None:
        """Close the connection and any query stream still open."""

        def close() -> None:
            with self._lock:
                self._drop_locked()
            for conn in list(self._streams):
                _quiet_close(conn)
            self._streams.clear()

        await asyncio.to_thread(close)

    # -- read --------------------------------------------------------------------------------

    def read(self, target: str, options: ReadOptions | None = None) -> PagedReader:
        """Stream a table or a SELECT query as DataFrames, paging by key.

        Args:
            target: a table name (`t` or `db.t`) or a SELECT query.
            options: read knobs. `key` names the paging column (tables default to the primary
                key; queries without a key are streamed once, unbuffered). `connect_read_num`
                is rows per fetch within a page. `resume_from` is a key value (keyset reads) or
                a row count (keyless queries).

        Returns:
            A `PagedReader`; its `cursor` is the last key handed on (keyless queries: the row count).

        Raises:
            TargetNotFound: the table does not exist (raised on the first batch).
            ConnectorConfigError: a table has no single-column unique key and no `key` is set.
        """
        options = options or ReadOptions()
        page_rows = options.paginate_read_num or DEFAULT_PAGE_ROWS
        fetch_rows = min(options.connect_read_num or DEFAULT_FETCH_ROWS, page_rows)
        if is_query(target):
            query = target.strip().rstrip(";")
            if options.key:
                source = f"({query}) AS `_atom_q`"
                pages = self._keyset_pages(source, options.key, page_rows, fetch_rows, options.resume_from)
                return PagedReader(pages, options, advance=key_advance(options.key), name="query")
            pages = self._stream_pages(query, page_rows, fetch_rows, int(options.resume_from or 0))
            return PagedReader(pages, options, advance=rows_advance, name="query")
        found: dict[str, str] = {}
        pages = self._table_pages(target, options, page_rows, fetch_rows, found)

        def advance(batch: pd.DataFrame, cursor: Any) -> Any:
            return key_advance(found["key"])(batch, cursor)

        return PagedReader(pages, options, advance=advance, name=target)

    async def _table_pages(
        self, table: str, options: ReadOptions, page_rows: int, fetch_rows: int, found: dict[str, str]
    ) -> AsyncIterator[pd.DataFrame]:
        key = await self._call(lambda conn: self._paging_key(conn, table, options.key), "reading", table)
        found["key"] = key
        async for page in self._keyset_pages(
            quote_ident(table), key, page_rows, fetch_rows, options.resume_from, table
        ):
            yield page

    def _paging_key(self, conn: pymysql.connections.Connection[Any], table: str, key: str | None) -> str:
        """The column to page `table` by; checks the table exists first."""
        with conn.cursor() as cur:
            self._execute(cur, f"SELECT * FROM {quote_ident(table)} LIMIT 0")
            columns = [d[0] for d in cur.description or ()]
            schema, name = split_table(table)
            self._execute(
                cur,
                "SELECT INDEX_NAME, COLUMN_NAME, NULLABLE FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s AND NON_UNIQUE = 0 "
                "ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
                (schema, name),
            )
            rows = cur.fetchall()
        by_index: dict[str, list[tuple[str, str]]] = {}
        for index, column, nullable in rows:
            by_index.setdefault(index, []).append((column, nullable))
        usable = [cols[0][0] for cols in by_index.values() if len(cols) == 1 and cols[0][1] != "YES"]
        if key:
            if key not in columns:
                raise ConnectorConfigError(
                    f"key {key!r} is not a column of MySQL table {table} (columns: {', '.join(columns)}): "
                    "set the data source's key to one of them"
                )
            if key not in usable:
                logger.warning(
                    "key %r of %s is not a single-column unique NOT NULL index: paging may be slow, "
                    "and rows sharing a key value at a page boundary may be skipped",
                    key,
                    table,
                )
            return key
        if not usable:
            raise ConnectorConfigError(
                f"MySQL table {table} has no single-column primary or unique NOT NULL key to page by: "
                "set the data source's key (ReadOptions.key) to a unique, indexed column"
            )
        return usable[0]

    async def _keyset_pages(
        self,
        source: str,
        key: str,
        page_rows: int,
        fetch_rows: int,
        after: Any,
        target: str | None = None,
    ) -> AsyncIterator[pd.DataFrame]:
        k = quote_ident(key)
        first = f"SELECT * FROM {source} ORDER BY {k} LIMIT {int(page_rows)}"
        later = f"SELECT * FROM {source} WHERE {k} > %s ORDER BY {k} LIMIT {int(page_rows)}"
        last: Any = after

        def fetch_page(conn: pymysql.connections.Connection[Any]) -> tuple[pd.DataFrame, Any]:
            with conn.cursor(pymysql.cursors.SSCursor) as cur:
                if last is None:
                    self._execute(cur, first)
                else:
                    self._execute(cur, later, (last,))
                rows: list[Any] = []
                while chunk := cur.fetchmany(fetch_rows):
                    rows.extend(chunk)
                names = [d[0] for d in cur.description]
                if key not in names:
                    raise ConnectorConfigError(
                        f"key {key!r} is not a column of the query's result ({', '.join(names)}): "
                        "select it or set another key"
                    )
                last_key = rows[-1][names.index(key)] if rows else None
                # the frame is built in this worker thread: keeps the event loop free
                return frame_from_rows(rows, cur.description), last_key

        while True:
            page, last_key = await self._call(fetch_page, "reading", target or source)
            if len(page):
                last = last_key
            if len(page) or last is None:
                yield page  # an empty first page still carries the columns
            if len(page) < page_rows:
                return

    async def _stream_pages(
        self, query: str, page_rows: int, fetch_rows: int, skip: int
    ) -> AsyncIterator[pd.DataFrame]:
        """One unbuffered pass over `query` on a connection of its own (no key to page by)."""
        conn = await asyncio.to_thread(self._open)
        self._streams.add(conn)
        cur = conn.cursor(pymysql.cursors.SSCursor)

        def start() -> None:
            self._execute(cur, query)
            left = skip
            while left > 0 and (chunk := cur.fetchmany(min(left, fetch_rows))):
                left -= len(chunk)

        def fetch_page() -> pd.DataFrame:
            rows: list[Any] = []
            while len(rows) < page_rows and (chunk := cur.fetchmany(min(fetch_rows, page_rows - len(rows)))):
                rows.extend(chunk)
            return frame_from_rows(rows, cur.description)

        try:
            try:
                await asyncio.to_thread(start)
            except (pymysql.MySQLError, OSError) as exc:
                raise self._translate(exc, "running the query") from exc
            first = True
            while True:
                try:
                    page = await asyncio.to_thread(fetch_page)
                except (pymysql.MySQLError, OSError) as exc:
                    raise self._translate(exc, "reading the query's rows") from exc
                if len(page) or first:
                    yield page
                first = False
                if len(page) < page_rows:
                    return
        finally:
            self._streams.discard(conn)
            # closing the socket (not the cursor) avoids draining an abandoned result set
            await asyncio.to_thread(_quiet_close, conn)

    # -- write -------------------------------------------------------------------------------

    async def write(
        self, df: pd.DataFrame, target: str, *, mode: WriteMode = "append", key: str | None = None
    ) -> int:
        """Write `df` into a table in one transaction; nothing is left half-written.

        A missing table is created from the DataFrame's dtypes (BIGINT, DOUBLE, TINYINT(1),
        DATETIME(6), DECIMAL, TEXT, LONGBLOB); `key` makes that column its primary key.

        Args:
            df: the rows; column names are the table's column names.
            target: the table (`t` or `db.t`).
            mode: "append" adds rows; "replace" deletes the existing rows first (same transaction).
            key: primary-key column for a table this call creates (ignored otherwise).

        Returns:
            The number of rows written.

        Raises:
            RequestRejected: the server refused a row (constraint, type, unknown column);
                the transaction is rolled back and a table this call created is dropped.
        """
        if mode not in ("append", "replace"):
            raise ConnectorConfigError(f"unknown write mode {mode!r}: valid values are append, replace")
        if is_query(target):
            raise ConnectorConfigError(f"cannot write to a query: name a table, not {target[:40]!r}")
        table = quote_ident(target)
        columns = [str(c) for c in df.columns]
        insert = (
            f"INSERT INTO {table} ({', '.join(map(quote_ident, columns))}) "
            f"VALUES ({', '.join(['%s'] * len(columns))})"
        )
        rows = await asyncio.to_thread(records, df)
        create = create_table_sql(target, df, key)
        batch = max(1, self.write_batch_rows)

        def work(conn: pymysql.connections.Connection[Any]) -> None:
            with conn.cursor() as cur:
                schema, name = split_table(target)
                self._execute(
                    cur,
                    "SELECT COUNT(*) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s",
                    (schema, name),
                )
                created = not cur.fetchone()[0]
                if created:
                    self._execute(cur, create)  # DDL commits on its own: undone by DROP below
                try:
                    conn.begin()
                    if mode == "replace":
                        self._execute(cur, f"DELETE FROM {table}")
                    if rows:
                        logger.debug("SQL %s [x%d rows in batches of %d]", insert, len(rows), batch)
                    for start in range(0, len(rows), batch):
                        cur.executemany(insert, rows[start : start + batch])
                    conn.commit()
                except BaseException:
                    with contextlib.suppress(Exception):
                        conn.rollback()
                    if created:
                        with contextlib.suppress(Exception):
                            self._execute(cur, f"DROP TABLE IF EXISTS {table}")
                    raise

        await self._call(work, f"writing {len(rows)} rows to {target}", target)
        logger.debug("wrote %d rows to %s (%s)", len(rows), target, mode)
        return len(rows)

    # -- objects -----------------------------------------------------------------------------

    async def get_object(self, path: str) -> bytes:
        """Read one object stored by `put_object`.

        Raises:
            TargetNotFound: no object at `path`.
        """

        def get(conn: pymysql.connections.Connection[Any]) -> Any:
            with conn.cursor() as cur:
                self._execute(cur, f"SELECT data FROM `{OBJECTS_TABLE}` WHERE path = %s", (path,))
                return cur.fetchone()

        try:
            row = await self._call(get, f"reading object {path}", OBJECTS_TABLE)
        except TargetNotFound:
            row = None
        if row is None:
            raise TargetNotFound(
                f"no object {path!r} in {self.where}/{OBJECTS_TABLE}: check the path", path=path
            )
        return bytes(row[0])

    async def put_object(self, path: str, data: bytes) -> str:
        """Store `data` under `path` in the `atom_objects` table (created on demand).

        Returns:
            `mysql://host:port/db/atom_objects/<path>`.
        """
        if len(path) > 512:
            raise ConnectorConfigError(f"object path is {len(path)} characters; at most 512 fit in MySQL")

        def put(conn: pymysql.connections.Connection[Any]) -> None:
            with conn.cursor() as cur:
                self._execute(
                    cur,
                    f"CREATE TABLE IF NOT EXISTS `{OBJECTS_TABLE}` (path VARCHAR(512) NOT NULL PRIMARY KEY, "
                    "data LONGBLOB NOT NULL, updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB",
                )
                self._execute(
                    cur,
                    f"REPLACE INTO `{OBJECTS_TABLE}` (path, data, updated_at) VALUES (%s, %s, NOW(6))",
                    (path, data),
                )

        try:
            await self._call(put, f"storing object {path} ({len(data)} bytes)", OBJECTS_TABLE)
        except SourceUnavailable as exc:
            if exc.context.get("code") in (1153, 2006, 2013) and len(data) > 1 << 20:
                raise RequestRejected(
                    f"MySQL at {self.where} refused a {len(data)}-byte object: raise the server's "
                    "max_allowed_packet or store models in a FILE/S3 connection",
                    path=path,
                ) from exc
            raise
        return f"mysql://{self.host}:{self.port}/{self.database}/{OBJECTS_TABLE}/{path.lstrip('/')}"


def _quiet_close(conn: pymysql.connections.Connection[Any]) -> None:
    """Close a connection without draining an unread unbuffered result (the server drops it)."""
    result = getattr(conn, "_result", None)
    if result is not None:
        result.unbuffered_active = False  # else its __del__ reads from the closed socket
    with contextlib.suppress(Exception):
        conn.close()
