"""The blocking facade: the same connector calls from plain (non-async) code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors import ReadOptions, open_connector_sync
from connectors import sync as csync
from connectors.errors import TargetNotFound
from tests.connectors.conformance import assert_same_rows, joined, sample_frame


def test_sync_connector_roundtrip_on_files(tmp_path: Path) -> None:
    with open_connector_sync(f"file://{tmp_path}") as conn:
        conn.ping()
        assert conn.write(sample_frame(250), "s.parquet") == 250
        reader = conn.read("s.parquet", ReadOptions(paginate_read_num=100))
        batches = list(reader)
        assert [len(b) for b in batches] == [100, 100, 50] and reader.cursor == 250
        assert_same_rows(joined(batches), sample_frame(250))
        uri = conn.put_object("m/model.pt", b"\x00\x01")
        assert uri.startswith("file://") and conn.get_object("m/model.pt") == b"\x00\x01"
        with pytest.raises(TargetNotFound):
            conn.get_object("m/none")


def test_sync_reader_stops_early_and_resumes(tmp_path: Path) -> None:
    with open_connector_sync(f"file://{tmp_path}") as conn:
        conn.write(sample_frame(100), "r.csv")
        with conn.read("r.csv", ReadOptions(paginate_read_num=10)) as reader:
            first = next(reader)
            second = next(reader)
        assert list(reader) == []
        rest = list(conn.read("r.csv", ReadOptions(paginate_read_num=10, resume_from=reader.cursor)))
        assert_same_rows(joined([first, second, *rest]), sample_frame(100))


def test_iterate_bridges_any_async_iterator() -> None:
    closed = []

    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(5):
                yield i
        finally:
            closed.append(True)

    assert list(csync.iterate(numbers())) == [0, 1, 2, 3, 4]
    it = csync.iterate(numbers())
    assert next(it) == 0
    it.close()
    assert closed == [True, True]


def test_run_refuses_its_own_loop_thread() -> None:
    async def nested() -> None:
        async def inner() -> int:
            return 1

        csync.run(inner())

    with pytest.raises(RuntimeError, match="deadlock"):
        csync.run(nested())


def test_run_passes_errors_and_times_out() -> None:
    async def boom() -> None:
        raise TargetNotFound("gone")

    with pytest.raises(TargetNotFound, match="gone"):
        csync.run(boom())
    with pytest.raises(TimeoutError):
        csync.run(asyncio.sleep(5), timeout=0.05)
