"""PagedReader on a synthetic page producer: re-chunking, prefetch bounds, errors, early stop, close races."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from connectors import PagedReader, ReadOptions, open_connector
from connectors._blocking_pages import END, BlockingPages
from connectors._paging import key_advance
from tests.connectors.conformance import collect, joined, wait_until


@dataclass
class Pages:
    """A page producer that records what happened to it."""

    sizes: list[int]
    fail_after: int | None = None
    produced: list[int] = field(default_factory=list)
    closed: bool = False
    gate: asyncio.Event | None = None

    async def __call__(self) -> AsyncIterator[pd.DataFrame]:
        start = 0
        try:
            for i, size in enumerate(self.sizes):
                if self.fail_after is not None and i == self.fail_after:
                    raise ValueError("store broke mid-read")
                if self.gate is not None:
                    await self.gate.wait()
                await asyncio.sleep(0)
                self.produced.append(i)
                yield pd.DataFrame({"id": range(start, start + size)})
                start += size
        finally:
            self.closed = True


def reader(pages: Pages, **knobs: object) -> PagedReader:
    return PagedReader(pages(), ReadOptions(**knobs), name="synthetic")  # type: ignore[arg-type]


@pytest.mark.parametrize("async_load", [True, False])
@pytest.mark.parametrize(
    ("sizes", "n", "expected"),
    [
        ([10, 10, 10], 4, [4, 4, 4, 4, 4, 4, 4, 2]),
        ([3, 1, 0, 7, 2], 5, [5, 5, 3]),
        ([25], 10, [10, 10, 5]),
        ([0, 0], 10, []),
    ],
)
async def test_operator_read_num_rechunks(
    sizes: list[int], n: int, expected: list[int], async_load: bool
) -> None:
    batches = await collect(reader(Pages(sizes), operator_read_num=n, async_load=async_load))
    assert [len(b) for b in batches] == expected
    if expected:
        assert list(joined(batches)["id"]) == list(range(sum(sizes)))


async def test_zero_operator_read_num_is_one_batch_per_nonempty_page() -> None:
    batches = await collect(reader(Pages([3, 0, 5])))
    assert [len(b) for b in batches] == [3, 5]
    assert list(batches[1].index) == list(range(5))


async def test_disposable_is_one_frame_and_empty_keeps_columns() -> None:
    [whole] = await collect(reader(Pages([3, 4]), disposable=True))
    assert list(whole["id"]) == list(range(7))
    [empty] = await collect(reader(Pages([0]), disposable=True))
    assert list(empty.columns) == ["id"] and empty.empty


@pytest.mark.parametrize("async_load", [True, False])
async def test_producer_error_reaches_the_consumer_after_earlier_pages(async_load: bool) -> None:
    pages = Pages([2, 2, 2, 2], fail_after=2)
    got = []
    r = reader(pages, async_load=async_load)
    with pytest.raises(ValueError, match="mid-read"):
        async for batch in r:
            got.append(batch)
    assert [len(b) for b in got] == [2, 2]
    assert pages.closed


async def test_prefetch_is_bounded_by_the_queue() -> None:
    pages = Pages([1] * 50)
    r = reader(pages, prefetch_pages=3)
    async with r:
        await r.__anext__()
        assert await wait_until(lambda: r.stats.pages_fetched == 5)  # 1 taken + 3 queued + 1 waiting
        for _ in range(50):
            await asyncio.sleep(0)
        assert r.stats.pages_fetched == 5
        rest = [b async for b in r]
    assert len(rest) == 49 and r.stats.max_ahead <= 4


async def test_early_close_cancels_the_producer_and_closes_the_source() -> None:
    pages = Pages([1] * 100)
    r = reader(pages, prefetch_pages=2)
    await r.__anext__()
    assert await wait_until(lambda: len(pages.produced) >= 3)
    await r.aclose()
    assert pages.closed
    produced = len(pages.produced)
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(pages.produced) == produced < 100
    assert [b async for b in r] == []


async def test_close_while_producer_waits_on_the_store() -> None:
    pages = Pages([1, 1, 1], gate=asyncio.Event())
    r = reader(pages)
    task = asyncio.create_task(r.__anext__())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await r.aclose()
    assert pages.closed and pages.produced == []


async def test_key_cursor_tracks_the_last_key_handed_on() -> None:
    r = PagedReader(Pages([4, 4])(), ReadOptions(operator_read_num=3), advance=key_advance("id"))
    cursors = []
    async for _ in r:
        cursors.append(r.cursor)
    assert cursors == [2, 5, 7]
    assert isinstance(r.cursor, int)


async def test_close_while_the_queue_is_full_and_teardown_fails() -> None:
    """The producer's source fails while being torn down, with nobody left to read the full queue."""
    stepping = asyncio.Event()
    torn_down: list[bool] = []

    async def pages() -> AsyncIterator[pd.DataFrame]:
        try:
            yield pd.DataFrame({"id": [0]})
            yield pd.DataFrame({"id": [1]})
            stepping.set()
            await asyncio.Event().wait()  # a fetch under way when the reader closes
            yield pd.DataFrame({"id": [2]})
        finally:
            torn_down.append(True)
            raise ValueError("the store's cursor broke while being closed")

    r = PagedReader(pages(), ReadOptions(prefetch_pages=1), name="synthetic")
    assert len(await r.__anext__()) == 1
    await asyncio.wait_for(stepping.wait(), 10)  # page 2 fills the queue, the producer fetches page 3
    producer = r._task
    closing = asyncio.create_task(r.aclose())
    done, _ = await asyncio.wait({closing}, timeout=30)  # asyncio.wait cancels nothing: a hang shows
    assert closing in done, "aclose hung on the producer's full queue"
    await closing
    assert torn_down == [True] and producer is not None and producer.done()
    assert [b async for b in r] == []


