"""REDIS connector when the server goes away: retry and resume, give up clearly, sinks that lose the line.

These tests run against a private `redis-server` on a unix socket (no other client touches it, so
killing every client is safe and SCAN batches stay put), reached directly or through a TCP proxy
the test can cut.
"""

# ruff: noqa: F811 - pytest fixtures imported from redis_fixtures are parameters here

from __future__ import annotations

import logging
from collections.abc import Iterator

import pandas as pd
import pytest
import redis

from connectors import ConnectionConfig, ReadOptions
from connectors.base import WriteOptions
from connectors.errors import SourceUnavailable
from connectors.redis import RedisConnector
from tests.connectors.conformance import collect, joined, sample_frame
from tests.connectors.redis_fixtures import Proxy, unix_redis  # noqa: F401 - fixtures

pytestmark = pytest.mark.redis

ROWS = 2_000


@pytest.fixture
def admin(unix_redis: str) -> Iterator[redis.Redis]:
    client = redis.Redis(unix_socket_path=unix_redis)
    pipe = client.pipeline()
    for i in range(ROWS):
        pipe.hset(f"k:{i}", mapping={"id": i, "name": f"n{i}"})
    pipe.rpush("list", *range(ROWS))
    pipe.execute()
    yield client
    client.close()


@pytest.fixture
def proxy(unix_redis: str) -> Iterator[Proxy]:
    p = Proxy(unix_redis)
    yield p
    p.close()


def via_proxy(proxy: Proxy) -> RedisConnector:
    return RedisConnector(
        ConnectionConfig("REDIS", addr="127.0.0.1", port=proxy.port, source_conf={"connect_timeout": 2})
    )


def kill_clients(admin: redis.Redis) -> int:
    return int(admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))


OPTIONS = ReadOptions(
    paginate_read_num=100, connect_read_num=50, async_load=False, retries=3, retry_backoff_s=0.01
)


@pytest.mark.parametrize("target", ["k:", "list"])
async def test_killed_connections_mid_read_resume_every_row_once(
    admin: redis.Redis, unix_redis: str, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="connectors._paging")
    conn = RedisConnector(ConnectionConfig("REDIS", source_conf={"unix_socket": unix_redis}))
    async with conn:
        reader = conn.read(target, OPTIONS)
        batches = []
        async with reader:
            async for batch in reader:
                batches.append(batch)
                if len(batches) in (1, 7):
                    assert kill_clients(admin) >= 1
    got = joined(batches)
    column = "id" if target == "k:" else "value"
    assert sorted(got[column]) == list(range(ROWS))  # every row, none twice
    assert [len(b) for b in batches] == [100] * (ROWS // 100)
    assert sum("retry" in r.getMessage() for r in caplog.records) >= 2


async def test_cut_proxy_mid_read_resumes(admin: redis.Redis, proxy: Proxy) -> None:
    conn = via_proxy(proxy)
    async with conn:
        reader = conn.read("k:", OPTIONS)
        batches = []
        async with reader:
            async for batch in reader:
                batches.append(batch)
                if len(batches) % 5 == 2:
                    proxy.cut()
    assert sorted(joined(batches)["id"]) == list(range(ROWS))


async def test_proxy_that_stays_down_gives_one_clear_error(admin: redis.Redis, proxy: Proxy) -> None:
    conn = via_proxy(proxy)
    async with conn:
        reader = conn.read(
            "k:", ReadOptions(paginate_read_num=100, connect_read_num=50, retries=2, retry_backoff_s=0.01)
        )
        with pytest.raises(SourceUnavailable) as info:
            async with reader:
                async for _ in reader:
                    proxy.refuse()
    message = str(info.value)
    assert "gave up after 2 retries" in message and "resume later with resume_from=" in message
    assert f"127.0.0.1:{proxy.port}" in message and "\n" not in message
    cursor = info.value.context["cursor"]
    assert cursor["rows"] >= 100


async def test_sink_that_loses_its_connection_leaves_the_target_unchanged(
    admin: redis.Redis, proxy: Proxy, unix_redis: str
) -> None:
    conn = via_proxy(proxy)
    async with conn:
        with pytest.raises(SourceUnavailable):
            async with conn.sink("k:", WriteOptions(mode="replace", key=("id",))) as sink:
                await sink.write(sample_frame(300, start=10_000))
                proxy.cut()
                await sink.write(sample_frame(300, start=20_000))
    assert admin.dbsize() == ROWS + 1  # the hashes and the list, nothing staged left
    assert list(admin.scan_iter(match="*__atom_stage:*")) == []


@pytest.mark.timeout(30)
async def test_closing_a_reader_mid_fetch_does_not_hang(admin: redis.Redis, unix_redis: str) -> None:
    conn = RedisConnector(ConnectionConfig("REDIS", source_conf={"unix_socket": unix_redis}))
    for target in ("k:", "list"):
        async with conn:
            reader = conn.read(
                target, ReadOptions(paginate_read_num=10, connect_read_num=10, prefetch_pages=1)
            )
            async with reader:
                first = await reader.__anext__()
            assert len(first) == 10
            rest = await collect(
                conn.read(target, ReadOptions(paginate_read_num=500, resume_from=reader.cursor))
            )
            assert len(first) + len(pd.concat(rest)) == ROWS
