"""Bulk read engine of the MYSQL connector: connectorx (Rust, binary protocol) fetching Arrow tables.

connectorx opens its own connections from a connection string that carries the password. The
string lives only inside `BulkEngine` (never in its repr), credentials are URL-encoded, and every
connectorx error is scrubbed and re-raised as a `ConnectorError` `from None`, so neither the
message nor the chained traceback can show the password. `prefer_socket=false` stops the driver
from silently switching a 127.0.0.1 connection to whatever unix socket the server names (wrong
behind a tunnel or proxy); a configured `unix_socket` is used explicitly instead.
"""

from __future__ import annotations

import importlib.util
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    import pyarrow as pa

    from connectors._mysql_errors import ErrorContext

logger = logging.getLogger("connectors.mysql")


def available() -> bool:
    """Whether connectorx can be imported (without importing it)."""
    return importlib.util.find_spec("connectorx") is not None


def connection_string(
    *, user: str, password: str, host: str, port: int, database: str, unix_socket: str | None
) -> str:
    """A connectorx MySQL URL with percent-encoded credentials and explicit socket handling."""
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    params = "prefer_socket=false"
    if unix_socket:
        params += "&socket=" + quote(unix_socket, safe="")
        netloc = "localhost"
    else:
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"mysql://{auth}@{netloc}/{quote(database, safe='')}?{params}"


class BulkEngine:
    """Runs SELECTs through connectorx and returns Arrow tables; methods block (call from threads)."""

    name = "connectorx"

    def __init__(
        self,
        *,
        user: str,
        password: str,
        host: str,
        port: int,
        database: str,
        unix_socket: str | None,
        init_command: str | None,
        errors: ErrorContext,
        partitions: int,
    ) -> None:
        """Keep what connectorx needs; nothing connects yet.

        Args:
            user, password, host, port, database, unix_socket: where to connect.
            init_command: SQL run on each new connection (connectorx `pre_execution_query`).
            errors: how failures are described (secret-free).
            partitions: how many queries may run at once (`submit`).
        """
        self._url = connection_string(
            user=user, password=password, host=host, port=port, database=database, unix_socket=unix_socket
        )
        self._secrets = (password,) if password else ()
        self._init = [init_command] if init_command else None
        self._errors = errors
        self.partitions = max(1, partitions)
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"BulkEngine({self._errors.user}@{self._errors.where}, partitions={self.partitions})"

    def fetch(self, sql: str, target: str | None = None) -> pa.Table:
        """Run one SELECT; returns its rows as connectorx's Arrow table.

        Raises:
            SourceUnavailable: the connection failed or dropped (retry).
            TargetNotFound, PermissionDenied, RequestRejected: what the server said.
            BatchDecodeError: connectorx could not decode the result (use pymysql instead).
        """
        import connectorx as cx  # deferred: the Rust extension loads only for bulk reads

        logger.debug("SQL %s", sql)
        try:
            return cx.read_sql(self._url, sql, return_type="arrow", pre_execution_query=self._init)
        except BaseException as exc:  # connectorx panics raise pyo3's PanicException (a BaseException)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            error = self._errors.from_connectorx(exc, "reading", target, self._secrets)
        raise error from None  # the original text may hold the connection string

    def submit(self, sql: str, target: str | None = None) -> Future[pa.Table]:
        """Start `fetch(sql)` on one of the `partitions` threads; the future holds its table."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.partitions, thread_name_prefix="atom-mysql-bulk")
        return self._pool.submit(self.fetch, sql, target)

    def close(self) -> None:
        """Stop the partition threads (queries in flight finish first)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
