"""The conformance suite every connector passes: mix `ConnectorConformance` into a test class.

A connector's test module subclasses it and provides the fixtures below (fsspec's
`tests/abstract` style); the tests then run against that store:

```python
class TestMyStoreConformance(ConnectorConformance):
    @pytest.fixture
    def config(self) -> ConnectionConfig: ...      # how to reach a test store
    @pytest.fixture
    def target(self) -> Iterator[str]: ...         # a fresh writable target; clean it up after
```

Optional fixtures: `read_options` (base `ReadOptions`, e.g. a key), `write_kwargs` (extra
keywords for the first `write`, e.g. MYSQL `key="id"`), `object_path`, `missing_target`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest

from connectors import ConnectionConfig, Connector, ReadOptions, open_connector
from connectors.base import WriteOptions
from connectors.errors import TargetNotFound

ROWS = 1_000


def sample_frame(rows: int = ROWS, start: int = 0) -> pd.DataFrame:
    """Rows every store can hold and give back unchanged: int key, exact floats, strings."""
    ids = range(start, start + rows)
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype="int64"),
            "value": [i * 0.25 for i in ids],
            "name": [f"row-{i}" for i in ids],
        }
    )


async def collect(reader: AsyncIterator[pd.DataFrame]) -> list[pd.DataFrame]:
    """Every batch of a reader, closing it at the end."""
    batches = [batch async for batch in reader]
    aclose = getattr(reader, "aclose", None)
    if aclose is not None:
        await aclose()
    return batches


def joined(batches: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(batches, ignore_index=True) if batches else pd.DataFrame()


def assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = got[list(expected.columns)].sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False)
    assert got["id"].dtype.kind == "i", got.dtypes
    assert got["value"].dtype.kind == "f", got.dtypes


async def wait_until(predicate: Any, *, ticks: int = 1_000) -> bool:
    """Yield to the loop until `predicate()` holds (a bounded number of ticks, no clock asserts)."""
    for _ in range(ticks):
        if predicate():
            return True
        await asyncio.sleep(0.005)
    return bool(predicate())


KNOB_SETS = {
    "page100": ReadOptions(paginate_read_num=100),
    "page100-op33": ReadOptions(paginate_read_num=100, operator_read_num=33),
    "page7-op250": ReadOptions(paginate_read_num=7, operator_read_num=250),
    "page64-fetch10": ReadOptions(paginate_read_num=64, connect_read_num=10),
    "disposable": ReadOptions(paginate_read_num=128, disposable=True),
    "sync-load": ReadOptions(paginate_read_num=100, operator_read_num=40, async_load=False),
    "prefetch1": ReadOptions(paginate_read_num=50, prefetch_pages=1),
    "one-page": ReadOptions(paginate_read_num=10_000),
}


class ConnectorConformance:
    """Tests every connector must pass; subclasses supply `config` and `target` fixtures."""

    @pytest.fixture
    def config(self) -> ConnectionConfig:
        raise NotImplementedError("a conformance test class must define the `config` fixture")

    @pytest.fixture
    def target(self) -> str:
        raise NotImplementedError("a conformance test class must define the `target` fixture")

    @pytest.fixture
    def read_options(self) -> ReadOptions:
        return ReadOptions()

    @pytest.fixture
    def write_kwargs(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def object_path(self) -> str:
        return f"conformance/{uuid.uuid4().hex[:8]}/model.bin"

    @pytest.fixture
    def missing_target(self, target: str) -> str:
        return target + "_missing"

    @pytest.fixture
    def connector(self, config: ConnectionConfig) -> Connector:
        return open_connector(config)

    @pytest.fixture
    async def written(self, connector: Connector, target: str, write_kwargs: dict[str, Any]) -> pd.DataFrame:
        """`target` holding `sample_frame()`, written through the connector under test."""
        df = sample_frame()
        assert await connector.write(df, target, mode="replace", **write_kwargs) == len(df)
        await connector.aclose()
        return df

    def opts(self, base: ReadOptions, **changes: Any) -> ReadOptions:
        return replace(base, **changes)

    # -- roundtrip -------------------------------------------------------------------------

    async def test_write_then_read_roundtrip(
        self, connector: Connector, target: str, read_options: ReadOptions, write_kwargs: dict[str, Any]
    ) -> None:
        df = sample_frame()
        async with connector:
            assert await connector.write(df, target, **write_kwargs) == ROWS
            batches = await collect(connector.read(target, read_options))
        assert_same_rows(joined(batches), df)

    async def test_append_adds_rows(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame
    ) -> None:
        more = sample_frame(200, start=ROWS)
        async with connector:
            assert await connector.write(more, target, mode="append") == 200
            got = joined(await collect(connector.read(target, read_options)))
        assert_same_rows(got, pd.concat([written, more], ignore_index=True))

    async def test_replace_drops_old_rows(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame
    ) -> None:
        new = sample_frame(30, start=5_000)
        async with connector:
            assert await connector.write(new, target, mode="replace") == 30
            got = joined(await collect(connector.read(target, read_options)))
        assert_same_rows(got, new)

    # -- paging knobs ----------------------------------------------------------------------

    @pytest.mark.parametrize("knobs", list(KNOB_SETS))
    async def test_knobs_give_identical_data(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame, knobs: str
    ) -> None:
        k = KNOB_SETS[knobs]
        options = self.opts(
            read_options,
            paginate_read_num=k.paginate_read_num,
            operator_read_num=k.operator_read_num,
            connect_read_num=k.connect_read_num,
            disposable=k.disposable,
            async_load=k.async_load,
            prefetch_pages=k.prefetch_pages,
        )
        async with connector:
            batches = await collect(connector.read(target, options))
        assert_same_rows(joined(batches), written)
        sizes = [len(b) for b in batches]
        if options.disposable:
            assert sizes == [ROWS]
        elif options.operator_read_num:
            n = options.operator_read_num
            assert sizes[:-1] == [n] * (len(sizes) - 1) and 0 < sizes[-1] <= n
        else:
            assert max(sizes) <= options.paginate_read_num
            assert len(sizes) == -(-ROWS // options.paginate_read_num)
        for batch in batches:
            assert list(batch.index) == list(range(len(batch)))

    async def test_async_load_on_and_off_agree(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame
    ) -> None:
        base = self.opts(read_options, paginate_read_num=90, operator_read_num=70)
        async with connector:
            on = await collect(connector.read(target, self.opts(base, async_load=True)))
            off = await collect(connector.read(target, self.opts(base, async_load=False)))
        assert [len(b) for b in on] == [len(b) for b in off]
        pd.testing.assert_frame_equal(joined(on), joined(off))

    async def test_prefetch_overlaps_with_a_slow_consumer(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame
    ) -> None:
        options = self.opts(read_options, paginate_read_num=50, prefetch_pages=2, async_load=True)
        async with connector:
            reader = connector.read(target, options)
            stats = reader.stats  # type: ignore[attr-defined]
            async with reader:  # type: ignore[attr-defined]
                first = await reader.__anext__()
                assert len(first) == 50
                # while the consumer still holds batch 1, the producer fetches ahead ...
                assert await wait_until(lambda: stats.pages_fetched >= 3)
                # ... but only as far as the bounded queue allows
                for _ in range(20):
                    await asyncio.sleep(0.005)
                assert stats.pages_fetched <= 1 + options.prefetch_pages + 1
                rest = [b async for b in reader]
            assert stats.max_ahead <= options.prefetch_pages + 1
        assert 1 + len(rest) == ROWS // 50

    async def test_without_async_load_nothing_is_fetched_ahead(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame
    ) -> None:
        options = self.opts(read_options, paginate_read_num=50, async_load=False)
        async with connector:
            reader = connector.read(target, options)
            async with reader:  # type: ignore[attr-defined]
                await reader.__anext__()
                for _ in range(10):
                    await asyncio.sleep(0.005)
                assert reader.stats.pages_fetched == 1  # type: ignore[attr-defined]

    async def test_early_stop_then_resume_from_cursor(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame
    ) -> None:
        options = self.opts(read_options, paginate_read_num=100, operator_read_num=75)
        async with connector:
            reader = connector.read(target, options)
            head = []
            async with reader:  # type: ignore[attr-defined]
                async for batch in reader:
                    head.append(batch)
                    if len(head) == 3:
                        break
            cursor = reader.cursor  # type: ignore[attr-defined]
            assert cursor is not None
            tail = await collect(connector.read(target, self.opts(options, resume_from=cursor)))
        assert sum(map(len, head)) == 225
        assert_same_rows(joined(head + tail), written)

    # -- errors and objects ----------------------------------------------------------------

    async def test_missing_target_raises_target_not_found(
        self, connector: Connector, missing_target: str, read_options: ReadOptions
    ) -> None:
        async with connector:
            with pytest.raises(TargetNotFound) as info:
                await collect(connector.read(missing_target, read_options))
        assert missing_target.split("/")[-1] in str(info.value)

    async def test_put_then_get_object(self, connector: Connector, object_path: str) -> None:
        payload = bytes(range(256)) * 1_000
        async with connector:
            uri = await connector.put_object(object_path, payload)
            assert isinstance(uri, str) and object_path.split("/")[-1] in uri
            assert await connector.get_object(object_path) == payload
            assert await connector.put_object(object_path, b"v2") == uri
            assert await connector.get_object(object_path) == b"v2"

    async def test_missing_object_raises_target_not_found(
        self, connector: Connector, object_path: str
    ) -> None:
        async with connector:
            with pytest.raises(TargetNotFound):
                await connector.get_object(object_path + ".nope")

    async def test_ping(self, connector: Connector) -> None:
        async with connector:
            await connector.ping()

    # -- sinks -----------------------------------------------------------------------------

    async def test_run_keyed_write_is_idempotent(
        self, connector: Connector, target: str, read_options: ReadOptions, write_kwargs: dict[str, Any]
    ) -> None:
        first, retry, other = sample_frame(300), sample_frame(300), sample_frame(50, start=9_000)
        async with connector:
            assert await connector.write(first, target, run_key="run-1", **write_kwargs) == 300
            # the run is retried: the same rows again under the same run key replace the first copy
            assert await connector.write(retry, target, run_key="run-1", **write_kwargs) == 300
            assert await connector.write(other, target, run_key="run-2", **write_kwargs) == 50
            got = joined(await collect(connector.read(target, read_options)))
        assert_same_rows(got, pd.concat([first, other], ignore_index=True))

    async def test_upsert_updates_rows_by_key(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame
    ) -> None:
        change = sample_frame(20, start=ROWS - 10)
        change["value"] = change["value"] + 1_000.0
        async with connector:
            assert await connector.write(change, target, mode="upsert", key="id") == 20
            got = joined(await collect(connector.read(target, read_options)))
        expected = pd.concat([written[written["id"] < ROWS - 10], change], ignore_index=True)
        assert_same_rows(got, expected)

    async def test_upsert_without_key_is_refused(self, connector: Connector, target: str) -> None:
        from connectors.errors import ConnectorConfigError

        async with connector:
            with pytest.raises(ConnectorConfigError, match="key"):
                await connector.write(sample_frame(5), target, mode="upsert")

    async def test_sink_streams_batches_and_commits_once(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame
    ) -> None:
        parts = [sample_frame(100, start=10_000 + 100 * i) for i in range(5)]
        async with connector:
            async with connector.sink(target, WriteOptions(mode="replace", key=("id",))) as sink:
                for part in parts:
                    await sink.write(part)
                # nothing is visible before the commit: readers still see the old rows
                before = joined(await collect(connector.read(target, read_options)))
                assert_same_rows(before, written)
            assert sink.rows == 500
            got = joined(await collect(connector.read(target, read_options)))
        assert_same_rows(got, pd.concat(parts, ignore_index=True))

    async def test_aborted_sink_leaves_the_target_unchanged(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame
    ) -> None:
        async with connector:
            with pytest.raises(RuntimeError, match="operator broke"):
                async with connector.sink(target, WriteOptions(mode="replace", key=("id",))) as sink:
                    await sink.write(sample_frame(100, start=50_000))
                    raise RuntimeError("operator broke")
            got = joined(await collect(connector.read(target, read_options)))
        assert_same_rows(got, written)

    # -- arrow -----------------------------------------------------------------------------

    async def test_arrow_read_gives_the_same_rows(
        self, connector: Connector, target: str, read_options: ReadOptions, written: pd.DataFrame
    ) -> None:
        import pyarrow as pa

        options = self.opts(read_options, paginate_read_num=300, arrow=True)
        async with connector:
            batches = await collect(connector.read(target, options))
        assert batches and all(isinstance(b, pa.Table) for b in batches)
        assert [len(b) for b in batches] == [300, 300, 300, 100]
        assert_same_rows(pa.concat_tables(batches).to_pandas(), written)
