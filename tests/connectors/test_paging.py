"""PagedReader on a synthetic page producer: re-chunking, prefetch bounds, errors, early stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pandas as pd
import pytest

from connectors import PagedReader, ReadOptions
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
