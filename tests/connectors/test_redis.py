"""REDIS connector against a real Redis: conformance, row mapping per type, dtypes, sinks, objects, errors."""

# ruff: noqa: F811 - pytest fixtures imported from redis_fixtures are parameters here

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis

from connectors import ConnectionConfig, ReadOptions
from connectors.base import WriteOptions
from connectors.errors import (
    AuthenticationFailed,
    ConnectorConfigError,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)
from connectors.redis import RedisConnector
from tests.connectors.conformance import ConnectorConformance, assert_same_rows, collect, joined, sample_frame
from tests.connectors.redis_fixtures import (  # noqa: F401 - fixtures
    base_config,
    drop_prefix,
    free_port,
    prefix,
    redis_admin,
    redis_config,
    unix_redis,
)

pytestmark = pytest.mark.redis


class TestRedisConformance(ConnectorConformance):
    @pytest.fixture
    def config(self, redis_config: ConnectionConfig) -> ConnectionConfig:
        return redis_config

    @pytest.fixture
    def target(self, prefix: str) -> str:
        return prefix

    @pytest.fixture
    def connector(self, config: ConnectionConfig) -> RedisConnector:
        return RedisConnector(config)

    @pytest.fixture
    def write_kwargs(self) -> dict[str, Any]:
        return {"key": "id"}

    @pytest.fixture
    def object_path(self, redis_admin: redis.Redis) -> Iterator[str]:
        path = f"conformance/{uuid.uuid4().hex[:8]}/model.bin"
        yield path
        drop_prefix(redis_admin, f"atom:objects:{path}")


@pytest.fixture
def conn(redis_config: ConnectionConfig) -> RedisConnector:
    return RedisConnector(redis_config)


async def read_all(conn: RedisConnector, target: str, **knobs: Any) -> pd.DataFrame:
    async with conn:
        return joined(await collect(conn.read(target, ReadOptions(**knobs))))


# -- row mapping per type --------------------------------------------------------------------


