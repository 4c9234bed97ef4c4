"""Keyset page producer of the MYSQL connector: tables and keyed queries, page by key, resumable at any key.

`KeysetRead` reads `WHERE key > last ORDER BY key LIMIT n` pages (never OFFSET), so each page
costs the same from the first to the last, and its `pages(cursor)` can start after any key:
`_paging.resumable_pages` calls it again with the last key handed on when the server drops the
connection. For an integer key of a table, after the first page it fetches key *ranges* in
parallel (`_mysql_ranges.RangeWindow`: `partitions` queries of
`key > a AND key <= b ORDER BY key LIMIT n`, each about a page, in flight) and cuts exact pages
from the ordered rows, up to the largest key seen at the start; plain keyset pages then pick up
any newer rows.

Each page is fetched and converted (Arrow, then pandas) in a worker thread, so with
`async_load` the next page is on its way while the consumer works on this one. Columns are
described once per read; a page whose columns differ (added, dropped or retyped between two
pages) raises `SchemaChanged`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from connectors._mysql_errors import one_line
from connectors._mysql_ranges import RangeWindow
from connectors._mysql_sql import quote_ident, render, split_table
from connectors._mysql_types import Column, arrow_from_rows, arrow_schema, conform, to_pandas
from connectors._paging import key_advance
from connectors.errors import BatchDecodeError, ConnectorConfigError, SchemaChanged

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from connectors._mysql_settings import ReadSettings
    from connectors.mysql import MySQLConnector

logger = logging.getLogger("connectors.mysql")


@dataclass
class _Position:
    """Where one opening of a read stands: rows fetched but not yet handed on, and what comes next."""

    after: Any
    pending: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    exhausted: bool = False
    density: float | None = None
    window: RangeWindow | None = None
    ranges_done: bool = False

    def add(self, table: pa.Table) -> None:
        if len(table):
            self.pending.append(table)
            self.rows += len(table)

    def take(self, n: int, schema: pa.Schema) -> pa.Table:
        if not self.pending:
            return schema.empty_table()
        merged = self.pending[0] if len(self.pending) == 1 else pa.concat_tables(self.pending)
        page, rest = merged.slice(0, n), merged.slice(n)
        self.pending = [rest] if len(rest) else []
        self.rows = len(rest)
        return page


def schema_diff(before: Sequence[tuple[str, str]], now: Sequence[tuple[str, str]]) -> str:
    """`added: x; dropped: y; retyped: z` between two (name, type) lists."""
    old, new = dict(before), dict(now)
    added = [n for n in new if n not in old]
    dropped = [n for n in old if n not in new]
    retyped = [f"{n} {old[n]} -> {new[n]}" for n in new if n in old and old[n] != new[n]]
    parts = [
        f"{label}: {', '.join(names)}"
        for label, names in (("added", added), ("dropped", dropped), ("retyped", retyped))
        if names
    ]
    return "; ".join(parts) or "column order changed"


class KeysetRead:
    """One read of a table (or a query with a key column), page by page, resumable at any key."""

    def __init__(self, conn: MySQLConnector, target: str, settings: ReadSettings, *, query: bool) -> None:
        self.conn = conn
        self.settings = settings
        self.query = query
        self.name = one_line(target, 200) if query else target
        if query:
            text = target.strip().rstrip(";").replace("%", "%%")
            self.source = f"({text}) AS `_atom_q`"
        else:
            self.source = quote_ident(target)
        self.table = target
        self.key: str | None = settings.key
        self.columns: list[Column] | None = None
        self.engine = settings.engine
        self.max_key: int | None = None
        self._signature: dict[str, list[tuple[str, str]]] = {}
        self._opened = False

    # -- the cursor ------------------------------------------------------------------------

    def advance(self, batch: Any, cursor: Any) -> Any:
        """Cursor after `batch`: its last key value."""
        if self.key is None:
            return cursor
        return key_advance(self.key)(batch, cursor)

    # -- pages -----------------------------------------------------------------------------

    async def pages(self, cursor: Any) -> AsyncIterator[Any]:
        """Pages after `cursor` (None: from the start); the `open_pages` of `resumable_pages`."""
        if self.columns is None:
            await self.conn._call(self._describe, "reading", self.name, retry_stale=True)
        elif self._opened:
            await self.conn._call(_ping, "reconnecting", self.name, retry_stale=True)
        self._opened = True
        position = _Position(after=cursor)
        first = True
        try:
            while True:
                frame, done = await asyncio.to_thread(self._next_page, position)
                if len(frame) or first:
                    yield frame  # an empty first page still carries the columns
                first = False
                if done:
                    return
        finally:
            if position.window is not None:  # a reader closed early: queued ranges are not started
                position.window.close()

    def _next_page(self, at: _Position) -> tuple[Any, bool]:
        """Fetch until a page is full (or the source is exhausted); cut and convert it. Blocking."""
        page_rows = self.settings.page_rows
        if self.engine == "connectorx":
            # a cheap check on the pymysql connection first: connectorx's pool would wait 30 s
            # for a server that is down, this fails at once (and resumable_pages retries)
            self.conn._run_locked(_ping, "reading", self.name, retry_stale=True)
        while at.rows < page_rows and not at.exhausted:
            if self._ranged(at):
                self._range_round(at)
            else:
                self._keyset_round(at, page_rows - at.rows)
        assert self.columns is not None
        page = at.take(page_rows, arrow_schema(self.columns))
        done = at.exhausted and not at.rows
        if self.settings.arrow:
            return page, done
        return to_pandas(page, self.columns, self.settings.decimals), done

    def _keyset_round(self, at: _Position, need: int) -> None:
        """One `key > after ORDER BY key LIMIT need` query."""
        k = quote_ident(self.key or "")
        params: tuple[Any, ...] = ()
        if at.after is None:
            template = f"SELECT * FROM {self.source} ORDER BY {k} LIMIT {need}"
        else:
            template = f"SELECT * FROM {self.source} WHERE {k} > %s ORDER BY {k} LIMIT {need}"
            params = (at.after,)
        table = self._fetch(template, params)
        at.add(table)
        if len(table) < need:
            at.exhausted = True
        if len(table):
            last = table.column(self.key)[-1].as_py()
            if self.max_key is not None and len(table) > 1:
                first = table.column(self.key)[0].as_py() - 1 if at.after is None else at.after
                at.density = len(table) / max(1, last - first)
            at.after = last

    def _ranged(self, at: _Position) -> bool:
        return (
            self.settings.partitions > 1
            and self.engine == "connectorx"
            and self.max_key is not None
            and at.density is not None
            and isinstance(at.after, int)
            and not at.ranges_done
        )

    def _range_round(self, at: _Position) -> None:
        """The next key range from the window of parallel range queries."""
        assert at.density is not None and self.max_key is not None and self.columns is not None
        if at.window is None:
            at.window = RangeWindow(
                after=at.after,
                density=at.density,
                max_key=self.max_key,
                rows_per_range=self.settings.page_rows,  # about a page each: fewer queries, whole pages
                cap=self.settings.page_rows,
                width=self.settings.partitions,
                submit=self._submit_range,
                last_key=lambda t: int(t.column(self.key)[-1].as_py()),
                probe=self._next_key,
            )
        window = at.window
        try:
            raw = window.next()
        except BatchDecodeError as exc:  # connectorx cannot decode these rows: pymysql takes over
            logger.warning("%s: %s; reading the rest with pymysql", self.name, exc)
            window.close()
            self.engine, at.window, at.after = "pymysql", None, window.after
            return
        except BaseException:
            window.close()
            at.window = None  # a retry starts again after the last page handed on
            raise
        if raw is None:  # every range up to the largest key is in: plain pages find any newer rows
            at.window, at.ranges_done, at.after = None, True, window.after
            return
        self._check("connectorx", [(f.name, str(f.type)) for f in raw.schema])
        at.add(conform(raw, self.columns))
        at.after = window.after

    def _next_key(self, after: int) -> int | None:
        k = quote_ident(self.key or "")
        probe = functools.partial(
            _scalar, sql=f"SELECT MIN({k}) FROM {self.source} WHERE {k} > %s", params=(after,)
        )
        found = self.conn._run_locked(probe, "reading", self.name)
        return None if found is None else int(found)

    def _submit_range(self, low: int, high: int, limit: int) -> Any:
        assert self.conn._bulk is not None
        k = quote_ident(self.key or "")
        where = f"{k} > {int(low)} AND {k} <= {int(high)}"
        sql = f"SELECT * FROM {self.source} WHERE {where} ORDER BY {k} LIMIT {limit}"
        return self.conn._bulk.submit(sql, self.name)

    # -- engines ---------------------------------------------------------------------------

    def _fetch(self, template: str, params: Sequence[Any]) -> pa.Table:
        """A canonical Arrow table for one (template, params) query, through the read's engine."""
        bulk = self.conn._bulk
        if self.engine == "connectorx" and bulk is not None:
            try:
                raw = bulk.fetch(render(template, params), self.name)
            except BatchDecodeError as exc:
                logger.warning("%s: %s; reading the rest with pymysql", self.name, exc)
                self.engine = "pymysql"
            else:
                assert self.columns is not None
                self._check("connectorx", [(f.name, str(f.type)) for f in raw.schema])
                return conform(raw, self.columns)
        fetch = functools.partial(self._fetch_pymysql, template=template, params=params)
        return self.conn._run_locked(fetch, "reading", self.name)

    def _fetch_pymysql(self, conn: Any, template: str, params: Sequence[Any]) -> pa.Table:
        import pymysql

        with conn.cursor(pymysql.cursors.SSCursor) as cur:
            self.conn._execute(cur, template, tuple(params))
            page_columns = [Column.from_field(f) for f in cur._result.fields]
            rows: list[Any] = []
            while chunk := cur.fetchmany(self.settings.fetch_rows):
                rows.extend(chunk)
        self._check("pymysql", [(c.name, str(c.arrow_type)) for c in page_columns])
        assert self.columns is not None
        return arrow_from_rows(rows, self.columns)

    def _check(self, engine: str, signature: list[tuple[str, str]]) -> None:
        """Raise SchemaChanged when a page's columns differ from the read's."""
        assert self.columns is not None
        names = [c.name for c in self.columns]
        first = self._signature.setdefault(engine, signature)
        if [n for n, _ in signature] == names and signature == first:
            return
        before = (
            first if [n for n, _ in first] == names else [(c.name, str(c.arrow_type)) for c in self.columns]
        )
        raise SchemaChanged(
            f"MySQL {'query' if self.query else 'table ' + self.table} changed its columns during the read "
            f"({one_line(schema_diff(before, signature), 200)}): start a new read with "
            "ReadOptions(resume_from=reader.cursor) to read the rest with the new columns",
            before=[n for n, _ in before],
            now=[n for n, _ in signature],
        )

    # -- describing the source -------------------------------------------------------------

    def _describe(self, conn: Any) -> None:
        """Columns, paging key, engine and (for ranged reads) the largest key. Blocking."""
        with conn.cursor() as cur:
            self.conn._execute(cur, f"SELECT * FROM {self.source} LIMIT 0", ())
            columns = [Column.from_field(f) for f in cur._result.fields]
        names = [c.name for c in columns]
        if self.query:
            if self.key not in names:
                raise ConnectorConfigError(
                    f"key {self.key!r} is not a column of the query's result ({', '.join(names)}): "
                    "select it or set another key"
                )
        else:
            self.key = paging_key(self.conn, conn, self.table, self.key, names)
        self.columns = columns
        self.engine = self.conn._choose_engine(self.settings.engine, columns, self.name)
        by_name = {c.name: c for c in columns}
        key = quote_ident(self.key or "")
        ranged = self.settings.partitions > 1 and self.engine == "connectorx" and not self.query
        if ranged and by_name[self.key or ""].is_integer:
            top = _scalar(conn, f"SELECT MAX({key}) FROM {self.source}", ())
            self.max_key = int(top) if top is not None else None


def paging_key(owner: MySQLConnector, conn: Any, table: str, key: str | None, columns: list[str]) -> str:
    """The column to page `table` by: `key`, else the primary key or a single-column unique NOT NULL key."""
    schema, name = split_table(table)
    with conn.cursor() as cur:
        owner._execute(
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


def _scalar(conn: Any, sql: str, params: Sequence[Any]) -> Any:
    with conn.cursor() as cur:
        logger.debug("SQL %s", sql)
        cur.execute(sql, tuple(params))
        row = cur.fetchone()
    return row[0] if row else None


def _ping(conn: Any) -> None:
    _scalar(conn, "SELECT 1", ())
