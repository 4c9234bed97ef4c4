"""ALIYUNOSS connector with the real oss2 SDK against the OSS-protocol test server."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectors import ConnectionConfig, ReadOptions, open_connector
from connectors.errors import AuthenticationFailed, PermissionDenied, RequestRejected, TargetNotFound
from connectors.oss import OSSConnector
from connectors.registry import open_url
from tests.connectors.conformance import assert_same_rows, collect, joined, sample_frame
from tests.connectors.object_behaviour import ObjectStoreBehaviour, ObjectStoreConformance
from tests.connectors.object_fixtures import (  # noqa: F401 - fixtures
    BUCKET,
    OSS_KEY_ID,
    OSS_SECRET,
    Faults,
    ServerFaults,
    fresh_key,
    oss,
    oss_server,
)
from tests.connectors.oss_server import OSSServer

pytestmark = pytest.mark.oss


def oss_config(server: OSSServer, tmp_path: Path, **conf: object) -> ConnectionConfig:
    return ConnectionConfig(
        "ALIYUNOSS",
        addr=server.endpoint,
        account=OSS_KEY_ID,
        password=OSS_SECRET,
        space=BUCKET,
        source_conf={"cache_dir": str(tmp_path / "cache"), **conf},
    )


class TestOSSConformance(ObjectStoreConformance):
    @pytest.fixture(params=["parquet", "csv", "jsonl"])
    def object_format(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def config(self, oss: OSSServer, tmp_path: Path) -> ConnectionConfig:  # noqa: F811
        return oss_config(oss, tmp_path)


class TestOSSBehaviour(ObjectStoreBehaviour):
    @pytest.fixture
    def config(self, oss: OSSServer, tmp_path: Path) -> ConnectionConfig:  # noqa: F811
        return oss_config(oss, tmp_path)

    @pytest.fixture
    def faults(self, oss: OSSServer) -> Faults:  # noqa: F811
        return ServerFaults(oss)


# -- ALIYUNOSS only -----------------------------------------------------------------------------


@pytest.fixture
def store(oss: OSSServer, tmp_path: Path) -> OSSConnector:  # noqa: F811
    conn = open_connector(oss_config(oss, tmp_path))
    assert isinstance(conn, OSSConnector)
    return conn


async def test_multipart_commit_is_atomic_for_readers(oss: OSSServer, tmp_path: Path) -> None:  # noqa: F811
    conn = open_connector(oss_config(oss, tmp_path, part_size=1, multipart_threshold=1))
    key, fresh = fresh_key("parquet"), fresh_key("parquet")
    big = pd.DataFrame({"id": np.arange(60_000), "x": np.random.default_rng(3).random(60_000)})
    async with conn:
        await conn.write(sample_frame(10), key, mode="replace")
        gate = oss.hold("CompleteMultipartUpload")
        try:
            commits = [asyncio.ensure_future(conn.write(big, k, mode="replace")) for k in (key, fresh)]
            for _ in range(1_000):  # bounded: until both uploads wait at their complete call
                if oss.held["CompleteMultipartUpload"] == 2 or any(c.done() for c in commits):
                    break
                await asyncio.sleep(0.01)
            assert oss.held["CompleteMultipartUpload"] == 2 and oss.counts["UploadPart"] >= 8
            # every part is stored; readers still see the old object, or nothing at all
            assert_same_rows(joined(await collect(conn.read(key))), sample_frame(10))
            with pytest.raises(TargetNotFound):
                await conn.stat_object(fresh)
        finally:
            gate.set()
        assert await asyncio.gather(*commits) == [60_000, 60_000]
        for k in (key, fresh):
            pd.testing.assert_frame_equal(joined(await collect(conn.read(k))), big)
    assert not oss.uploads


async def test_too_small_part_is_request_rejected(store: OSSConnector) -> None:
    key = fresh_key("bin")
    async with store:
        upload_id = await store.call("writing", key, store._mp_create, key)
        parts = [
            (n, await store.call("writing", key, store._mp_part, key, upload_id, n, b"small")) for n in (1, 2)
        ]
        with pytest.raises(RequestRejected, match="EntityTooSmall"):
            await store.call("writing", key, store._mp_complete, key, upload_id, parts)
        await store.call("writing", key, store._mp_abort, key, upload_id)


@pytest.mark.parametrize(
    ("key_id", "secret", "code"),
    [
        ("no-such-key-id", OSS_SECRET, "InvalidAccessKeyId"),
        (OSS_KEY_ID, "wrong-secret-123", "SignatureDoesNotMatch"),
    ],
)
@pytest.mark.parametrize("auth_version", ["v1", "v4"])
async def test_wrong_credentials_are_authentication_failed(
    oss: OSSServer,  # noqa: F811
    tmp_path: Path,
    key_id: str,
    secret: str,
    code: str,
    auth_version: str,
) -> None:
    config = replace(oss_config(oss, tmp_path, auth_version=auth_version), account=key_id, password=secret)
    async with open_connector(config) as conn:
        with pytest.raises(AuthenticationFailed) as info:
            await conn.ping()
        with pytest.raises(AuthenticationFailed):
            await conn.stat_object("any/key.csv")  # a HEAD: the code comes from x-oss-err
    text = str(info.value)
    assert code in text and "\n" not in text and secret not in text and OSS_SECRET not in text


async def test_forbidden_operation_is_permission_denied(oss: OSSServer, tmp_path: Path) -> None:  # noqa: F811
    oss.credentials["reader-key"] = "reader-secret"
    oss.allowed_ops["reader-key"] = {"GetObject", "HeadObject", "ListObjectsV2"}
    key = fresh_key("csv")
    reader = open_connector(
        replace(oss_config(oss, tmp_path), account="reader-key", password="reader-secret")
    )
    async with open_connector(oss_config(oss, tmp_path)) as writer:
        await writer.write(sample_frame(5), key, mode="replace")
    async with reader:
        assert_same_rows(joined(await collect(reader.read(key))), sample_frame(5))
        with pytest.raises(PermissionDenied) as info:
            await reader.write(sample_frame(5), key, mode="replace")
    assert "grant" in str(info.value) and "reader-secret" not in str(info.value)


async def test_auth_v4_roundtrip(oss: OSSServer, tmp_path: Path) -> None:  # noqa: F811
    key = fresh_key("jsonl")
    async with open_connector(oss_config(oss, tmp_path, auth_version="v4", region="cn-shanghai")) as conn:
        await conn.write(sample_frame(50), key, mode="replace")
        got = joined(await collect(conn.read(key)))
    assert_same_rows(got, sample_frame(50))


async def test_empty_object_goes_up_chunked(store: OSSConnector, oss: OSSServer) -> None:  # noqa: F811
    key = fresh_key("bin")
    async with store:
        await store.put_object(key, b"")
        assert await store.get_object(key) == b""
        assert (await store.stat_object(key)).size == 0
    assert oss.chunked_bodies >= 1


async def test_large_object_reads_through_the_cache_in_parallel_ranges(
    oss: OSSServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    conf = {"direct_read_bytes": 0, "cache_part_size": 1 << 20, "cache_parallel": 4}
    conn = open_connector(oss_config(oss, tmp_path, **conf))
    df = pd.DataFrame({"id": np.arange(600_000), "x": np.random.default_rng(2).random(600_000)})
    key = fresh_key("parquet")
    async with conn:
        await conn.write(df, key, mode="replace")
        size = (await conn.stat_object(key)).size
        oss.reset_counts()
        oss.drop_after(600_000)  # one range connection drops mid-way: the cache asks again from there
        local = await conn.local_file(key)
        assert local.stat().st_size == size
        got = joined(await collect(conn.read(key)))  # the cached copy: no more GETs
    pd.testing.assert_frame_equal(got, df)
    ranges = list(oss.ranges)
    assert oss.counts["GetObject"] == len(ranges) >= 5  # >= 4 parts, plus the resumed one
    assert all(r.startswith("bytes=") for r in ranges) and len(set(ranges)) == len(ranges)


async def test_endpoint_as_host_port_and_url(oss: OSSServer, tmp_path: Path) -> None:  # noqa: F811
    key = fresh_key("csv")
    by_host = ConnectionConfig(
        "ALIYUNOSS",
        addr="127.0.0.1",
        port=oss.port,
        account=OSS_KEY_ID,
        password=OSS_SECRET,
        space=BUCKET,
        source_conf={"scheme": "http", "cache_dir": str(tmp_path)},
    )
    async with open_connector(by_host) as conn:
        await conn.write(sample_frame(20), key, mode="replace")
    conn, target = open_url(f"oss://{OSS_KEY_ID}:{OSS_SECRET}@{BUCKET}/{key}?endpoint={oss.endpoint}")
    async with conn:
        got = joined(await collect(conn.read(target)))
    assert_same_rows(got, sample_frame(20))


# -- the test server itself, with the plain oss2 SDK --------------------------------------------


def test_server_speaks_oss_to_oss2(oss: OSSServer, tmp_path: Path) -> None:  # noqa: F811
    import oss2

    bucket = oss2.Bucket(oss2.Auth(OSS_KEY_ID, OSS_SECRET), oss.endpoint, BUCKET)
    prefix = f"srv/{uuid.uuid4().hex[:8]}/"
    for name in ("a/1", "a/2", "b", "c d+e"):
        bucket.put_object(prefix + name, name.encode() * 3)
    # list v1: marker paging, delimiter, url encoding
    first = bucket.list_objects(prefix=prefix, delimiter="/", max_keys=2)
    assert first.prefix_list == [prefix + "a/"] and [o.key for o in first.object_list] == [prefix + "b"]
    rest = bucket.list_objects(prefix=prefix, delimiter="/", marker=first.next_marker, max_keys=2)
    assert [o.key for o in rest.object_list] == [prefix + "c d+e"] and not rest.is_truncated
    # list v2: start-after, continuation tokens
    keys = [o.key for o in oss2.ObjectIteratorV2(bucket, prefix=prefix, max_keys=1)]
    assert keys == [prefix + n for n in ("a/1", "a/2", "b", "c d+e")]
    after = bucket.list_objects_v2(prefix=prefix, start_after=prefix + "a/2")
    assert [o.key for o in after.object_list] == [prefix + "b", prefix + "c d+e"]
    # ranges: closed, open, suffix
    assert bucket.get_object(prefix + "b", byte_range=(1, 1)).read() == b"b"
    assert bucket.get_object(prefix + "c d+e", byte_range=(12, None)).read() == b"d+e"
    assert bucket.get_object(prefix + "c d+e", byte_range=(None, 4)).read() == b" d+e"
    # resumable_upload asks ListParts first, then uploads parts of >= 100 KB
    data = os.urandom(350 * 1024)
    (tmp_path / "big").write_bytes(data)
    store = oss2.ResumableStore(root=str(tmp_path))
    oss2.resumable_upload(
        bucket,
        prefix + "big",
        str(tmp_path / "big"),
        store=store,
        multipart_threshold=1,
        part_size=100 * 1024,
    )
    assert bucket.get_object(prefix + "big").read() == data and oss.counts["ListParts"] >= 1
    # errors: OSS codes in the body, and in x-oss-err for HEAD
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.head_object(prefix + "missing")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        oss2.Bucket(oss2.Auth(OSS_KEY_ID, OSS_SECRET), oss.endpoint, "no-such-bucket").get_object("k")
    with pytest.raises(oss2.exceptions.AccessDenied):
        oss2.Bucket(oss2.AnonymousAuth(), oss.endpoint, BUCKET).get_object(prefix + "b")


# -- real Aliyun OSS (opt-in) -------------------------------------------------------------------

REAL_OSS_ENV = (
    "ATOM_TEST_OSS_ENDPOINT",
    "ATOM_TEST_OSS_BUCKET",
    "ATOM_TEST_OSS_KEY_ID",
    "ATOM_TEST_OSS_KEY_SECRET",
)


@pytest.mark.skipif(
    not all(os.environ.get(name) for name in REAL_OSS_ENV),
    reason="real Aliyun OSS test: set " + ", ".join(REAL_OSS_ENV) + " to run it",
)
async def test_real_oss_roundtrip(tmp_path: Path) -> None:
    env = {name: os.environ[name] for name in REAL_OSS_ENV}
    config = ConnectionConfig(
        "ALIYUNOSS",
        addr=env["ATOM_TEST_OSS_ENDPOINT"],
        account=env["ATOM_TEST_OSS_KEY_ID"],
        password=env["ATOM_TEST_OSS_KEY_SECRET"],
        space=env["ATOM_TEST_OSS_BUCKET"],
        source_conf={"cache_dir": str(tmp_path), "region": os.environ.get("ATOM_TEST_OSS_REGION", "")},
    )
    prefix = f"atom-test/{uuid.uuid4().hex[:12]}/"
    conn = open_connector(config)
    assert isinstance(conn, OSSConnector)
    async with conn:
        try:
            await conn.ping()
            await conn.write(sample_frame(), prefix + "data.parquet", mode="replace")
            await conn.write(sample_frame(100, start=1_000), prefix + "data.parquet", mode="append")
            got = joined(
                await collect(conn.read(prefix + "data.parquet", ReadOptions(paginate_read_num=300)))
            )
            assert_same_rows(got, sample_frame(1_100))
            assert [i.path async for i in conn.list_objects(prefix)] == [prefix + "data.parquet"]
        finally:
            async for info in conn.list_objects(prefix):
                await conn.delete_object(info.path)
