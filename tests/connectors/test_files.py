"""FILE connector: the conformance suite per format, plus file-specific behaviour."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from connectors import ConnectionConfig, ReadOptions, open_connector
from connectors.errors import (
    BatchDecodeError,
    ConnectorConfigError,
    PermissionDenied,
    RequestRejected,
    TargetNotFound,
)
from connectors.files import FileConnector
from tests.connectors.conformance import ConnectorConformance, assert_same_rows, collect, joined, sample_frame

FORMATS = ["csv", "parquet", "pkl", "jsonl", "json"]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def files(base: Path) -> FileConnector:
    conn = open_connector(ConnectionConfig("FILE", addr=str(base)))
    assert isinstance(conn, FileConnector)
    return conn


class TestFileConformance(ConnectorConformance):
    @pytest.fixture(params=FORMATS)
    def target(self, request: pytest.FixtureRequest) -> str:
        return f"sets/train.{request.param}"

    @pytest.fixture
    def missing_target(self, target: str) -> str:
        return target.replace("train.", "missing.")

    @pytest.fixture
    def config(self, base: Path) -> ConnectionConfig:
        return ConnectionConfig("FILE", addr=str(base))


def _tmp_leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


async def test_csv_streams_in_pages_of_the_page_size(files: FileConnector, base: Path) -> None:
    await files.write(sample_frame(1_050), "big.csv")
    reader = files.read("big.csv", ReadOptions(paginate_read_num=100, async_load=False))
    batches = await collect(reader)
    assert [len(b) for b in batches] == [100] * 10 + [50]
    assert reader.stats.pages_fetched == 11
    assert reader.cursor == 1_050


async def test_csv_append_writes_no_second_header_and_aligns_columns(
    files: FileConnector, base: Path
) -> None:
    first = sample_frame(3)
    await files.write(first, "a.csv")
    second = sample_frame(2, start=3)[["name", "id", "value"]]  # other column order
    await files.write(second, "a.csv", mode="append")
    text = (base / "a.csv").read_text()
    assert text.count("id,value,name") == 1
    got = joined(await collect(files.read("a.csv")))
    assert_same_rows(got, sample_frame(5))


@pytest.mark.parametrize("ext", ["csv", "parquet", "pkl"])
async def test_append_with_other_columns_is_refused_and_file_kept(
    files: FileConnector, base: Path, ext: str
) -> None:
    await files.write(sample_frame(3), f"a.{ext}")
    before = (base / f"a.{ext}").read_bytes()
    with pytest.raises(RequestRejected, match="columns"):
        await files.write(pd.DataFrame({"other": [1]}), f"a.{ext}", mode="append")
    assert (base / f"a.{ext}").read_bytes() == before
    assert _tmp_leftovers(base) == []


async def test_failed_write_leaves_the_old_file_and_no_temp_file(files: FileConnector, base: Path) -> None:
    await files.write(sample_frame(10), "m.parquet")
    before = (base / "m.parquet").read_bytes()
    bad = pd.DataFrame({"id": [1, 2], "value": [object(), "x"], "name": ["a", "b"]})  # pyarrow cannot encode
    with pytest.raises(RequestRejected, match=r"m\.parquet"):
        await files.write(bad, "m.parquet", mode="replace")
    assert (base / "m.parquet").read_bytes() == before
    assert _tmp_leftovers(base) == []


async def test_labels_csv_format_and_explicit_data_format(files: FileConnector, base: Path) -> None:
    sample_frame(20).to_csv(base / "labels.txt", index=False)
    got = joined(await collect(files.read("labels.txt", ReadOptions(data_format="labelsCSV"))))
    assert_same_rows(got, sample_frame(20))
    with pytest.raises(ConnectorConfigError, match="dataFormat"):
        files.read("labels.txt")
    with pytest.raises(ConnectorConfigError, match="valid values"):
        files.read("labels.txt", ReadOptions(data_format="xlsx"))


async def test_gzip_csv_by_extension(files: FileConnector, base: Path) -> None:
    sample_frame(30).to_csv(base / "z.csv.gz", index=False)
    got = joined(await collect(files.read("z.csv.gz", ReadOptions(paginate_read_num=8))))
    assert_same_rows(got, sample_frame(30))


async def test_absolute_path_file_uri_and_root_from_source_conf(tmp_path: Path) -> None:
    path = tmp_path / "x" / "abs.parquet"
    conn = open_connector(ConnectionConfig("FILE", source_conf={"root": str(tmp_path / "elsewhere")}))
    await conn.write(sample_frame(5), str(path))
    assert path.exists()
    got = joined(await collect(conn.read(path.as_uri())))
    assert_same_rows(got, sample_frame(5))
    via_url = open_connector(f"file://{tmp_path}/x")
    assert_same_rows(joined(await collect(via_url.read("abs.parquet"))), sample_frame(5))


async def test_missing_file_names_the_path(files: FileConnector, base: Path) -> None:
    with pytest.raises(TargetNotFound, match=str(base / "nope.csv")):
        await collect(files.read("nope.csv"))


@pytest.mark.parametrize(
    ("name", "content"),
    [("bad.parquet", b"not a parquet file"), ("bad.pkl", b"\x80\x04garbage"), ("bad.json", b"{nope")],
)
async def test_corrupt_file_raises_batch_decode_error(
    files: FileConnector, base: Path, name: str, content: bytes
) -> None:
    (base / name).write_bytes(content)
    with pytest.raises(BatchDecodeError, match=name):
        await collect(files.read(name))


async def test_pickle_of_a_non_dataframe_is_refused(files: FileConnector, base: Path) -> None:
    pd.to_pickle({"not": "a frame"}, base / "d.pkl")
    with pytest.raises(BatchDecodeError, match="DataFrame"):
        await collect(files.read("d.pkl"))


async def test_empty_csv_yields_nothing_and_disposable_an_empty_frame(
    files: FileConnector, base: Path
) -> None:
    (base / "empty.csv").write_text("")
    assert await collect(files.read("empty.csv")) == []
    (base / "header.csv").write_text("a,b\n")
    [only] = await collect(files.read("header.csv", ReadOptions(disposable=True)))
    assert list(only.columns) == ["a", "b"] and len(only) == 0


async def test_parquet_resume_skips_whole_row_groups(files: FileConnector, base: Path) -> None:
    sample_frame(1_000).to_parquet(base / "rg.parquet", index=False, row_group_size=128)
    reader = files.read("rg.parquet", ReadOptions(paginate_read_num=100, resume_from=300))
    got = joined(await collect(reader))
    assert_same_rows(got, sample_frame(700, start=300))
    assert reader.cursor == 1_000


async def test_objects_stay_under_the_base_directory(files: FileConnector, base: Path) -> None:
    uri = await files.put_object("models/v1/model.bin", b"weights")
    assert uri == (base / "models/v1/model.bin").absolute().as_uri()
    assert (base / "models/v1/model.bin").read_bytes() == b"weights"
    assert _tmp_leftovers(base / "models/v1") == []
    with pytest.raises(PermissionDenied, match="outside"):
        await files.get_object("../secret")
    with pytest.raises(PermissionDenied):
        await files.put_object("/etc/passwd-copy", b"x")


async def test_written_file_keeps_the_umask_mode(files: FileConnector, base: Path) -> None:
    await files.write(sample_frame(2), "mode.csv")
    mask = os.umask(0)
    os.umask(mask)
    assert (base / "mode.csv").stat().st_mode & 0o777 == 0o666 & ~mask


async def test_ping_checks_the_base_directory(tmp_path: Path) -> None:
    await open_connector(ConnectionConfig("FILE", addr=str(tmp_path))).ping()
    with pytest.raises(TargetNotFound, match="does not exist"):
        await open_connector(ConnectionConfig("FILE", addr=str(tmp_path / "none"))).ping()
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConnectorConfigError, match="not a directory"):
        await open_connector(ConnectionConfig("FILE", addr=str(tmp_path / "f"))).ping()


@pytest.mark.parametrize("mode", ["upsert", "merge"])
async def test_unknown_write_mode(files: FileConnector, mode: Any) -> None:
    with pytest.raises(ConnectorConfigError, match="write mode"):
        await files.write(sample_frame(1), "x.csv", mode=mode)
