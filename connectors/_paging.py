"""Shared read machinery: turns a connector's page producer into the batches the read knobs ask for.

Every connector implements only "give me the next page" as an async iterator of DataFrames
(`paginate_read_num` rows each, the last one shorter). `PagedReader` does the rest, the same way
for every store:

- `operator_read_num` > 0 re-chunks pages into batches of exactly that many rows (big pages are
  split, small ones concatenated; the last batch may be shorter); 0 hands on one batch per page.
- `disposable` concatenates everything into one DataFrame.
- `async_load` runs the producer as a task that fills a bounded `asyncio.Queue(prefetch_pages)`,
  so the next pages are fetched while the consumer works, and memory stays flat however large the
  source: at most `prefetch_pages + 1` pages wait beside the one being consumed.
- `cursor` is the resume point after the last batch handed on; pass it back as
  `ReadOptions(resume_from=...)` to carry on where a reader stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from connectors.base import ReadOptions

logger = logging.getLogger(__name__)

DEFAULT_PAGE_ROWS = 50_000
"""Rows per page when a data source leaves `paginate_read_num` at 0."""

Advance = Callable[[pd.DataFrame, Any], Any]
"""`advance(batch, cursor) -> cursor`: the resume point after `batch`, given the one before it."""


def rows_advance(batch: pd.DataFrame, cursor: Any) -> int:
    """Cursor strategy for row-offset sources: the cursor counts the rows handed on."""
    return int(cursor or 0) + len(batch)


def key_advance(key: str) -> Advance:
    """Cursor strategy for keyset sources: the cursor is the last row's `key` value."""

    def advance(batch: pd.DataFrame, cursor: Any) -> Any:
        if batch.empty:
            return cursor
        value = batch[key].iloc[-1]
        return value.item() if hasattr(value, "item") else value

    return advance


@dataclass
class ReadStats:
    """Counters a reader keeps; tests and progress reports read them.

    Attributes:
        pages_fetched: pages the producer has fetched from the store so far.
        pages_taken: pages the batch stage has taken from the producer.
        max_ahead: most pages ever fetched but not yet taken (bounded by `prefetch_pages + 1`).
        batches: batches handed to the consumer.
        rows: rows handed to the consumer.
    """

    pages_fetched: int = 0
    pages_taken: int = 0
    max_ahead: int = 0
    batches: int = 0
    rows: int = 0

    def fetched(self) -> None:
        self.pages_fetched += 1
        self.max_ahead = max(self.max_ahead, self.pages_fetched - self.pages_taken)


class _End:
    """Queue sentinel: the producer finished."""


@dataclass
class _Failed:
    """Queue item: the producer raised; the consumer re-raises it in order."""

    error: BaseException


async def _aclose(it: AsyncIterator[Any]) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()


async def _produce(pages: AsyncIterator[pd.DataFrame], queue: asyncio.Queue[Any], stats: ReadStats) -> None:
    """Producer task body; holds no reference to the reader so a dropped reader can be collected."""
    try:
        async for page in pages:
            stats.fetched()
            await queue.put(page)
        await queue.put(_End())
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        await queue.put(_Failed(exc))
    finally:
        await _aclose(pages)


class PagedReader:
    """An async iterator of DataFrames over a connector's pages, shaped by the read knobs.

    Use it with `async for`, ideally inside `async with` (or call `aclose()`) so that a consumer
    that stops early cancels the prefetch task and releases the store's cursor at once.

    Attributes:
        cursor: resume point after the last batch handed on (None before the first batch when
            the read did not resume): MYSQL tables the last key value, FILE and keyless queries
            the row offset. Pass it as `ReadOptions(resume_from=reader.cursor)`.
        stats: counters of pages fetched and batches handed on (`ReadStats`).
    """

    def __init__(
        self,
        pages: AsyncIterator[pd.DataFrame],
        options: ReadOptions,
        *,
        advance: Advance = rows_advance,
        name: str = "",
    ) -> None:
        """Wrap a page producer.

        Args:
            pages: the connector's page producer (usually an async generator); started lazily on
                the first `__anext__`, so building a reader does no I/O.
            options: the read knobs.
            advance: how the cursor moves past a batch (`rows_advance` or `key_advance(key)`).
            name: what is read, for log lines.
        """
        self.options = options
        self.name = name
        self.cursor: Any = options.resume_from
        self.stats = ReadStats()
        self._pages = pages
        self._advance = advance
        self._batches: AsyncIterator[pd.DataFrame] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def __aiter__(self) -> PagedReader:
        return self

    async def __anext__(self) -> pd.DataFrame:
        if self._closed:
            raise StopAsyncIteration
        if self._batches is None:
            self._batches = self._batch_stream()
        try:
            batch = await self._batches.__anext__()
        except StopAsyncIteration:
            await self.aclose()
            raise
        except BaseException:
            await self.aclose()
            raise
        self.cursor = self._advance(batch, self.cursor)
        self.stats.batches += 1
        self.stats.rows += len(batch)
        return batch

    async def aclose(self) -> None:
        """Stop reading: cancel the prefetch task and close the store-side cursor."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._batches is not None:
            await _aclose(self._batches)
        await _aclose(self._pages)
        logger.debug("read of %s closed: %s", self.name, self.stats)

    async def __aenter__(self) -> PagedReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        task = getattr(self, "_task", None)
        if task is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # loop already closed
                task.get_loop().call_soon_threadsafe(task.cancel)

    async def _page_stream(self) -> AsyncIterator[pd.DataFrame]:
        stats = self.stats
        if not self.options.async_load:
            async for page in self._pages:
                stats.fetched()
                stats.pages_taken += 1
                yield page
            return
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(1, self.options.prefetch_pages))
        self._task = asyncio.create_task(_produce(self._pages, queue, stats), name=f"atom-read {self.name}")
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.error
            stats.pages_taken += 1
            yield item

    async def _batch_stream(self) -> AsyncIterator[pd.DataFrame]:
        pages = self._page_stream()
        try:
            if self.options.disposable:
                yield await _gather_all(pages)
            elif self.options.operator_read_num > 0:
                async for batch in _rechunk(pages, self.options.operator_read_num):
                    yield batch
            else:
                async for page in pages:
                    if len(page):
                        yield page.reset_index(drop=True)
        finally:
            await _aclose(pages)


async def _gather_all(pages: AsyncIterator[pd.DataFrame]) -> pd.DataFrame:
    frames = [page async for page in pages]
    non_empty = [f for f in frames if len(f)]
    if not non_empty:
        return frames[0].iloc[0:0] if frames else pd.DataFrame()
    if len(non_empty) == 1:
        return non_empty[0].reset_index(drop=True)
    return pd.concat(non_empty, ignore_index=True)


async def _rechunk(pages: AsyncIterator[pd.DataFrame], rows: int) -> AsyncIterator[pd.DataFrame]:
    """Yield batches of exactly `rows` rows (the last may be shorter) from pages of any size."""
    buffer: list[pd.DataFrame] = []
    have = 0
    async for page in pages:
        if not len(page):
            continue
        buffer.append(page)
        have += len(page)
        while have >= rows:
            merged = buffer[0] if len(buffer) == 1 else pd.concat(buffer, ignore_index=True)
            yield merged.iloc[:rows].reset_index(drop=True)
            rest = merged.iloc[rows:]
            buffer = [rest] if len(rest) else []
            have = len(rest)
    if have:
        merged = buffer[0] if len(buffer) == 1 else pd.concat(buffer, ignore_index=True)
        yield merged.reset_index(drop=True)
