"""Object-store reads: one object, or every object under a prefix, as resumable pages.

Each object is copied to a local file first (one GET for small objects, the shared file cache's
parallel ranges for large ones) and paged with `connectors._formats.file_pages`, so every
store parses csv, parquet, pickle, json and JSON lines the same way. Both readers are built on
`connectors._paging.resumable_pages`: a connection dropped while an object is fetched is retried
with backoff and the read resumes from its cursor.

Cursors:
- one object: the format's own cursor (`connectors._formats`: a row count, or for csv/jsonl a
  byte position);
- a prefix: `{"key": K, "rows": R}`: R rows of object K were handed on; objects before K (in key
  order) are done. Pages never span two objects; the batch stage may join them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pandas as pd

from connectors._formats import detect_format, file_pages, format_advance
from connectors._object_io import fetch_local
from connectors._paging import DEFAULT_PAGE_ROWS, PagedReader, resumable_pages
from connectors.errors import ConnectorConfigError, SchemaChanged, TargetNotFound

if TYPE_CHECKING:
    from connectors._objects import ObjectStoreConnector
    from connectors.base import ReadOptions


def single_reader(conn: ObjectStoreConnector, key: str, options: ReadOptions) -> PagedReader:
    """A reader of one object; its cursor is the format's cursor within that object."""
    fmt = detect_format(key, options.data_format)
    page_rows = options.paginate_read_num or DEFAULT_PAGE_ROWS
    name = conn.uri(key)

    async def open_pages(cursor: Any) -> AsyncIterator[Any]:
        async with fetch_local(conn, key) as path:
            async for page in file_pages(
                path, fmt, page_rows=page_rows, cursor=cursor, arrow=options.arrow, name=name
            ):
                yield page

    advance = format_advance(fmt)
    pages = resumable_pages(
        open_pages, cursor=options.resume_from, advance=advance, options=options, name=name
    )
    return PagedReader(pages, options, advance=advance, name=name)


def _schema(page: Any) -> list[tuple[str, str]]:
    if isinstance(page, pd.DataFrame):
        return [(str(c), t.kind) for c, t in page.dtypes.items()]
    return [(f.name, str(f.type)) for f in page.schema]


def _compatible(a: list[tuple[str, str]], b: list[tuple[str, str]], typed: bool) -> bool:
    if [n for n, _ in a] != [n for n, _ in b]:
        return False
    if not typed:
        return True
    numeric = set("iuf")  # ints and floats mix (a column with a gap reads as float)
    return all(x == y or (x in numeric and y in numeric) for (_, x), (_, y) in zip(a, b, strict=True))


class _PrefixState:
    """What one prefix read knows about where each object's rows start (shared by its reopenings).

    `starts[key] = (g, r)`: row r of object `key` is the g-th row after the read's origin (its
    `resume_from`). The producer records an object before it yields any of its rows, so every
    cursor the consumer holds maps to a known position.
    """

    def __init__(self, origin: Any) -> None:
        self.origin = origin
        self.starts: dict[str, tuple[int, int]] = {}
        self.order: list[str] = []
        self.reference: tuple[str, list[tuple[str, str]], bool] | None = None

    def position(self, cursor: Any) -> int:
        if cursor is None or cursor == self.origin:
            return 0
        start, base = self.starts[cursor["key"]]
        return start + int(cursor["rows"]) - base

    def cursor_at(self, position: int) -> dict[str, Any]:
        for key in reversed(self.order):
            start, base = self.starts[key]
            if start <= position:
                return {"key": key, "rows": base + position - start}
        return self.origin

    def advance(self, batch: Any, cursor: Any) -> Any:
        if not len(batch):
            return cursor
        return self.cursor_at(self.position(cursor) + len(batch))

    def record(self, key: str, position: int, rows: int) -> None:
        if key not in self.starts:
            self.starts[key] = (position, rows)
            self.order.append(key)


def prefix_reader(conn: ObjectStoreConnector, target: str, options: ReadOptions) -> PagedReader:
    """A reader of every object a prefix or glob names, in key order."""
    page_rows = options.paginate_read_num or DEFAULT_PAGE_ROWS
    name = conn.uri(target)
    origin = options.resume_from
    if origin is not None and not (isinstance(origin, dict) and "key" in origin and "rows" in origin):
        raise ConnectorConfigError(
            f"{name}: resume_from {origin!r} is not a prefix-read cursor: pass the reader's cursor "
            "({'key': ..., 'rows': ...})"
        )
    state = _PrefixState(origin)

    async def open_pages(cursor: Any) -> AsyncIterator[Any]:
        objects = await conn.matching(target)
        if not objects:
            raise TargetNotFound(
                f"no objects match {conn.where(target)}: check the prefix and the bucket", key=target
            )
        position = state.position(cursor)
        for info in objects:
            skip = 0
            if cursor is not None:
                if info.path < cursor["key"]:
                    continue
                if info.path == cursor["key"]:
                    skip = int(cursor["rows"])
            state.record(info.path, position, skip)
            fmt = detect_format(info.path, options.data_format)
            uri = conn.uri(info.path)
            first = True
            async with fetch_local(conn, info.path, size=info.size) as path:
                pages = file_pages(path, fmt, page_rows=page_rows, cursor=skip, arrow=options.arrow, name=uri)
                async for page in pages:
                    if first:
                        _check_schema(state, info.path, page, name)
                        first = False
                    position += len(page)
                    yield page

    pages = resumable_pages(open_pages, cursor=origin, advance=state.advance, options=options, name=name)
    return PagedReader(pages, options, advance=state.advance, name=name)


def _check_schema(state: _PrefixState, key: str, page: Any, name: str) -> None:
    """Refuse an object whose columns differ from the first object's (empty objects: names only)."""
    schema, typed = _schema(page), bool(len(page))
    ref = state.reference
    if ref is None or (not ref[2] and typed):
        if ref is not None and not _compatible(ref[1], schema, False):
            _refuse(name, ref, key, schema)
        state.reference = (key, schema, typed)
        return
    if not _compatible(ref[1], schema, typed and ref[2]):
        _refuse(name, ref, key, schema)


def _refuse(
    name: str, ref: tuple[str, list[tuple[str, str]], bool], key: str, schema: list[tuple[str, str]]
) -> None:
    raise SchemaChanged(
        f"{name}: columns changed between objects: {ref[0]} has {_show(ref[1])}, {key} has {_show(schema)}; "
        "give every object the same columns or read them separately",
        key=key,
    )


def _show(schema: list[tuple[str, str]]) -> str:
    return "[" + ", ".join(f"{n}:{t}" for n, t in schema) + "]"
