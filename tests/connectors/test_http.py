"""HTTP(S) sources: `HttpRangeSource` against the test server, and FILE reads of http:// targets."""

from __future__ import annotations

import http.client
from pathlib import Path

import pandas as pd
import pytest

from connectors import ConnectionConfig, ReadOptions, open_connector
from connectors.cache import FileCache, ObjectChanged
from connectors.errors import ConnectorConfigError, PermissionDenied, TargetNotFound
from connectors.files import FileConnector
from connectors.http import HttpRangeSource, display_url
from tests.connectors.conformance import assert_same_rows, collect, joined, sample_frame
from tests.connectors.http_server import FileServer

pytestmark = pytest.mark.http


@pytest.fixture
def web(server: FileServer, tmp_path: Path) -> FileConnector:
    """A FILE connection whose base is the test server, with its own cache directory."""
    conn = open_connector(
        ConnectionConfig("FILE", addr=server.url("data/"), source_conf={"cache_dir": str(tmp_path / "cache")})
    )
    assert isinstance(conn, FileConnector)
    return conn


def collect_range(source: HttpRangeSource, start: int, end: int) -> bytes:
    out = bytearray()

    def write_at(offset: int, chunk: memoryview) -> None:
        assert offset == start + len(out)
        out.extend(chunk)

    source.read_range(start, end, write_at)
    return bytes(out)


def test_stat_reports_size_validator_and_ranges(server: FileServer, served: Path) -> None:
    (served / "x.bin").write_bytes(b"0123456789")
    server.etags["/x.bin"] = '"abc"'
    source = HttpRangeSource(server.url("x.bin"))
    remote = source.stat()
    assert (remote.size, remote.validator, remote.ranges) == (10, '"abc"', True)
    assert collect_range(source, 3, 7) == b"3456"
    assert collect_range(source, 0, 10) == b"0123456789"
    source.close()


def test_test_server_serves_suffix_and_open_ranges(server: FileServer, served: Path) -> None:
    (served / "s.bin").write_bytes(b"abcdefghij")
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    for spec, status, body in [("bytes=-3", 206, b"hij"), ("bytes=7-", 206, b"hij"), ("bytes=20-", 416, b"")]:
        conn.request("GET", "/s.bin", headers={"Range": spec})
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (status, body)
    conn.close()


def test_if_range_mismatch_raises_object_changed(server: FileServer, served: Path) -> None:
    (served / "v.bin").write_bytes(b"x" * 100)
    server.etags["/v.bin"] = '"one"'
    source = HttpRangeSource(server.url("v.bin"))
    source.stat()
    server.etags["/v.bin"] = '"two"'  # the object changes between stat and the range request
    with pytest.raises(ObjectChanged, match="changed"):
        collect_range(source, 10, 20)
    source.close()


def test_no_range_server_is_detected(served: Path) -> None:
    (served / "p.bin").write_bytes(b"p" * 1000)
    with FileServer(served, ranges=False) as plain:
        source = HttpRangeSource(plain.url("p.bin"))
        remote = source.stat()
        assert remote.size == 1000 and not remote.ranges
        assert collect_range(source, 0, 1000) == b"p" * 1000
        assert collect_range(source, 900, 1000) == b"p" * 100  # skips ahead in the single stream
        source.close()


def test_display_url_drops_secrets() -> None:
    url = "https://bob:pw@host:8443/a/b.csv?X-Amz-Signature=abc&X-Amz-Credential=k&part=2&sig=zz"
    assert display_url(url) == "https://host:8443/a/b.csv?part=2"
    assert "pw" not in repr(HttpRangeSource(url))


def test_non_http_url_is_refused() -> None:
    with pytest.raises(ConnectorConfigError, match="not an http"):
        HttpRangeSource("ftp://host/x")


