"""Data watermarks: a small value per data source that changes whenever the data does.

A cacheable node's cache key covers the watermark of each source it reads, so a run over data that
changed since the cached run never reuses its outputs:

- MYSQL table: row count, the largest key (`sourceConf.key`, else the primary key) and the
  table's `UPDATE_TIME`; a query: its row count and the largest key when `sourceConf.key` is set.
- FILE: size and modification time (ns) of the file, of every file under a directory, or of every
  file a glob matches.
- S3 / ALIYUNOSS: ETag, size and last-modified of the object, or of every object under a prefix
  (or matching a glob), through the connector's object listing.

Other stores (REDIS, HTTP files) have no watermark: their nodes are not served from cache.
Every read goes through `connectors` with the connection's decrypted password, outside any
database transaction, bounded by `settings.cache_watermark_timeout_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from connectors.base import Connector
from connectors.errors import AtomError
from control import schemas as s

GLOB_CHARS = "*?["


class NoWatermark(Exception):
    """The source's watermark cannot be read; the message says why (one line)."""


def digest(items: Any) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


async def read_all(sources: list[s.SourceSpec], *, limit_s: float) -> dict[str, dict[str, Any]]:
    """sourceName -> watermark of every source, read concurrently.

    Raises:
        NoWatermark: one source's watermark could not be read (the first such, named).
    """

    async def one(source: s.SourceSpec) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(watermark(source), limit_s)
        except TimeoutError:
            raise NoWatermark(
                f"source {source.source_name!r}: its data watermark was not read within {limit_s:g} s"
            ) from None
        except NoWatermark as exc:
            raise NoWatermark(f"source {source.source_name!r}: {exc}") from None
        except (AtomError, OSError, ValueError) as exc:
            raise NoWatermark(f"source {source.source_name!r}: {str(exc).splitlines()[0]}") from None

    marks = await asyncio.gather(*(one(src) for src in sources))
    return {src.source_name: mark for src, mark in zip(sources, marks, strict=True)}


async def watermark(source: s.SourceSpec) -> dict[str, Any]:
    """The watermark of one data source."""
    from connectors.registry import open_connector  # deferred: the registry imports every connector

    kind = str(source.connection.connect_type)
    target = source.operate_execute
    if kind not in ("FILE", "MYSQL", "S3", "ALIYUNOSS"):
        raise NoWatermark(f"{kind} sources have no data watermark")
    if kind == "FILE" and not source.connection.connect_addr and "://" not in target:
        raise NoWatermark(
            "a FILE connection without connectAddr is read from each run's own folder: give it an address"
        )
    async with open_connector(source.connection.connector_config()) as conn:
        if kind == "FILE":
            return await file_watermark(conn, target)
        if kind == "MYSQL":
            return await mysql_watermark(conn, target, source.source_conf)
        return await object_watermark(conn, target)


# -- FILE ----------------------------------------------------------------------------------------


async def file_watermark(conn: Connector, target: str) -> dict[str, Any]:
    location = conn.locate(target)  # type: ignore[attr-defined]
    if isinstance(location, str):
        raise NoWatermark(f"{location} is an HTTP file: it has no watermark")
    return await asyncio.to_thread(_stat_files, Path(location), target)


def _stat_files(path: Path, shown: str) -> dict[str, Any]:
    if any(c in path.name for c in GLOB_CHARS):
        files = sorted(p for p in path.parent.glob(path.name) if p.is_file())
        base = path.parent
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        base = path
    elif path.is_file():
        files, base = [path], path.parent
    else:
        raise NoWatermark(f"{shown} does not exist")
    listing: list[tuple[str, int, int]] = []
    for file in files:
        st = os.stat(file)
        listing.append((str(file.relative_to(base)), st.st_size, st.st_mtime_ns))
    newest = max((entry[2] for entry in listing), default=0)
    return {
        "files": len(listing),
        "bytes": sum(e[1] for e in listing),
        "newestNs": newest,
        "digest": digest(listing),
    }


# -- MYSQL ---------------------------------------------------------------------------------------


def quote(name: str) -> str:
    """`db.t` -> `` `db`.`t` `` (backticks doubled)."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))


async def mysql_watermark(conn: Connector, target: str, source_conf: dict[str, Any]) -> dict[str, Any]:
    from connectors._mysql_sql import is_query

    key = str(source_conf.get("key") or "")
    query = is_query(target)

    def read(db: Any) -> dict[str, Any]:
        with db.cursor() as cur:
            if query:
                inner = target.strip().rstrip(";")
                column = f", MAX({quote(key)})" if key else ""
                cur.execute(f"SELECT COUNT(*){column} FROM ({inner}) AS atom_watermark")
                row = cur.fetchone()
                return {"rows": int(row[0]), "maxKey": str(row[1]) if key else None}
            schema, _, table = target.rpartition(".")
            column = key
            if not column:
                cur.execute(
                    "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE "
                    "TABLE_SCHEMA = COALESCE(NULLIF(%s, ''), DATABASE()) AND TABLE_NAME = %s "
                    "AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                    (schema, table),
                )
                keys = [r[0] for r in cur.fetchall()]
                column = keys[0] if len(keys) == 1 else ""
            cur.execute(
                "SELECT UPDATE_TIME FROM information_schema.TABLES WHERE "
                "TABLE_SCHEMA = COALESCE(NULLIF(%s, ''), DATABASE()) AND TABLE_NAME = %s",
                (schema, table),
            )
            found = cur.fetchone()
            if found is None:
                raise NoWatermark(f"table {target} does not exist")
            max_key = f", MAX({quote(column)})" if column else ""
            cur.execute(f"SELECT COUNT(*){max_key} FROM {quote(target)}")
            row = cur.fetchone()
            return {
                "rows": int(row[0]),
                "maxKey": str(row[1]) if column else None,
                "updateTime": str(found[0]) if found[0] is not None else None,
            }

    return await conn._call(read, "reading the data watermark", target, retry_stale=True)  # type: ignore[attr-defined]


# -- S3 / ALIYUNOSS ------------------------------------------------------------------------------


async def object_watermark(conn: Connector, target: str) -> dict[str, Any]:
    from connectors._objects import is_prefix_target

    if is_prefix_target(target):
        infos = await conn.matching(target)  # type: ignore[attr-defined]
    else:
        infos = [await conn.stat_object(target)]
    listing = [[info.path, info.etag, info.size, info.modified] for info in infos]
    return {"objects": len(listing), "digest": digest(listing)}
