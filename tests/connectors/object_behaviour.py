"""Object-store tests beyond the conformance suite, shared by S3 and ALIYUNOSS: mix `ObjectStoreBehaviour` in.

Subclasses supply `config` (how to reach the store under test) and `faults` (an
`object_fixtures.Faults` over that store): prefix and glob reads, ranged reads, multipart sinks
and their clean-up, prefix sinks, listing pages, resume after a dropped connection, the server
going away and coming back, a schema change between objects, missing targets, the file cache.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from connectors import ConnectionConfig, ReadOptions, open_connector
from connectors._objects import ObjectStoreConnector
from connectors.base import WriteOptions
from connectors.errors import ConnectorConfigError, SchemaChanged, SourceUnavailable, TargetNotFound
from tests.connectors.conformance import ConnectorConformance, assert_same_rows, collect, joined, sample_frame
from tests.connectors.object_fixtures import Faults, fresh_key

FAST_RETRY: dict[str, Any] = {"retries": 5, "retry_backoff_s": 0.02}


def one_line(err: BaseException, *secrets: str) -> str:
    text = str(err)
    assert "\n" not in text, text
    for secret in secrets:
        assert secret not in text, text
    return text


class ObjectStoreBehaviour:
    """Tests every object-store connector passes; subclasses supply `config` and `faults`."""

    @pytest.fixture
    def config(self) -> ConnectionConfig:
        raise NotImplementedError

    @pytest.fixture
    def faults(self) -> Faults:
        raise NotImplementedError

    @pytest.fixture
    def store(self, config: ConnectionConfig) -> ObjectStoreConnector:
        conn = open_connector(config)
        assert isinstance(conn, ObjectStoreConnector)
        return conn

    @pytest.fixture
    def prefix(self) -> str:
        return f"t/{uuid.uuid4().hex[:12]}/"

    def with_conf(self, config: ConnectionConfig, **conf: Any) -> ObjectStoreConnector:
        conn = open_connector(replace(config, source_conf={**config.source_conf, **conf}))
        assert isinstance(conn, ObjectStoreConnector)
        return conn

    # -- prefix reads ----------------------------------------------------------------------

    async def test_prefix_read_gives_every_object_in_key_order(
        self, store: ObjectStoreConnector, prefix: str
    ) -> None:
        parts = {f"{prefix}{name}.csv": sample_frame(100, start=i * 100) for i, name in enumerate("abc")}
        async with store:
            for key in reversed(list(parts)):
                await store.write(parts[key], key, mode="replace")
            await store.put_object(f"{prefix}_SUCCESS", b"")  # Spark's marker: skipped
            got = joined(await collect(store.read(prefix, ReadOptions(paginate_read_num=64))))
            globbed = joined(await collect(store.read(f"{prefix}[ab].csv")))
        pd.testing.assert_frame_equal(got, pd.concat(parts.values(), ignore_index=True), check_dtype=False)
        assert list(globbed["id"]) == list(range(200))

    async def test_prefix_read_resumes_across_objects(self, store: ObjectStoreConnector, prefix: str) -> None:
        frames = [sample_frame(100, start=i * 100) for i in range(3)]
        options = ReadOptions(paginate_read_num=40, operator_read_num=70, async_load=False)
        async with store:
            for i, frame in enumerate(frames):
                await store.write(frame, f"{prefix}part-{i}.parquet", mode="replace")
            reader = store.read(prefix, options)
            head = []
            async with reader:
                async for batch in reader:
                    head.append(batch)
                    if len(head) == 3:
                        break
            assert reader.cursor == {"key": f"{prefix}part-2.parquet", "rows": 10}
            tail = await collect(store.read(prefix, replace(options, resume_from=reader.cursor)))
        assert_same_rows(joined(head + tail), pd.concat(frames, ignore_index=True))
        assert sum(map(len, head)) == 210

    async def test_schema_change_between_objects_is_refused(
        self, store: ObjectStoreConnector, prefix: str
    ) -> None:
        async with store:
            await store.write(sample_frame(5), f"{prefix}a.csv", mode="replace")
            await store.write(
                sample_frame(5).rename(columns={"name": "label"}), f"{prefix}b.csv", mode="replace"
            )
            with pytest.raises(SchemaChanged) as info:
                await collect(store.read(prefix))
        text = one_line(info.value)
        assert f"{prefix}a.csv" in text and f"{prefix}b.csv" in text and "label" in text

    async def test_empty_prefix_raises_target_not_found(
        self, store: ObjectStoreConnector, prefix: str
    ) -> None:
        async with store:
            with pytest.raises(TargetNotFound, match="no objects match"):
                await collect(store.read(prefix))

    # -- objects ---------------------------------------------------------------------------

    async def test_ranged_reads_and_stat(self, store: ObjectStoreConnector, prefix: str) -> None:
        data = os.urandom(300_000)
        key = f"{prefix}blob.bin"
        async with store:
            await store.put_object(key, data)
            info = await store.stat_object(key)
            source = store.range_source(key)
            remote = await asyncio.to_thread(source.stat)
            got: dict[int, bytes] = {}

            def read(start: int, end: int) -> bytes:
                buf = bytearray(end - start)

                def write_at(offset: int, chunk: memoryview) -> None:
                    buf[offset - start : offset - start + len(chunk)] = chunk

                source.read_range(start, end, write_at)
                return bytes(buf)

            for start, end in [(0, 1), (1_000, 70_000), (299_990, 300_000), (5, 5)]:
                got[start] = await asyncio.to_thread(read, start, end)
            listed = [i async for i in store.list_objects(prefix)]
            await store.delete_object(key)
            with pytest.raises(TargetNotFound):
                await store.stat_object(key)
        assert info.size == remote.size == 300_000 and info.etag == remote.validator and info.modified > 0
        assert remote.uri == store.uri(key) and key.split("/")[-1] in remote.uri
        assert got[0] == data[:1] and got[1_000] == data[1_000:70_000] and got[299_990] == data[-10:]
        assert got[5] == b""
        assert [i.path for i in listed] == [key]

    async def test_range_read_of_a_changed_object_raises_object_changed(
        self, store: ObjectStoreConnector, prefix: str
    ) -> None:
        from connectors.cache import ObjectChanged

        key = f"{prefix}moving.bin"
        async with store:
            await store.put_object(key, b"v1" * 1_000)
            source = store.range_source(key)
            await asyncio.to_thread(source.stat)
            await store.put_object(key, b"v2" * 1_000)
            with pytest.raises(ObjectChanged) as info:
                await asyncio.to_thread(source.read_range, 0, 10, lambda offset, chunk: None)
        assert key in one_line(info.value)

    async def test_list_objects_pages(self, config: ConnectionConfig, faults: Faults, prefix: str) -> None:
        store = self.with_conf(config, list_page_size=7)
        keys = [f"{prefix}k{i:03d}" for i in range(25)]
        async with store:
            await asyncio.gather(*(store.put_object(k, b"x") for k in keys))
            before = faults.count("list")
            listed = [i.path async for i in store.list_objects(prefix)]
        assert listed == keys
        assert faults.count("list") - before == 4

    async def test_upload_and_download_roundtrip(
        self, config: ConnectionConfig, tmp_path: Path, prefix: str
    ) -> None:
        store = self.with_conf(config, part_size=1, multipart_threshold=1)
        data = os.urandom(int(store.min_part_size * 2.5))
        src = tmp_path / "model.bin"
        src.write_bytes(data)
        async with store:
            uri = await store.upload(str(src), f"{prefix}model.bin")
            dest = await store.download(f"{prefix}model.bin", str(tmp_path / "out" / "model.bin"))
            assert await store.get_object(f"{prefix}model.bin") == data
        assert uri == store.uri(f"{prefix}model.bin")
        assert await asyncio.to_thread(Path(dest).read_bytes) == data

    # -- sinks -----------------------------------------------------------------------------

    def big_frame(self, part_size: int, factor: float = 2.5) -> pd.DataFrame:
        rows = int(part_size * factor / 8)
        return pd.DataFrame(
            {"id": np.arange(rows, dtype="int64"), "x": np.random.default_rng(7).random(rows)}
        )

    async def test_multipart_sink_roundtrip(
        self, config: ConnectionConfig, faults: Faults, prefix: str
    ) -> None:
        store = self.with_conf(config, part_size=1, multipart_threshold=1)
        df = self.big_frame(store.min_part_size)
        key = f"{prefix}big.parquet"
        async with store:
            async with store.sink(key, WriteOptions(mode="replace")) as sink:
                for start in range(0, len(df), 100_000):
                    await sink.write(df.iloc[start : start + 100_000])
            got = joined(await collect(store.read(key)))
        pd.testing.assert_frame_equal(got, df)
        assert faults.count("part") >= 2 and faults.pending_uploads() == 0

    async def test_failed_multipart_upload_is_aborted(
        self, config: ConnectionConfig, faults: Faults, prefix: str
    ) -> None:
        store = self.with_conf(config, part_size=1, multipart_threshold=1)
        key = f"{prefix}big.parquet"
        async with store:
            await store.write(sample_frame(10), key, mode="replace")
            faults.fail_part(key)
            with pytest.raises(SourceUnavailable) as info:
                await store.write(self.big_frame(store.min_part_size), key, mode="replace")
            one_line(info.value, config.password)
            got = joined(await collect(store.read(key)))
        assert_same_rows(got, sample_frame(10))
        assert faults.pending_uploads() == 0

    async def test_prefix_sink_writes_part_objects(self, store: ObjectStoreConnector, prefix: str) -> None:
        async with store:
            await store.write(sample_frame(10), prefix, run_key="r1")
            await store.write(sample_frame(10), prefix, run_key="r1")  # a retried run: same part
            await store.write(sample_frame(5, start=10), prefix, run_key="r2", data_format="parquet")
            parts = [i.path async for i in store.list_objects(prefix)]
            both = joined(await collect(store.read(prefix)))
            await store.write(sample_frame(3, start=50), prefix, mode="replace")
            after = [i.path async for i in store.list_objects(prefix)]
            last = joined(await collect(store.read(prefix)))
            with pytest.raises(ConnectorConfigError, match="upsert"):
                store.sink(prefix, WriteOptions(mode="upsert", key=("id",)))
        assert parts == [f"{prefix}part-r1.parquet", f"{prefix}part-r2.parquet"]
        assert_same_rows(both, sample_frame(15))
        assert len(after) == 1 and after[0] not in parts
        assert_same_rows(last, sample_frame(3, start=50))

    async def test_append_to_missing_object_creates_it(
        self, store: ObjectStoreConnector, prefix: str
    ) -> None:
        async with store:
            assert await store.write(sample_frame(7), f"{prefix}new.jsonl", mode="append") == 7
            got = joined(await collect(store.read(f"{prefix}new.jsonl")))
        assert_same_rows(got, sample_frame(7))

    # -- faults ----------------------------------------------------------------------------

    async def test_read_resumes_after_the_connection_drops(
        self, config: ConnectionConfig, faults: Faults, prefix: str
    ) -> None:
        store = self.with_conf(config)
        key = f"{prefix}data.parquet"
        async with store:
            await store.write(sample_frame(), key, mode="replace")
            before = faults.count("get")
            faults.drop_get(key, 2_000)
            got = joined(await collect(store.read(key, ReadOptions(paginate_read_num=100, **FAST_RETRY))))
        assert_same_rows(got, sample_frame())
        assert faults.count("get") - before == 2

    async def test_server_gone_gives_a_clear_error(
        self, store: ObjectStoreConnector, faults: Faults, prefix: str
    ) -> None:
        key = f"{prefix}data.csv"
        async with store:
            await store.write(sample_frame(10), key, mode="replace")
            faults.stop()
            try:
                with pytest.raises(SourceUnavailable) as info:
                    await collect(store.read(key, ReadOptions(retries=2, retry_backoff_s=0.01)))
            finally:
                faults.start()
        text = one_line(info.value, store.config.password)
        assert "gave up after 2 retries" in text and key in text

    async def test_server_restart_mid_read_resumes(
        self, store: ObjectStoreConnector, faults: Faults, prefix: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        frames = [sample_frame(50, start=i * 50) for i in range(2)]
        options = ReadOptions(paginate_read_num=50, async_load=False, retries=8, retry_backoff_s=0.02)
        async with store:
            for i, frame in enumerate(frames):
                await store.write(frame, f"{prefix}{i}.csv", mode="replace")
            reader = store.read(prefix, options)
            async with reader:
                first = await reader.__anext__()
                faults.stop()
                with caplog.at_level(logging.WARNING, logger="connectors._paging"):
                    nxt = asyncio.ensure_future(reader.__anext__())
                    for _ in range(500):  # bounded: until the reader reports a retry
                        if any("retry" in r.getMessage() for r in caplog.records) or nxt.done():
                            break
                        await asyncio.sleep(0.01)
                    faults.start()
                    second = await nxt
                rest = [b async for b in reader]
        assert any("retry" in r.getMessage() for r in caplog.records)
        assert_same_rows(joined([first, second, *rest]), pd.concat(frames, ignore_index=True))

    async def test_missing_bucket_raises_target_not_found(self, config: ConnectionConfig) -> None:
        store = open_connector(replace(config, space="atom-no-such-bucket"))
        async with store:
            with pytest.raises(TargetNotFound) as info:
                await collect(store.read("x/data.csv"))
            with pytest.raises(TargetNotFound, match="atom-no-such-bucket"):
                await store.ping()
        assert "atom-no-such-bucket" in one_line(info.value, config.password)

    async def test_missing_key_message_names_the_object(
        self, store: ObjectStoreConnector, prefix: str
    ) -> None:
        async with store:
            with pytest.raises(TargetNotFound) as info:
                await store.get_object(f"{prefix}nope.bin")
        assert f"{prefix}nope.bin" in one_line(info.value, store.config.password)


class ObjectStoreConformance(ConnectorConformance):
    """The conformance suite for an object store; subclasses parametrize `object_format` and give `config`."""

    @pytest.fixture
    def target(self, object_format: str) -> str:
        return fresh_key(object_format)

    @pytest.fixture
    def missing_target(self, target: str) -> str:
        return target.replace("/data.", "/missing.")
