"""Keyless queries of the MYSQL connector: one unbuffered pymysql pass on a connection of its own.

A SELECT without a key column cannot be paged by key, so it runs once and its rows are cut into
pages as they stream in. The cursor is the number of rows handed on; when the connection drops,
`resumable_pages` runs the query again and skips that many rows, which is exact only when the
query orders its rows (ORDER BY): set `ReadOptions.key` for keyset pages instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import pymysql

from connectors._mysql_read import schema_diff
from connectors._mysql_types import Column, arrow_from_rows, to_pandas
from connectors.errors import SchemaChanged

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from connectors._mysql_settings import ReadSettings
    from connectors.mysql import MySQLConnector


class StreamRead:
    """One read of a keyless query; `pages(skip)` is its `open_pages`."""

    def __init__(self, conn: MySQLConnector, query: str, settings: ReadSettings) -> None:
        self.conn = conn
        self.query = query.strip().rstrip(";")
        self.settings = settings
        self.columns: list[Column] | None = None

    async def pages(self, cursor: Any) -> AsyncIterator[Any]:
        """Pages of the query after its first `cursor` rows."""
        skip = int(cursor or 0)
        conn = await asyncio.to_thread(self.conn._open)
        self.conn._streams.add(conn)
        cur = conn.cursor(pymysql.cursors.SSCursor)
        fetch_rows = self.settings.fetch_rows
        page_rows = self.settings.page_rows

        def start() -> None:
            self.conn._execute(cur, self.query, None)
            columns = [Column.from_field(f) for f in cur._result.fields]
            if self.columns is None:
                self.columns = columns
            elif [(c.name, c.arrow_type) for c in columns] != [(c.name, c.arrow_type) for c in self.columns]:
                raise SchemaChanged(
                    "the MySQL query's columns changed between two runs of one read "
                    f"({schema_diff(_sig(self.columns), _sig(columns))}): start a new read",
                )
            left = skip
            while left > 0 and (chunk := cur.fetchmany(min(left, fetch_rows))):
                left -= len(chunk)

        def fetch_page() -> tuple[Any, int]:
            rows: list[Any] = []
            while len(rows) < page_rows and (chunk := cur.fetchmany(min(fetch_rows, page_rows - len(rows)))):
                rows.extend(chunk)
            assert self.columns is not None
            table = arrow_from_rows(rows, self.columns)
            if self.settings.arrow:
                return table, len(rows)
            return to_pandas(table, self.columns, self.settings.decimals), len(rows)

        try:
            await self._step(start, "running the query")
            first = True
            while True:
                page, n = await self._step(fetch_page, "reading the query's rows")
                if n or first:
                    yield page
                first = False
                if n < page_rows:
                    return
        finally:
            self.conn._streams.discard(conn)
            # closing the socket (not the cursor) avoids draining an abandoned result set
            await asyncio.to_thread(quiet_close, conn)

    async def _step(self, fn: Any, doing: str) -> Any:
        try:
            return await asyncio.to_thread(fn)
        except (pymysql.MySQLError, OSError) as exc:
            raise self.conn.errors.from_pymysql(exc, doing, "query") from exc


def _sig(columns: list[Column]) -> list[tuple[str, str]]:
    return [(c.name, str(c.arrow_type)) for c in columns]


def quiet_close(conn: Any) -> None:
    """Close a connection without draining an unread unbuffered result (the server drops it)."""
    result = getattr(conn, "_result", None)
    if result is not None:
        result.unbuffered_active = False  # else its __del__ reads from the closed socket
    with contextlib.suppress(Exception):
        conn.close()
