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
- Pages may be pandas DataFrames or, with `ReadOptions(arrow=True)`, `pyarrow.Table`s; the
  batch stage treats both alike.

`resumable_pages` wraps a producer so that a dropped connection (a `Transient` error) is retried
with backoff and the read resumes right after the last page it yielded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import pandas as pd

from connectors.errors import SourceUnavailable, Transient

if TYPE_CHECKING:
    import pyarrow as pa

    from connectors.base import ReadOptions

Frame: TypeAlias = "pd.DataFrame | pa.Table"
"""A page or batch: a DataFrame, or an Arrow table when the read asked for Arrow."""

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

    def advance(batch: Any, cursor: Any) -> Any:
        if not len(batch):
            return cursor
        if isinstance(batch, pd.DataFrame):
            value = batch[key].iloc[-1]
            return value.item() if hasattr(value, "item") else value
        return batch.column(key)[-1].as_py()

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


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it to end; a cancellation of the caller itself still propagates.

    `contextlib.suppress(CancelledError)` around `await task` would also swallow the cancellation
    of the task doing the waiting (a timeout around a close, a shutdown).
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


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
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # the reader is closing and nobody reads the queue (it may be full): an error raised
            # while the pages were being torn down goes to the log, the cancellation stands
            logger.debug("read closed while its pages failed: %s", exc)
            raise asyncio.CancelledError from exc
        await queue.put(_Failed(exc))
    finally:
        await _aclose(pages)


class PagedReader:
    """An async iterator of DataFrames over a connector's pages, shaped by the read knobs.

    Use it with `async for`, ideally inside `async with` (or call `aclose()`) so that a consumer
    that stops early cancels the prefetch task and releases the store's cursor at once.

    Attributes:
        cursor: resume point after the last batch handed on (None before the first batch when
            the read did not resume): MYSQL tables the last key value, REDIS the SCAN position,
            csv/jsonl files a byte offset, other files and keyless queries the row offset.
            Pass it as `ReadOptions(resume_from=reader.cursor)`.
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
            await cancel_and_wait(task)
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
                        yield _reset(page)
        finally:
            await _aclose(pages)


def concat_frames(frames: list[Any]) -> Any:
    """Concatenate DataFrames (index reset) or Arrow tables, whichever the list holds."""
    if len(frames) == 1:
        return _reset(frames[0])
    if isinstance(frames[0], pd.DataFrame):
        merged = pd.concat(frames, ignore_index=True)
        merged.attrs = dict(frames[-1].attrs)  # byte-offset cursor marks ride on the last page
        return merged
    import pyarrow as pa  # deferred: only Arrow reads need it

    return pa.concat_tables(frames, promote_options="default")


def slice_frame(frame: Any, start: int, stop: int | None = None) -> Any:
    """Rows [start, stop) of a DataFrame (index reset) or an Arrow table."""
    if isinstance(frame, pd.DataFrame):
        return frame.iloc[start:stop].reset_index(drop=True)
    length = (stop if stop is not None else len(frame)) - start
    return frame.slice(start, max(0, length))


def _reset(frame: Any) -> Any:
    return frame.reset_index(drop=True) if isinstance(frame, pd.DataFrame) else frame


async def _gather_all(pages: AsyncIterator[Any]) -> Any:
    frames = [page async for page in pages]
    non_empty = [f for f in frames if len(f)]
    if not non_empty:
        return slice_frame(frames[0], 0, 0) if frames else pd.DataFrame()
    return concat_frames(non_empty)


async def _rechunk(pages: AsyncIterator[Any], rows: int) -> AsyncIterator[Any]:
    """Yield batches of exactly `rows` rows (the last may be shorter) from pages of any size."""
    buffer: list[Any] = []
    have = 0
    async for page in pages:
        if not len(page):
            continue
        buffer.append(page)
        have += len(page)
        while have >= rows:
            merged = concat_frames(buffer)
            yield slice_frame(merged, 0, rows)
            rest = slice_frame(merged, rows)
            buffer = [rest] if len(rest) else []
            have = len(rest)
    if have:
        yield concat_frames(buffer)


async def resumable_pages(
    open_pages: Callable[[Any], AsyncIterator[Any]],
    *,
    cursor: Any,
    advance: Advance,
    options: ReadOptions,
    name: str,
) -> AsyncIterator[Any]:
    """Pages from `open_pages(cursor)`, reopened after the last yielded page when the store drops.

    A `Transient` error (connection lost, server restarting) is retried `options.retries` times
    with exponential backoff starting at `options.retry_backoff_s` (or the error's
    `retry_after`); each retry calls `open_pages` with the cursor just past the last page this
    generator yielded, so the consumer sees every row exactly once. Other errors pass through.

    Args:
        open_pages: starts a page producer at a cursor (None: from the beginning).
        cursor: where to start (the read's `resume_from`).
        advance: how the cursor moves past one page.
        options: the read knobs (`retries`, `retry_backoff_s`).
        name: what is read, for messages.

    Raises:
        SourceUnavailable: the store stayed away through every retry (the message says how many).
    """
    failures = 0
    while True:
        pages = open_pages(cursor)
        try:
            async for page in pages:
                yield page
                cursor = advance(page, cursor)
                failures = 0
            return
        except Transient as exc:
            failures += 1
            if failures > options.retries:
                raise SourceUnavailable(
                    f"{name}: gave up after {options.retries} retries ({exc}); "
                    f"resume later with resume_from={cursor!r}",
                    cursor=cursor,
                ) from exc
            delay = exc.retry_after or options.retry_backoff_s * 2 ** (failures - 1)
            logger.warning(
                "%s: %s; retry %d/%d in %.2fs from cursor %r",
                name,
                exc,
                failures,
                options.retries,
                delay,
                cursor,
            )
            await asyncio.sleep(delay)
        finally:
            await _aclose(pages)
