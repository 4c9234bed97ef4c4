"""S3 connector against moto_server: the conformance suite per format, plus S3-specific behaviour."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectors import ConnectionConfig, ReadOptions, open_connector
from connectors.errors import (
    AuthenticationFailed,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)
from connectors.registry import open_url
from connectors.s3 import S3Connector
from tests.connectors.conformance import assert_same_rows, collect, joined, sample_frame
from tests.connectors.object_behaviour import ObjectStoreBehaviour, ObjectStoreConformance
from tests.connectors.object_fixtures import (  # noqa: F401 - fixtures
    BUCKET,
    S3_KEY_ID,
    S3_SECRET,
    FaultProxy,
    Faults,
    ProxyFaults,
    free_port,
    fresh_key,
    moto_auth,
    moto_server,
    s3_client,
    s3_proxy,
)

pytestmark = pytest.mark.s3


def s3_config(endpoint: str, tmp_path: Path, **conf: object) -> ConnectionConfig:
    return ConnectionConfig(
        "S3",
        addr=endpoint,
        account=S3_KEY_ID,
        password=S3_SECRET,
        space=BUCKET,
        source_conf={"cache_dir": str(tmp_path / "cache"), **conf},
    )


class TestS3Conformance(ObjectStoreConformance):
    @pytest.fixture(params=["parquet", "csv", "jsonl", "pkl"])
    def object_format(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def config(self, moto_server: str, tmp_path: Path) -> ConnectionConfig:  # noqa: F811
        return s3_config(moto_server, tmp_path)


class TestS3Behaviour(ObjectStoreBehaviour):
    @pytest.fixture
    def config(self, s3_proxy: FaultProxy, tmp_path: Path) -> ConnectionConfig:  # noqa: F811
        return s3_config(s3_proxy.endpoint, tmp_path)

    @pytest.fixture
    def faults(self, s3_proxy: FaultProxy, moto_server: str) -> Faults:  # noqa: F811
        return ProxyFaults(s3_proxy, moto_server)


# -- S3 only ------------------------------------------------------------------------------------


@pytest.fixture
def s3(moto_server: str, tmp_path: Path) -> S3Connector:  # noqa: F811
    conn = open_connector(s3_config(moto_server, tmp_path))
    assert isinstance(conn, S3Connector)
    return conn


@pytest.mark.slow  # moto stores ~150 objects/s: the 1 001 keys take ~7 s to create
async def test_listing_pages_over_more_than_1000_keys(
    s3: S3Connector,
    s3_proxy: FaultProxy,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = f"many/{uuid.uuid4().hex[:8]}/"
    keys = [f"{prefix}{i:05d}.bin" for i in range(1_001)]
    client = s3_client(s3.config.addr)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=BUCKET, Key=k, Body=b"x"), keys))
    proxied = open_connector(s3_config(s3_proxy.endpoint, tmp_path))
    async with proxied:
        listed = [info async for info in proxied.list_objects(prefix)]
    assert [i.path for i in listed] == keys and all(i.size == 1 for i in listed)
    lists = [r for r in s3_proxy.requests if b"list-type=2" in r]
    assert len(lists) == 2 and b"continuation-token=" in lists[1]


async def test_wrong_credentials_and_missing_permissions(moto_server: str, tmp_path: Path) -> None:  # noqa: F811
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )
    user = f"nobody-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    cases = {
        "unknown-key": (AuthenticationFailed, "AKIAUNKNOWN000000000", "whatever-secret-1"),
        "wrong-secret": (AuthenticationFailed, key["AccessKeyId"], "wrong-secret-value-2"),
        "no-policy": (PermissionDenied, key["AccessKeyId"], key["SecretAccessKey"]),
    }
    with moto_auth(moto_server):
        for name, (error, key_id, secret) in cases.items():
            conn = open_connector(replace(s3_config(moto_server, tmp_path), account=key_id, password=secret))
            async with conn:
                with pytest.raises(error) as info:
                    await conn.get_object("some/key.bin")
                with pytest.raises(error):
                    await conn.ping()
            text = str(info.value)
            assert "\n" not in text and secret not in text, (name, text)
            assert ("account" in text) if error is AuthenticationFailed else ("grant" in text)


async def test_unreachable_endpoint_is_source_unavailable(tmp_path: Path) -> None:
    port = free_port()
    conn = open_connector(s3_config(f"http://127.0.0.1:{port}", tmp_path, connect_timeout=1))
    async with conn:
        with pytest.raises(SourceUnavailable) as info:
            await conn.ping()
        with pytest.raises(SourceUnavailable, match="gave up after 1 retries"):
            await collect(conn.read("x/data.csv", ReadOptions(retries=1, retry_backoff_s=0.01)))
    assert "\n" not in str(info.value) and S3_SECRET not in str(info.value) and str(port) in str(info.value)


async def test_endpoint_as_host_port_and_url(moto_server: str, tmp_path: Path) -> None:  # noqa: F811
    port = int(moto_server.rsplit(":", 1)[1])
    key = fresh_key("csv")
    by_host = open_connector(
        ConnectionConfig(
            "S3",
            addr="127.0.0.1",
            port=port,
            account=S3_KEY_ID,
            password=S3_SECRET,
            space=BUCKET,
            source_conf={"scheme": "http", "cache_dir": str(tmp_path)},
        )
    )
    async with by_host:
        await by_host.write(sample_frame(20), key, mode="replace")
    conn, target = open_url(f"s3://{S3_KEY_ID}:{S3_SECRET}@{BUCKET}/{key}?endpoint={moto_server}")
    async with conn:
        got = joined(await collect(conn.read(target)))
    assert target == key
    assert_same_rows(got, sample_frame(20))
    assert S3_SECRET not in repr(conn.config) and S3_SECRET not in conn.config.describe()


async def test_unfinished_multipart_upload_is_invisible(s3: S3Connector) -> None:
    key, other = fresh_key("bin"), fresh_key("bin")
    big = os.urandom(S3Connector.min_part_size)
    async with s3:
        await s3.put_object(key, b"old")
        upload_ids = []
        for name in (key, other):
            upload_id = await s3.call("writing", name, s3._mp_create, name)
            parts = [(1, await s3.call("writing", name, s3._mp_part, name, upload_id, 1, big))]
            parts.append((2, await s3.call("writing", name, s3._mp_part, name, upload_id, 2, b"tail")))
            upload_ids.append((name, upload_id, parts))
        # parts are up, nothing is complete: readers see the old object, or nothing
        assert await s3.get_object(key) == b"old"
        with pytest.raises(TargetNotFound):
            await s3.stat_object(other)
        for name, upload_id, parts in upload_ids:
            await s3.call("writing", name, s3._mp_complete, name, upload_id, parts)
        assert await s3.get_object(key) == big + b"tail"
        assert (await s3.stat_object(other)).size == len(big) + 4


async def test_too_small_part_is_request_rejected(s3: S3Connector) -> None:
    key = fresh_key("bin")
    async with s3:
        upload_id = await s3.call("writing", key, s3._mp_create, key)
        parts = [(n, await s3.call("writing", key, s3._mp_part, key, upload_id, n, b"small")) for n in (1, 2)]
        with pytest.raises(RequestRejected, match="EntityTooSmall"):
            await s3.call("writing", key, s3._mp_complete, key, upload_id, parts)
        await s3.call("writing", key, s3._mp_abort, key, upload_id)


async def test_large_object_reads_through_the_cache_in_parallel_ranges(
    s3_proxy: FaultProxy,  # noqa: F811
    tmp_path: Path,
) -> None:
    conf = {"direct_read_bytes": 0, "cache_part_size": 1 << 20, "cache_parallel": 4}
    conn = open_connector(s3_config(s3_proxy.endpoint, tmp_path, **conf))
    df = pd.DataFrame({"id": np.arange(600_000), "x": np.random.default_rng(1).random(600_000)})
    key = fresh_key("parquet")
    async with conn:
        await conn.write(df, key, mode="replace")
        s3_proxy.drop_after(600_000, f"GET /{BUCKET}/{key}".encode())  # one range connection drops
        got = joined(await collect(conn.read(key, ReadOptions(paginate_read_num=50_000))))
        again = joined(await collect(conn.read(key)))  # the cached copy: no new GET
    pd.testing.assert_frame_equal(got, df)
    pd.testing.assert_frame_equal(again, df)
    ranges = [r for r in s3_proxy.requests if r.startswith(f"GET /{BUCKET}/{key}".encode())]
    spans = [r.lower().split(b"\r\nrange: bytes=", 1)[1].split(b"\r\n", 1)[0] for r in ranges]
    assert len(spans) >= 5  # >= 4 parts, plus the one resumed after the drop ...
    assert len(set(spans)) == len(spans)  # ... from the first byte that did not land