async def test_file_connector_reads_csv_and_parquet_over_http(
    web: FileConnector, server: FileServer, served: Path
) -> None:
    (served / "data").mkdir()
    sample_frame(1_000).to_csv(served / "data" / "train.csv", index=False)
    sample_frame(1_000).to_parquet(served / "data" / "train.parquet", index=False, row_group_size=300)
    for name in ("train.csv", "train.parquet"):
        batches = await collect(web.read(name, ReadOptions(paginate_read_num=256)))
        assert [len(b) for b in batches] == [256, 256, 256, 232]
        assert_same_rows(joined(batches), sample_frame(1_000))
    # the second read of the same object is a cache hit: no new GET
    gets = server.count("data/train.csv")
    assert_same_rows(joined(await collect(web.read(server.url("data/train.csv")))), sample_frame(1_000))
    assert server.count("data/train.csv") == gets


async def test_http_csv_read_resumes_from_the_cursor(web: FileConnector, served: Path) -> None:
    (served / "data").mkdir()
    sample_frame(500).to_csv(served / "data" / "r.csv", index=False)
    for op, rows, offset_rows in [(0, 200, 200), (50, 100, 100), (70, 140, None)]:
        reader = web.read("r.csv", ReadOptions(paginate_read_num=100, operator_read_num=op))
        head = []
        async with reader:
            async for batch in reader:
                head.append(batch)
                if len(head) == 2:
                    break
        cursor = reader.cursor
        assert cursor["rows"] == rows
        assert (cursor["offset_rows"] if cursor["offset"] else None) == offset_rows
        tail = await collect(web.read("r.csv", ReadOptions(paginate_read_num=100, resume_from=cursor)))
        assert_same_rows(joined(head + tail), sample_frame(500))


async def test_http_read_of_a_gzipped_csv(web: FileConnector, served: Path) -> None:
    (served / "data").mkdir()
    sample_frame(300).to_csv(served / "data" / "z.csv.gz", index=False)
    assert_same_rows(joined(await collect(web.read("z.csv.gz"))), sample_frame(300))


async def test_http_errors_and_refused_writes(web: FileConnector, server: FileServer, served: Path) -> None:
    with pytest.raises(TargetNotFound, match="nope.csv"):
        await collect(web.read("nope.csv"))
    server.status["/data/secret.csv"] = 403
    with pytest.raises(PermissionDenied, match="secret.csv"):
        await collect(web.read("secret.csv"))
    with pytest.raises(ConnectorConfigError, match="only read HTTP"):
        await web.write(sample_frame(3), "out.csv")
    with pytest.raises(ConnectorConfigError, match="only read HTTP"):
        await web.put_object("m.bin", b"x")


async def test_http_objects_stat_get_download(web: FileConnector, served: Path, tmp_path: Path) -> None:
    (served / "data").mkdir()
    (served / "data" / "model.bin").write_bytes(b"w" * 5000)
    info = await web.stat_object("model.bin")
    assert info.size == 5000 and info.etag
    assert await web.get_object("model.bin") == b"w" * 5000
    dest = tmp_path / "out" / "model.bin"
    assert await web.download("model.bin", str(dest)) == str(dest)
    assert dest.read_bytes() == b"w" * 5000
    await web.ping()


async def test_http_read_through_the_default_cache_root(
    server: FileServer, served: Path, tmp_path: Path
) -> None:
    from connectors.cache import default_cache

    default_cache(tmp_path / "agent-cache")  # what the runtime agent does with ATOM_CACHE_DIR
    sample_frame(10).to_csv(served / "d.csv", index=False)
    conn = open_connector(ConnectionConfig("FILE"))
    got = joined(await collect(conn.read(server.url("d.csv"))))
    assert_same_rows(got, sample_frame(10))
    assert FileCache(tmp_path / "agent-cache").entries()


def test_pandas_sees_an_ordinary_file(server: FileServer, served: Path, tmp_path: Path) -> None:
    sample_frame(50).to_parquet(served / "m.parquet", index=False)
    cache = FileCache(tmp_path / "c")
    try:
        with cache.fetch_sync(HttpRangeSource(server.url("m.parquet"))) as cached:
            assert_same_rows(pd.read_parquet(cached.path), sample_frame(50))
    finally:
        cache.close()
