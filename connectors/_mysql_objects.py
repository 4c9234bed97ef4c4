"""Objects (model files) of the MYSQL connector: rows of the `atom_objects` table, one LONGBLOB per path.

`put` replaces a path's row in one statement (atomic); `stat` reports its size, an MD5 etag
(computed by the server) and its modification time; `list` pages through paths in order by key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from connectors.base import ObjectInfo
from connectors.errors import ConnectorConfigError, RequestRejected, SourceUnavailable, TargetNotFound

if TYPE_CHECKING:
    from connectors.mysql import MySQLConnector

OBJECTS_TABLE = "atom_objects"
LIST_PAGE = 1_000
MAX_PATH = 512


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with `prefix` (wildcards escaped)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class ObjectStore:
    """get/put/stat/list of objects in one database's `atom_objects` table."""

    def __init__(self, conn: MySQLConnector) -> None:
        self.conn = conn

    def uri(self, path: str) -> str:
        c = self.conn
        return f"mysql://{c.host}:{c.port}/{c.database}/{OBJECTS_TABLE}/{path.lstrip('/')}"

    def _missing(self, path: str) -> TargetNotFound:
        return TargetNotFound(
            f"no object {path!r} in {self.conn.where}/{OBJECTS_TABLE}: check the path", path=path
        )

    async def _one(self, sql: str, params: tuple[Any, ...], path: str) -> Any:
        def run(conn: Any) -> Any:
            with conn.cursor() as cur:
                self.conn._execute(cur, sql, params)
                return cur.fetchone()

        try:
            row = await self.conn._call(run, f"reading object {path}", OBJECTS_TABLE, retry_stale=True)
        except TargetNotFound:
            row = None  # no objects table yet
        if row is None:
            raise self._missing(path)
        return row

    async def get(self, path: str) -> bytes:
        """The object's bytes.

        Raises:
            TargetNotFound: no object at `path`.
        """
        row = await self._one(f"SELECT data FROM `{OBJECTS_TABLE}` WHERE path = %s", (path,), path)
        return bytes(row[0])

    async def stat(self, path: str) -> ObjectInfo:
        """Size, MD5 etag and modification time.

        Raises:
            TargetNotFound: no object at `path`.
        """
        row = await self._one(
            f"SELECT LENGTH(data), MD5(data), UNIX_TIMESTAMP(updated_at) FROM `{OBJECTS_TABLE}` "
            "WHERE path = %s",
            (path,),
            path,
        )
        return ObjectInfo(path=path, size=int(row[0]), etag=str(row[1]), modified=float(row[2] or 0.0))

    async def put(self, path: str, data: bytes) -> str:
        """Store `data` under `path` (the table is created on demand); returns the object's URI.

        Raises:
            ConnectorConfigError: the path is longer than 512 characters.
            RequestRejected: the object is larger than the server's max_allowed_packet.
        """
        if len(path) > MAX_PATH:
            raise ConnectorConfigError(
                f"object path is {len(path)} characters; at most {MAX_PATH} fit in MySQL"
            )

        def put(conn: Any) -> None:
            with conn.cursor() as cur:
                self.conn._execute(
                    cur,
                    f"CREATE TABLE IF NOT EXISTS `{OBJECTS_TABLE}` "
                    f"(path VARCHAR({MAX_PATH}) NOT NULL PRIMARY KEY, data LONGBLOB NOT NULL, "
                    "updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB",
                )
                self.conn._execute(
                    cur,
                    f"REPLACE INTO `{OBJECTS_TABLE}` (path, data, updated_at) VALUES (%s, %s, NOW(6))",
                    (path, data),
                )

        try:
            await self.conn._call(put, f"storing object {path} ({len(data)} bytes)", OBJECTS_TABLE)
        except SourceUnavailable as exc:
            if exc.context.get("code") in (1153, 2006, 2013) and len(data) > 1 << 20:
                raise RequestRejected(
                    f"MySQL at {self.conn.where} refused a {len(data)}-byte object: raise the server's "
                    "max_allowed_packet or store models in a FILE/S3 connection",
                    path=path,
                ) from exc
            raise
        return self.uri(path)

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Objects whose path starts with `prefix`, in path order, fetched `LIST_PAGE` at a time."""
        after = ""
        while True:

            def page(conn: Any, after: str = after) -> list[Any]:
                with conn.cursor() as cur:
                    self.conn._execute(
                        cur,
                        "SELECT path, LENGTH(data), MD5(data), UNIX_TIMESTAMP(updated_at) "
                        f"FROM `{OBJECTS_TABLE}` WHERE path LIKE %s AND path > %s "
                        f"ORDER BY path LIMIT {LIST_PAGE}",
                        (like_prefix(prefix), after),
                    )
                    return list(cur.fetchall())

            try:
                rows = await self.conn._call(page, "listing objects", OBJECTS_TABLE, retry_stale=True)
            except TargetNotFound:
                return
            for path, size, etag, modified in rows:
                yield ObjectInfo(
                    path=str(path), size=int(size), etag=str(etag), modified=float(modified or 0.0)
                )
            if len(rows) < LIST_PAGE:
                return
            after = str(rows[-1][0])
