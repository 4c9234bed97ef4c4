"""REDIS single-key reads: the elements of one list, sorted set, set or stream key, paged by position.

When a read's target names an existing key (no glob characters), that key alone is read:

| type   | rows                               | one round trip                | cursor                  |
|--------|------------------------------------|-------------------------------|-------------------------|
| list   | `_key, index, value`               | `LRANGE pos pos+n-1`          | `{"key", "pos", "rows"}`   |
| zset   | `_key, member, score` (by rank)    | `ZRANGE pos pos+n-1 WITHSCORES` | `{"key", "pos", "rows"}` |
| stream | `_key, id, <fields>`               | `XRANGE (last +  COUNT n`     | `{"key", "after", "rows"}` |
| set    | `_key, member` (sorted by member)  | `SMEMBERS` once               | `{"key", "pos", "rows"}`   |
| hash   | one row: `_key, <fields>`          | `HGETALL`                     | `{"key", "pos", "rows"}`   |
| string | one row: JSON object fields, or `value` | `GET`                    | `{"key", "pos", "rows"}`   |

n is `connect_read_num`. Positions are ranks, so a list or sorted set that changes between pages
shifts under the cursor; streams resume exactly after the last entry id handed on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pyarrow as pa

from connectors._redis_decode import KEY_COLUMN, json_row, table_from_rows
from connectors._redis_read import element_rows
from connectors._redis_types import apply_types

ELEMENT_TYPES = ("list", "zset", "stream", "set", "hash", "string")

Call = Callable[..., Awaitable[Any]]
"""`call(command, *args)`: run one command on the redis-py client, errors already translated."""


def key_advance(kind: str, key: str) -> Callable[[Any, Any], dict[str, Any]]:
    """The cursor function of a single-key read."""

    def advance(frame: Any, cursor: Any) -> dict[str, Any]:
        before = cursor if isinstance(cursor, dict) else {}
        rows = int(before.get("rows", 0)) + len(frame)
        if kind == "stream":
            last = before.get("after")
            if len(frame):
                ids = frame["id"] if not isinstance(frame, pa.Table) else frame.column("id").to_pylist()
                last = list(ids)[-1]
            return {"key": key, "after": last, "rows": rows}
        return {"key": key, "pos": int(before.get("pos", 0)) + len(frame), "rows": rows}

    return advance


async def key_pages(
    call: Call,
    key: str,
    kind: str,
    cursor: Any,
    *,
    count: int,
    page_rows: int,
    arrow: bool,
    where: str,
) -> AsyncIterator[Any]:
    """Pages of one key's elements from `cursor` on."""
    before = cursor if isinstance(cursor, dict) else {}
    raw = key.encode()
    widest: dict[str, str] = {}
    rows: list[dict[str, Any]] = []

    def page(part: list[dict[str, Any]]) -> Any:
        table = apply_types(table_from_rows(part), None, widest, f"{where} key {key}")
        return table if arrow else table.to_pandas()

    async for chunk in _chunks(call, raw, kind, before, count):
        rows += chunk
        while len(rows) >= page_rows:
            yield page(rows[:page_rows])
            rows = rows[page_rows:]
    if rows:
        yield page(rows)


async def _chunks(
    call: Call, key: bytes, kind: str, before: dict[str, Any], count: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Rows of the key, one round trip at a time."""
    pos = int(before.get("pos", 0))
    if kind in ("list", "zset"):
        while True:
            if kind == "list":
                reply = await call("LRANGE", key, pos, pos + count - 1)
                chunk = [{KEY_COLUMN: key, "index": pos + i, "value": v} for i, v in enumerate(reply)]
            else:
                reply = await call("ZRANGE", key, pos, pos + count - 1, "WITHSCORES")
                chunk = element_rows(b"zset", key, _flat(reply))
            yield chunk
            pos += len(chunk)
            if len(chunk) < count:
                return
    elif kind == "stream":
        after = before.get("after")
        while True:
            reply = await call("XRANGE", key, f"({after}" if after else "-", "+", "COUNT", count)
            entries = [(i, v if isinstance(v, list) else _flat(v)) for i, v in reply]
            chunk = element_rows(b"stream", key, entries)
            yield chunk
            if len(chunk) < count:
                return
            last = chunk[-1]["id"]
            after = last.decode() if isinstance(last, bytes) else str(last)
    elif kind == "set":
        members = sorted(await call("SMEMBERS", key))
        yield [{KEY_COLUMN: key, "member": m} for m in members[pos:]]
    elif pos == 0:
        if kind == "hash":
            yield element_rows(b"hash", key, _flat(await call("HGETALL", key)))
        else:
            value = await call("GET", key)
            if value is not None:
                yield [{KEY_COLUMN: key, **(json_row(value) or {"value": value})}]


def _flat(reply: Any) -> list[Any]:
    """redis-py may give pairs as a dict or a list of tuples; element_rows wants them flat."""
    if isinstance(reply, dict):
        return [x for kv in reply.items() for x in kv]
    if reply and isinstance(reply[0], tuple | list):
        return [x for pair in reply for x in pair]
    return list(reply or [])
