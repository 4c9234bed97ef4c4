"""REDIS connector in GROUP mode against a real three-primary Redis Cluster started for the session."""

# ruff: noqa: F811 - pytest fixtures imported from redis_fixtures are parameters here

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import redis
from redis.cluster import RedisCluster

from connectors import ConnectionConfig, ReadOptions
from connectors.base import WriteOptions
from connectors.errors import SourceUnavailable
from connectors.redis import RedisConnector
from tests.connectors.conformance import ConnectorConformance, assert_same_rows, collect, joined, sample_frame
from tests.connectors.redis_fixtures import Cluster, drop_prefix, free_port, redis_cluster  # noqa: F401

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def cluster_admin(redis_cluster: Cluster) -> Iterator[RedisCluster]:
    client = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    yield client
    client.close()


@pytest.fixture
def cluster_prefix(cluster_admin: RedisCluster) -> Iterator[str]:
    name = f"atomtest:{uuid.uuid4().hex[:10]}:"
    yield name
    drop_prefix(cluster_admin, name)


class TestRedisClusterConformance(ConnectorConformance):
    @pytest.fixture
    def config(self, redis_cluster: Cluster) -> ConnectionConfig:
        return redis_cluster.config()

    @pytest.fixture
    def target(self, cluster_prefix: str) -> str:
        return cluster_prefix

    @pytest.fixture
    def connector(self, config: ConnectionConfig) -> RedisConnector:
        return RedisConnector(config)

    @pytest.fixture
    def write_kwargs(self) -> dict[str, Any]:
        return {"key": "id"}

    @pytest.fixture
    def object_path(self, cluster_admin: RedisCluster) -> Iterator[str]:
        path = f"conformance/{uuid.uuid4().hex[:8]}/model.bin"
        yield path
        drop_prefix(cluster_admin, f"atom:objects:{path}")


def node_counts(cluster: Cluster, prefix: str) -> list[int]:
    return [len(list(cluster.client(p).scan_iter(match=f"{prefix}*"))) for p in cluster.ports]


async def test_rows_spread_over_every_primary_and_read_back(
    redis_cluster: Cluster, cluster_prefix: str
) -> None:
    conn = RedisConnector(redis_cluster.config())
    async with conn:
        topo = await conn.topology()
        await conn.write(sample_frame(900), cluster_prefix, key="id")
        got = joined(
            await collect(conn.read(cluster_prefix, ReadOptions(paginate_read_num=128, connect_read_num=100)))
        )
    assert len(topo.nodes) == 3
    counts = node_counts(redis_cluster, cluster_prefix)
    assert all(c > 100 for c in counts) and sum(counts) == 901  # 900 rows and the schema key
    assert_same_rows(got, sample_frame(900))


async def test_replace_and_run_keys_cross_nodes(
    redis_cluster: Cluster, cluster_prefix: str, cluster_admin: RedisCluster
) -> None:
    conn = RedisConnector(redis_cluster.config())
    async with conn:
        await conn.write(sample_frame(200), cluster_prefix, key="id", run_key="a")
        await conn.write(sample_frame(200, start=100), cluster_prefix, key="id", run_key="a")
        await conn.write(sample_frame(50, start=1_000), cluster_prefix, key="id", mode="replace")
        got = joined(await collect(conn.read(cluster_prefix)))
    assert_same_rows(got, sample_frame(50, start=1_000))
    assert list(cluster_admin.scan_iter(match="*__atom_stage:*")) == []
    assert not cluster_admin.exists(f"{cluster_prefix}__atom_run:a")


async def test_hash_tagged_prefix_lives_on_one_node(redis_cluster: Cluster, cluster_prefix: str) -> None:
    tagged = "{" + cluster_prefix.rstrip(":") + "}:"
    conn = RedisConnector(redis_cluster.config())
    try:
        async with conn:
            await conn.write(sample_frame(120), tagged, key="id")
            async with conn.sink(tagged, WriteOptions(mode="replace", key=("id",))) as sink:
                await sink.write(sample_frame(30, start=500))
            got = joined(await collect(conn.read(tagged)))
        assert sorted(c for c in node_counts(redis_cluster, tagged) if c) == [31]
        assert_same_rows(got, sample_frame(30, start=500))
    finally:
        drop_prefix(RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0]), tagged)


async def test_single_keys_and_json_on_a_cluster(
    redis_cluster: Cluster, cluster_prefix: str, cluster_admin: RedisCluster
) -> None:
    cluster_admin.rpush(f"{cluster_prefix}list", *range(300))
    cluster_admin.set(f"{cluster_prefix}doc", '{"a": 1}')
    conn = RedisConnector(redis_cluster.config())
    async with conn:
        items = joined(await collect(conn.read(f"{cluster_prefix}list", ReadOptions(paginate_read_num=64))))
        docs = joined(await collect(conn.read(f"{cluster_prefix}d*")))
    assert list(items["value"]) == list(range(300))
    assert docs.to_dict("records") == [{"_key": f"{cluster_prefix}doc", "a": 1}]


async def test_unreachable_seed_node(redis_cluster: Cluster) -> None:
    conn = RedisConnector(redis_cluster.config(port=free_port(), source_conf={"connect_timeout": 1}))
    with pytest.raises(SourceUnavailable) as info:
        await conn.ping()
    assert "cluster" in str(info.value) and "\n" not in str(info.value)
    await conn.aclose()


async def test_cluster_reads_resume_across_nodes(redis_cluster: Cluster, cluster_prefix: str) -> None:
    conn = RedisConnector(redis_cluster.config())
    async with conn:
        await conn.write(sample_frame(600), cluster_prefix, key="id")
        reader = conn.read(cluster_prefix, ReadOptions(paginate_read_num=70))
        head = []
        async with reader:
            async for batch in reader:
                head.append(batch)
                if len(head) == 4:
                    break
        tail = await collect(
            conn.read(cluster_prefix, ReadOptions(paginate_read_num=70, resume_from=reader.cursor))
        )
    assert reader.cursor["node"] in {f"127.0.0.1:{p}" for p in redis_cluster.ports}
    assert sorted(pd.concat(head + tail)["id"]) == list(range(600))


def test_cluster_admin_sees_three_primaries(redis_cluster: Cluster) -> None:
    info = redis.Redis(port=redis_cluster.ports[0]).execute_command("CLUSTER", "INFO")
    assert b"cluster_known_nodes:3" in info