async def test_plain_hashes_get_numeric_columns_and_a_key_column(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    for i in range(50):
        redis_admin.hset(f"{prefix}{i}", mapping={"n": i, "x": i / 4, "zip": f"{i:05d}", "s": f"v{i}"})
    df = await read_all(conn, prefix)
    df = df.sort_values("n", ignore_index=True)
    assert len(df) == 50 and df["_key"].iloc[3] == f"{prefix}3"
    assert df["n"].dtype == np.int64 and df["x"].dtype == np.float64
    assert df["zip"].iloc[7] == "00007"  # leading zeros stay text
    assert list(df["s"][:2]) == ["v0", "v1"]


async def test_pattern_reads_every_type_with_a_documented_mapping(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    redis_admin.hset(f"{prefix}h", mapping={"a": "1"})
    redis_admin.set(f"{prefix}j", json.dumps({"a": 2, "nested": {"b": [1, 2]}, "t": "x"}))
    redis_admin.set(f"{prefix}s", "plain text")
    redis_admin.rpush(f"{prefix}l", "p", "q")
    redis_admin.zadd(f"{prefix}z", {"m1": 1.5, "m2": 2.5})
    redis_admin.sadd(f"{prefix}set", "only")
    redis_admin.xadd(f"{prefix}x", {"f": "v"}, id="1-1")
    df = await read_all(conn, prefix, paginate_read_num=3)
    by = {k: g.reset_index(drop=True) for k, g in df.groupby("_key")}
    assert len(df) == 9
    assert by[f"{prefix}h"]["a"][0] == 1
    assert by[f"{prefix}j"]["a"][0] == 2 and json.loads(by[f"{prefix}j"]["nested"][0]) == {"b": [1, 2]}
    assert by[f"{prefix}s"]["value"][0] == "plain text"
    assert list(by[f"{prefix}l"]["index"]) == [0, 1] and list(by[f"{prefix}l"]["value"]) == ["p", "q"]
    assert list(by[f"{prefix}z"]["member"]) == ["m1", "m2"] and list(by[f"{prefix}z"]["score"]) == [1.5, 2.5]
    assert by[f"{prefix}set"]["member"][0] == "only"
    assert by[f"{prefix}x"]["id"][0] == "1-1" and by[f"{prefix}x"]["f"][0] == "v"


async def test_mostly_json_strings_switch_the_pipeline_to_get(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    pipe = redis_admin.pipeline()
    for i in range(300):
        pipe.set(f"{prefix}{i}", json.dumps({"id": i, "name": f"n{i}", "ok": i % 2 == 0}))
    pipe.hset(f"{prefix}h", mapping={"id": 1000, "name": "hash"})
    pipe.execute()
    df = await read_all(conn, prefix, connect_read_num=50, paginate_read_num=64)
    assert len(df) == 301 and sorted(df["id"]) == [*range(300), 1000]
    assert df["id"].dtype == np.int64
    assert df.set_index("id")["name"][7] == "n7"


@pytest.mark.parametrize("kind", ["list", "zset", "stream"])
async def test_single_key_pages_through_elements_and_resumes(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis, kind: str
) -> None:
    key = f"{prefix}{kind}"
    if kind == "list":
        redis_admin.rpush(key, *[f"e{i}" for i in range(250)])
    elif kind == "zset":
        redis_admin.zadd(key, {f"m{i:03d}": i for i in range(250)})
    else:
        pipe = redis_admin.pipeline()
        for i in range(250):
            pipe.xadd(key, {"n": i}, id=f"{i + 1}-0")
        pipe.execute()
    options = ReadOptions(paginate_read_num=40, connect_read_num=30, operator_read_num=25)
    async with conn:
        reader = conn.read(key, options)
        head = []
        async with reader:
            async for batch in reader:
                head.append(batch)
                if len(head) == 4:
                    break
        assert [len(b) for b in head] == [25] * 4
        tail = await collect(conn.read(key, ReadOptions(paginate_read_num=40, resume_from=reader.cursor)))
    rows = joined(head + tail)
    assert len(rows) == 250 and set(rows["_key"]) == {key}
    if kind == "list":
        assert list(rows["index"]) == list(range(250)) and rows["value"].iloc[-1] == "e249"
    elif kind == "zset":
        assert list(rows["score"]) == [float(i) for i in range(250)]
    else:
        assert list(rows["n"]) == list(range(250)) and rows["id"].iloc[0] == "1-0"
    assert len(head[0]) < 40 and all(len(b) <= 40 for b in tail)


async def test_single_hash_and_string_keys_are_one_row(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    redis_admin.hset(f"{prefix}one", mapping={"a": "1", "b": "x"})
    redis_admin.hset(f"{prefix}one2", mapping={"a": "2"})  # not read: the target names one key
    redis_admin.set(f"{prefix}doc", json.dumps({"k": 1.5}))
    one = await read_all(conn, f"{prefix}one")
    doc = await read_all(conn, f"{prefix}doc")
    assert one.to_dict("records") == [{"_key": f"{prefix}one", "a": 1, "b": "x"}]
    assert doc.to_dict("records") == [{"_key": f"{prefix}doc", "k": 1.5}]


async def test_awkward_values_and_keys_survive(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    awkward: dict[str, dict[Any, Any]] = {
        f"{prefix}crlf": {"v": "line1\r\nline2", "w": "a"},
        f"{prefix}uni:ключ\n": {"v": "ä😀", "w": ""},
        f"{prefix}bin": {"v": b"\xff\xfe\x00", "w": "b"},
    }
    for key, fields in awkward.items():
        redis_admin.hset(key, mapping=fields)
    df = await read_all(conn, prefix)
    by = df.set_index("_key")
    assert set(by.index) == set(awkward)
    assert by.loc[f"{prefix}crlf", "v"] == b"line1\r\nline2"  # the column holds one non-UTF-8 value: bytes
    assert by.loc[f"{prefix}bin", "v"] == b"\xff\xfe\x00"
    assert by.loc[f"{prefix}uni:ключ\n", "v"] == "ä😀".encode()
    assert by.loc[f"{prefix}uni:ключ\n", "w"] == ""


async def test_hashes_with_different_fields_and_big_hashes(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    redis_admin.hset(f"{prefix}a", "x", "1")
    redis_admin.hset(f"{prefix}a", "y", "2")
    redis_admin.hset(f"{prefix}b", "y", "3")
    redis_admin.hset(f"{prefix}b", "z", "zz")
    wide: dict[Any, Any] = {f"f{i}": str(i) for i in range(300)}  # > 128 fields: hashtable encoding
    redis_admin.hset(f"{prefix}w1", mapping=wide)
    redis_admin.hset(f"{prefix}w2", mapping=wide)
    df = await read_all(conn, prefix)
    by = df.set_index("_key")
    assert by.loc[f"{prefix}a", "x"] == 1 and np.isnan(by.loc[f"{prefix}b", "x"])
    assert by.loc[f"{prefix}b", "z"] == "zz"
    assert by.loc[f"{prefix}w2", "f299"] == 299 and by.loc[f"{prefix}w1", "f0"] == 0


async def test_glob_patterns_and_prefixes_with_glob_characters(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    redis_admin.hset(f"{prefix}[1]:a", "v", "literal")
    redis_admin.hset(f"{prefix}1:a", "v", "class")
    redis_admin.hset(f"{prefix}user:1", "v", "u1")
    redis_admin.hset(f"{prefix}user:2", "v", "u2")
    redis_admin.hset(f"{prefix}order:1", "v", "o1")
    literal = await read_all(conn, f"{prefix}\\[1\\]:*")  # escaped: a literal prefix
    glob = await read_all(conn, f"{prefix}[1]:a")  # a glob character class
    users = await read_all(conn, f"{prefix}user:*")
    assert list(literal["v"]) == ["literal"]
    assert list(glob["v"]) == ["class"]
    assert sorted(users["v"]) == ["u1", "u2"]


async def test_missing_pattern_names_the_pattern(conn: RedisConnector, prefix: str) -> None:
    async with conn:
        with pytest.raises(TargetNotFound) as info:
            await collect(conn.read(f"{prefix}nothing*"))
    assert f"{prefix}nothing*" in str(info.value) and "\n" not in str(info.value)


async def test_resume_with_another_scan_count_gives_every_key_once(unix_redis: str) -> None:
    """On a private server: no other client grows the keyspace (a rehash reorders SCAN batches)."""
    admin = redis.Redis(unix_socket_path=unix_redis)
    conn = RedisConnector(ConnectionConfig("REDIS", source_conf={"unix_socket": unix_redis}))
    prefix = "r:"
    pipe = admin.pipeline()
    for i in range(2_000):
        pipe.hset(f"{prefix}{i}", mapping={"id": i})
    pipe.execute()
    async with conn:
        reader = conn.read(prefix, ReadOptions(paginate_read_num=150, connect_read_num=400))
        head = []
        async with reader:
            async for batch in reader:
                head.append(batch)
                if len(head) == 5:
                    break
        cursor = reader.cursor
        assert cursor["skip"] >= 0 and cursor["rows"] == 750
        tail = await collect(
            conn.read(prefix, ReadOptions(paginate_read_num=333, connect_read_num=97, resume_from=cursor))
        )
        done = await collect(conn.read(prefix, ReadOptions(resume_from={"done": True, "rows": 2000})))
    ids = joined(head + tail)["id"]
    assert sorted(ids) == list(range(2_000))
    assert done == []


async def test_bad_cursor_is_a_config_error(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    redis_admin.hset(f"{prefix}1", "a", "b")
    async with conn:
        with pytest.raises(ConnectorConfigError, match="cursor"):
            await collect(conn.read(prefix, ReadOptions(resume_from=17)))


# -- dtypes through the sink -----------------------------------------------------------------


async def test_sink_schema_key_restores_dtypes(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    df = pd.DataFrame(
        {
            "id": pd.Series([1, 2, 3], dtype="int64"),
            "small": pd.Series([1, 2, 3], dtype="int16"),
            "f": [0.1, np.nan, 250.0],
            "flag": [True, False, True],
            "when": pd.to_datetime(
                ["2024-05-06 07:08:09.123456", "2024-01-01", "2023-12-31 23:59:59"], format="ISO8601"
            ),
            "tz": pd.to_datetime(["2024-05-06 07:08:09"] * 3).tz_localize("Europe/Berlin"),
            "day": [dt.date(2024, 1, 1), dt.date(2024, 2, 29), None],
            "cat": pd.Categorical(["a", "b", "a"]),
            "text": ["ä\r\nb", "", None],
            "raw": [b"\x00\xff", b"ok", None],
            "obj": [{"a": 1}, [1, 2], None],
            "num_text": ["001", "2", "3"],
        }
    )
    async with conn:
        assert await conn.write(df, prefix, mode="replace", key="id") == 3
        got = joined(await collect(conn.read(prefix)))
    schema = redis_admin.hgetall(f"{prefix}__atom_schema")
    assert schema[b"id"] == b"int64" and schema[b"small"] == b"int16"
    got = got.sort_values("id", ignore_index=True)
    assert got["id"].dtype == np.int64 and got["small"].dtype == np.int16
    assert got["f"].iloc[0] == 0.1 and np.isnan(got["f"].iloc[1]) and got["f"].iloc[2] == 250.0
    assert got["flag"].tolist() == [True, False, True]
    assert got["when"].tolist() == df["when"].tolist()
    assert got["tz"].iloc[0] == df["tz"].iloc[0] and str(got["tz"].dt.tz) == "Europe/Berlin"
    assert got["day"].iloc[1] == dt.date(2024, 2, 29) and pd.isna(got["day"].iloc[2])
    assert isinstance(got["cat"].dtype, pd.CategoricalDtype) and list(got["cat"]) == ["a", "b", "a"]
    assert got["text"].iloc[0] == "ä\r\nb" and got["text"].iloc[1] == "" and pd.isna(got["text"].iloc[2])
    assert got["raw"].iloc[0] == b"\x00\xff"
    assert json.loads(got["obj"].iloc[0]) == {"a": 1}
    assert got["num_text"].tolist() == ["001", "2", "3"]  # declared text stays text
    assert b"text" not in redis_admin.hgetall(f"{prefix}3")  # nulls are left out of the hash


async def test_arrow_pages_keep_arrow_types(conn: RedisConnector, prefix: str) -> None:
    async with conn:
        await conn.write(sample_frame(10), prefix, key="id")
        [table] = await collect(conn.read(prefix, ReadOptions(arrow=True)))
    assert isinstance(table, pa.Table)
    assert table.schema.field("id").type == pa.int64() and table.schema.field("value").type == pa.float64()


# -- sinks -----------------------------------------------------------------------------------


async def test_upsert_replaces_the_whole_hash(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    async with conn:
        await conn.write(pd.DataFrame({"id": [1, 2], "a": [1.0, 2.0], "b": ["x", "y"]}), prefix, key="id")
        await conn.write(
            pd.DataFrame({"id": [1], "a": [np.nan], "b": ["new"]}), prefix, mode="upsert", key="id"
        )
    assert redis_admin.hgetall(f"{prefix}1") == {b"id": b"1", b"b": b"new"}
    assert redis_admin.hgetall(f"{prefix}2") == {b"id": b"2", b"a": b"2", b"b": b"y"}


async def test_keys_from_several_columns_and_rows_without_key(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    async with conn:
        await conn.write(
            pd.DataFrame({"a": ["x", "y"], "b": [1, 2], "v": [0.5, 1.5]}), prefix, key=["a", "b"]
        )
        await conn.write(pd.DataFrame({"v": [7.0, 8.0]}), f"{prefix}nokey:", run_key="r1")
        await conn.write(pd.DataFrame({"v": [np.nan]}), f"{prefix}empty:")
        with pytest.raises(RequestRejected, match="key column 'a'"):
            await conn.write(pd.DataFrame({"a": [None], "b": [1]}), prefix, key=["a", "b"])
        with pytest.raises(ConnectorConfigError, match="'zz'"):
            await conn.write(pd.DataFrame({"a": [1]}), prefix, key="zz")
        empty_rows = joined(await collect(conn.read(f"{prefix}empty:")))
    assert redis_admin.hgetall(f"{prefix}x:1") == {b"a": b"x", b"b": b"1", b"v": b"0.5"}
    assert sorted(redis_admin.scan_iter(match=f"{prefix}nokey:r1:*")) == [
        f"{prefix}nokey:r1:0".encode(),
        f"{prefix}nokey:r1:1".encode(),
    ]
    assert len(empty_rows) == 1 and list(empty_rows.columns) == ["_key", "v"] and pd.isna(empty_rows["v"][0])


async def test_staging_is_hidden_expires_and_is_cleaned(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    async with conn:
        sink = conn.sink(prefix, WriteOptions(mode="append", key=("id",)))
        await sink.write(sample_frame(20))
        staged = list(redis_admin.scan_iter(match=f"{prefix}__atom_stage:*"))
        assert len(staged) == 20 and all(0 < redis_admin.ttl(k) <= 86_400 for k in staged)
        with pytest.raises(TargetNotFound):
            await collect(conn.read(prefix))
        await sink.commit()
        assert list(redis_admin.scan_iter(match=f"{prefix}__atom_stage:*")) == []
        assert redis_admin.ttl(f"{prefix}3") == -1
        aborted = conn.sink(prefix, WriteOptions(mode="replace", key=("id",)))
        await aborted.write(sample_frame(5, start=100))
        await aborted.abort()
        assert list(redis_admin.scan_iter(match=f"{prefix}__atom_stage:*")) == []
        assert len(joined(await collect(conn.read(prefix)))) == 20


async def test_expired_staging_fails_the_commit_cleanly(
    redis_admin: redis.Redis, prefix: str, redis_config: ConnectionConfig
) -> None:
    conn = RedisConnector(base_config(source_conf={**redis_config.source_conf, "staging_ttl_s": 60}))
    async with conn:
        await conn.write(sample_frame(3), prefix, key="id")
        sink = conn.sink(prefix, WriteOptions(mode="replace", key=("id",)))
        await sink.write(sample_frame(4, start=10))
        for key in redis_admin.scan_iter(match=f"{prefix}__atom_stage:*"):
            redis_admin.delete(key)
            break
        with pytest.raises(RequestRejected, match="expired"):
            await sink.commit()
        got = joined(await collect(conn.read(prefix)))
    assert sorted(got["id"]) == [0, 1, 2]
    assert list(redis_admin.scan_iter(match=f"{prefix}__atom_stage:*")) == []


async def test_replace_is_one_transaction_for_other_clients(
    conn: RedisConnector, prefix: str, redis_admin: redis.Redis
) -> None:
    """A client polling the key count never sees a half-replaced prefix."""
    async with conn:
        await conn.write(sample_frame(400), prefix, key="id")
        seen: set[int] = set()
        stop = asyncio.Event()

        def count() -> int:
            pipe = redis_admin.pipeline(transaction=True)
            pipe.exists(*[f"{prefix}{i}" for i in range(400)])
            pipe.exists(*[f"{prefix}{i}" for i in range(5_000, 5_300)])
            old, new = pipe.execute()
            return old * 10_000 + new

        async def poll() -> None:
            while not stop.is_set():
                seen.add(await asyncio.to_thread(count))

        poller = asyncio.create_task(poll())
        await conn.write(sample_frame(300, start=5_000), prefix, mode="replace", key="id")
        await asyncio.sleep(0)
        stop.set()
        await poller
    seen.add(count())
    assert seen <= {400 * 10_000, 300}, seen


async def test_sink_refuses_an_empty_prefix(conn: RedisConnector) -> None:
    with pytest.raises(ConnectorConfigError, match="prefix"):
        conn.sink("", WriteOptions())
    with pytest.raises(ConnectorConfigError, match="upsert"):
        conn.sink("x:", WriteOptions(mode="upsert"))


# -- objects ---------------------------------------------------------------------------------


async def test_objects_stat_list_and_limits(
    conn: RedisConnector, redis_admin: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"models/{uuid.uuid4().hex[:8]}/"
    try:
        async with conn:
            uri = await conn.put_object(base + "a.bin", b"12345")
            await conn.put_object(base + "b/c.bin", b"x")
            info = await conn.stat_object(base + "a.bin")
            listed = [o.path async for o in conn.list_objects(base)]
            assert uri.endswith(f"/atom:objects:{base}a.bin") and uri.startswith("redis://")
            assert info.size == 5 and len(info.etag) == 32 and info.modified > 0
            assert listed == [base + "a.bin", base + "b/c.bin"]
            assert redis_admin.get(f"atom:objects:{base}a.bin") == b"12345"  # a plain string key
            with pytest.raises(TargetNotFound):
                await conn.stat_object(base + "nope")
            monkeypatch.setattr("connectors.redis.MAX_OBJECT_BYTES", 4)
            with pytest.raises(RequestRejected, match="S3/OSS"):
                await conn.put_object(base + "big", b"12345")
    finally:
        drop_prefix(redis_admin, f"atom:objects:{base}")


# -- connection and errors -------------------------------------------------------------------


@pytest.fixture
def acl_user(redis_admin: redis.Redis, prefix: str) -> Iterator[tuple[str, str]]:
    """An ACL user that may only touch keys under `<prefix>allowed:`; removed afterwards."""
    name, password = f"atomtest_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    redis_admin.acl_setuser(
        name, enabled=True, passwords=[f"+{password}"], keys=[f"{prefix}allowed:*"], commands=["+@all"]
    )
    yield name, password
    redis_admin.acl_deluser(name)


async def test_wrong_password_is_authentication_failed_without_the_secret(
    acl_user: tuple[str, str], redis_config: ConnectionConfig, prefix: str
) -> None:
    name, _ = acl_user
    secret = "wrong-" + uuid.uuid4().hex
    conn = RedisConnector(base_config(account=name, password=secret, source_conf=redis_config.source_conf))
    for attempt in (conn.ping(), collect(conn.read(f"{prefix}*", ReadOptions(retries=0)))):
        with pytest.raises(AuthenticationFailed) as info:
            await attempt
        assert secret not in str(info.value) and "\n" not in str(info.value)
    assert secret not in repr(conn.config) and secret not in repr(conn.settings)
    await conn.aclose()


async def test_acl_denied_keys_are_permission_denied(
    acl_user: tuple[str, str], redis_config: ConnectionConfig, prefix: str, redis_admin: redis.Redis
) -> None:
    name, password = acl_user
    redis_admin.hset(f"{prefix}secret:1", "a", "1")
    redis_admin.hset(f"{prefix}allowed:1", "a", "1")
    conn = RedisConnector(base_config(account=name, password=password, source_conf=redis_config.source_conf))
    async with conn:
        await conn.ping()
        ok = joined(await collect(conn.read(f"{prefix}allowed:")))
        with pytest.raises(PermissionDenied, match="ACL"):
            await collect(conn.read(f"{prefix}secret:1"))
        with pytest.raises(PermissionDenied):
            await conn.write(sample_frame(2), f"{prefix}secret:", key="id")
    assert len(ok) == 1


async def test_unreachable_server_is_one_line_source_unavailable() -> None:
    port = free_port()
    conn = RedisConnector(
        ConnectionConfig("REDIS", addr="127.0.0.1", port=port, source_conf={"connect_timeout": 1})
    )
    with pytest.raises(SourceUnavailable) as info:
        await conn.ping()
    assert "\n" not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)
    with pytest.raises(SourceUnavailable, match="gave up after 1 retries"):
        await collect(conn.read("x:*", ReadOptions(retries=1, retry_backoff_s=0.01)))
    await conn.aclose()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colony_type": "RING"}, "SINGLE or GROUP"),
        ({"space": "db1"}, "db index"),
        ({"colony_type": "GROUP", "space": "3"}, "only db 0"),
        ({"source_conf": {"client_name": "a b"}}, "client_name"),
    ],
)
def test_bad_connection_fields_are_config_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConnectorConfigError, match=message):
        RedisConnector(ConnectionConfig("REDIS", addr="127.0.0.1", **changes))


async def test_db_index_out_of_range(redis_admin: redis.Redis, redis_config: ConnectionConfig) -> None:
    conn = RedisConnector(base_config(space="4096", source_conf=redis_config.source_conf))
    with pytest.raises(ConnectorConfigError, match="db index"):
        await collect(conn.read("x:*"))
    await conn.aclose()


async def test_unix_socket_server(unix_redis: str) -> None:
    conn = RedisConnector(ConnectionConfig("REDIS", source_conf={"unix_socket": unix_redis}))
    async with conn:
        await conn.write(sample_frame(30), "u:", key="id")
        got = joined(await collect(conn.read("u:")))
        assert conn.settings.where == f"REDIS {unix_redis}/0"
    assert_same_rows(got, sample_frame(30))