async def test_aclose_under_a_timeout_still_times_out() -> None:
    """Closing cancels the producer; a cancellation of the closing task itself is not swallowed."""

    release = asyncio.Event()

    async def pages() -> AsyncIterator[pd.DataFrame]:
        try:
            yield pd.DataFrame({"id": [0]})
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(release.wait())  # a teardown that outlasts the caller's patience

    r = PagedReader(pages(), ReadOptions(prefetch_pages=1), name="synthetic")
    await r.__anext__()
    assert await wait_until(lambda: r.stats.pages_fetched == 1 and r._task is not None)
    producer = r._task
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(r.aclose(), 0.2)
    release.set()
    assert producer is not None
    with pytest.raises(asyncio.CancelledError):
        await producer


async def test_blocking_pages_close_waits_for_the_step_under_way() -> None:
    entered, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def gen() -> Generator[int, None, None]:
        try:
            yield 1
            entered.set()
            release.wait(10)
            yield 2
        finally:
            finished.append("closed")

    pages = BlockingPages(gen())
    assert await pages.next() == 1
    step = asyncio.create_task(pages.next())
    assert await asyncio.to_thread(entered.wait, 10)
    step.cancel()  # the worker thread goes on with its step
    with pytest.raises(asyncio.CancelledError):
        await step
    closing = asyncio.create_task(pages.close())
    release.set()
    await asyncio.wait_for(closing, 10)  # no "generator already executing"
    assert finished == ["closed"]
    assert await pages.next() is END


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_file_reads_closed_after_two_pages_always_end(tmp_path: Path, fmt: str) -> None:
    conn = open_connector(f"file://{tmp_path}")
    try:
        await conn.write(pd.DataFrame({"id": range(200)}), f"r.{fmt}")
        for _ in range(40):
            r = conn.read(f"r.{fmt}", ReadOptions(paginate_read_num=10))
            assert isinstance(r, PagedReader)
            first, second = await r.__anext__(), await r.__anext__()
            await asyncio.wait_for(r.aclose(), 10)
            assert list(first["id"]) + list(second["id"]) == list(range(20))
            again = ReadOptions(paginate_read_num=10, resume_from=r.cursor)
            rest = await collect(conn.read(f"r.{fmt}", again))
            assert len(joined(rest)) == 180
    finally:
        await conn.aclose()
