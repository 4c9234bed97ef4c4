"""FILE connector: the conformance suite per format, plus file-specific behaviour."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from connectors import ConnectionConfig, ReadOptions, open_connector
from connectors.base import RUN_COLUMN, WriteOptions
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


class TestFileDatasetConformance(TestFileConformance):
    """The same suite against directory datasets (`sets/train.csv/` holds part files)."""

    @pytest.fixture(params=FORMATS)
    def target(self, request: pytest.FixtureRequest) -> str:
        return f"sets/train.{request.param}/"


def _tmp_leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


async def test_csv_streams_in_pages_of_the_page_size(files: FileConnector, base: Path) -> None:
    await files.write(sample_frame(1_050), "big.csv")
    reader = files.read("big.csv", ReadOptions(paginate_read_num=100, async_load=False))
    batches = await collect(reader)
    assert [len(b) for b in batches] == [100] * 10 + [50]
    assert reader.stats.pages_fetched == 11
    assert reader.cursor == {"rows": 1_050, "offset": (base / "big.csv").stat().st_size, "offset_rows": 1_050}


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
    conn = open_connector(ConnectionConfig("FILE", source_conf={"root": str(tmp_path / "x")}))
    await conn.write(sample_frame(5), str(path))  # absolute, but under the root
    assert path.exists()
    got = joined(await collect(conn.read(path.as_uri())))
    assert_same_rows(got, sample_frame(5))
    via_url = open_connector(f"file://{tmp_path}/x")
    assert_same_rows(joined(await collect(via_url.read("abs.parquet"))), sample_frame(5))
    elsewhere = open_connector(ConnectionConfig("FILE", source_conf={"root": str(tmp_path / "elsewhere")}))
    with pytest.raises(PermissionDenied, match="outside the connection's root"):
        elsewhere.read(path.as_uri())


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


@pytest.mark.parametrize("mode", ["merge", "overwrite"])
async def test_unknown_write_mode(files: FileConnector, mode: Any) -> None:
    with pytest.raises(ConnectorConfigError, match="write mode"):
        await files.write(sample_frame(1), "x.csv", mode=mode)


# -- cursors: csv/jsonl resume by byte offset ----------------------------------------------------


@pytest.mark.parametrize("ext", ["csv", "jsonl"])
async def test_text_formats_resume_by_byte_offset_with_quoted_newlines(
    files: FileConnector, base: Path, ext: str
) -> None:
    df = sample_frame(400)
    df["name"] = [f'row {i}, "q"\nline two' if i % 7 == 0 else f"row-{i}" for i in range(400)]
    await files.write(df, f"q.{ext}")
    reader = files.read(f"q.{ext}", ReadOptions(paginate_read_num=64))
    head = []
    async with reader:
        async for batch in reader:
            head.append(batch)
            if len(head) == 3:
                break
    cursor = reader.cursor
    assert cursor["rows"] == 192 and cursor["offset_rows"] == 192 and cursor["offset"] > 0
    raw = (base / f"q.{ext}").read_bytes()
    assert raw[cursor["offset"] - 1 : cursor["offset"]] == b"\n"  # a record boundary
    tail = await collect(files.read(f"q.{ext}", ReadOptions(paginate_read_num=64, resume_from=cursor)))
    got = joined(head + tail)
    assert list(got["name"]) == list(df["name"]) and list(got["id"]) == list(range(400))


async def test_an_int_cursor_still_resumes_text_files(files: FileConnector) -> None:
    await files.write(sample_frame(100), "i.csv")
    got = joined(await collect(files.read("i.csv", ReadOptions(resume_from=90))))
    assert list(got["id"]) == list(range(90, 100))


async def test_csv_without_trailing_newline_and_blank_lines(files: FileConnector, base: Path) -> None:
    (base / "n.csv").write_text("a,b\n1,x\n\n2,y\n3,z")
    batches = await collect(files.read("n.csv", ReadOptions(paginate_read_num=2)))
    assert [len(b) for b in batches] == [2, 1]
    assert list(joined(batches)["a"]) == [1, 2, 3]


# -- sinks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", FORMATS)
async def test_sink_appends_many_batches_to_an_existing_file(
    files: FileConnector, base: Path, ext: str
) -> None:
    await files.write(sample_frame(100), f"s.{ext}")
    parts = [sample_frame(50, start=100 + 50 * i) for i in range(6)]
    async with files.sink(f"s.{ext}", WriteOptions(mode="append")) as sink:
        for part in parts:
            await sink.write(part)
        assert _tmp_leftovers(base)  # staged beside the target, nothing visible yet
        assert_same_rows(joined(await collect(files.read(f"s.{ext}"))), sample_frame(100))
    assert sink.rows == 300
    assert_same_rows(joined(await collect(files.read(f"s.{ext}"))), sample_frame(400))
    assert _tmp_leftovers(base) == []


async def test_parquet_append_streams_row_groups(files: FileConnector, base: Path) -> None:
    import pyarrow.parquet as pq

    sample_frame(1_000).to_parquet(base / "rg.parquet", index=False, row_group_size=250)
    async with files.sink("rg.parquet", WriteOptions(mode="append")) as sink:
        for i in range(3):
            await sink.write(sample_frame(100, start=1_000 + 100 * i))
    meta = pq.ParquetFile(base / "rg.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [250] * 4 + [100] * 3


@pytest.mark.parametrize("ext", FORMATS)
async def test_upsert_replaces_rows_by_compound_key(files: FileConnector, ext: str) -> None:
    df = sample_frame(20)
    df["part"] = [i % 2 for i in range(20)]
    await files.write(df, f"u.{ext}")
    change = pd.DataFrame(
        {"id": [3, 4, 99], "value": [-1.0, -2.0, -3.0], "name": ["a", "b", "c"], "part": [1, 1, 0]}
    )
    await files.write(change, f"u.{ext}", mode="upsert", key=["id", "part"])
    got = joined(await collect(files.read(f"u.{ext}"))).sort_values("id", ignore_index=True)
    # (3, 1) matched and is replaced; (4, 1) did not exist (4 is part 0): inserted beside (4, 0)
    assert len(got) == 22
    assert got[got["id"] == 3]["value"].tolist() == [-1.0]
    assert sorted(got[got["id"] == 4]["value"].tolist()) == [-2.0, 1.0]


async def test_run_key_column_is_added_to_an_older_file(files: FileConnector, base: Path) -> None:
    await files.write(sample_frame(10), "r.csv")
    await files.write(sample_frame(5, start=10), "r.csv", run_key="job-7")
    await files.write(sample_frame(5, start=10), "r.csv", run_key="job-7")  # the retry
    got = joined(await collect(files.read("r.csv")))
    assert len(got) == 15
    assert got[RUN_COLUMN].fillna("").tolist() == [""] * 10 + ["job-7"] * 5
    await files.write(sample_frame(2, start=50), "r.csv")  # a plain append keeps the column
    assert len(joined(await collect(files.read("r.csv")))) == 17


async def test_upsert_key_must_be_in_the_rows(files: FileConnector) -> None:
    with pytest.raises(ConnectorConfigError, match="key column"):
        await files.write(sample_frame(3), "k.csv", mode="upsert", key="nope")


async def test_replace_with_no_rows_empties_the_file(files: FileConnector, base: Path) -> None:
    await files.write(sample_frame(10), "e.parquet")
    async with files.sink("e.parquet", WriteOptions(mode="replace")):
        pass
    assert await collect(files.read("e.parquet")) == []


async def test_aborted_sink_of_a_new_file_leaves_nothing(files: FileConnector, base: Path) -> None:
    sink = files.sink("fresh/new.csv", WriteOptions())
    await sink.write(sample_frame(10))
    await sink.abort()
    assert not (base / "fresh" / "new.csv").exists()
    assert _tmp_leftovers(base / "fresh") == []


# -- directory datasets ---------------------------------------------------------------------------


async def test_dataset_appends_write_parts_and_run_keys_replace_their_part(
    files: FileConnector, base: Path
) -> None:
    await files.write(sample_frame(10), "ds.csv/")
    await files.write(sample_frame(10, start=10), "ds.csv/", run_key="day-1")
    await files.write(sample_frame(10, start=10), "ds.csv/", run_key="day-1")
    await files.write(sample_frame(10, start=20), "ds.csv/", run_key="day/2 weird")
    names = sorted(p.name for p in (base / "ds.csv").iterdir())
    assert len(names) == 3 and "part-day-1.csv" in names
    assert all(n.startswith("part-") for n in names)
    got = joined(await collect(files.read("ds.csv/", ReadOptions(paginate_read_num=7))))
    assert sorted(got["id"]) == list(range(30))


async def test_dataset_pages_span_parts_and_resume_skips_parts(files: FileConnector, base: Path) -> None:
    (base / "d.parquet").mkdir()
    for i in range(4):
        sample_frame(25, start=25 * i).to_parquet(base / "d.parquet" / f"part-{i}.parquet", index=False)
    (base / "d.parquet" / "_SUCCESS").write_text("")
    reader = files.read("d.parquet/", ReadOptions(paginate_read_num=30))
    head = []
    async with reader:
        async for batch in reader:
            head.append(batch)
            if len(head) == 2:
                break
    assert [len(b) for b in head] == [30, 30]
    assert reader.cursor == {"rows": 60, "part": "part-2.parquet", "part_rows": 50}
    tail = await collect(
        files.read("d.parquet/", ReadOptions(paginate_read_num=30, resume_from=reader.cursor))
    )
    assert [len(b) for b in tail] == [30, 10]
    assert list(joined(head + tail)["id"]) == list(range(100))


async def test_directory_without_slash_and_missing_dataset(files: FileConnector, base: Path) -> None:
    (base / "dir.csv").mkdir()
    with pytest.raises(ConnectorConfigError, match="end the target with /"):
        await collect(files.read("dir.csv"))
    with pytest.raises(TargetNotFound, match="none.csv"):
        await collect(files.read("none.csv/"))


# -- objects --------------------------------------------------------------------------------------


async def test_stat_list_download_upload(files: FileConnector, base: Path, tmp_path: Path) -> None:
    await files.put_object("m/a.bin", b"aaa")
    await files.put_object("m/b/c.bin", b"cc")
    info = await files.stat_object("m/a.bin")
    assert (info.path, info.size) == ("m/a.bin", 3) and info.etag and info.modified
    listed = [o.path async for o in files.list_objects("m/")]
    assert listed == ["m/a.bin", "m/b/c.bin"]
    dest = tmp_path / "dl" / "a.bin"
    await files.download("m/a.bin", str(dest))
    assert dest.read_bytes() == b"aaa"
    src = tmp_path / "up.bin"
    src.write_bytes(b"up")
    uri = await files.upload(str(src), "m/up.bin")
    assert uri.endswith("m/up.bin") and (base / "m" / "up.bin").read_bytes() == b"up"
    with pytest.raises(TargetNotFound):
        await files.stat_object("m/none.bin")


async def test_formats_module_encodes_and_writes(tmp_path: Path) -> None:
    from connectors._formats import detect_format, encode_frame, file_pages, write_frame_file

    assert detect_format("s3://b/x/train.parquet") == "parquet"
    assert detect_format("https://h/a.csv.gz?sig=1") == "csv"
    for fmt in ("csv", "parquet", "pickle", "json", "jsonl"):
        (tmp_path / f"a.{fmt}").write_bytes(encode_frame(sample_frame(5), fmt))
        write_frame_file(
            tmp_path / f"b.{fmt}", sample_frame(5, start=5), fmt, append_to=tmp_path / f"a.{fmt}"
        )
        pages = [p async for p in file_pages(tmp_path / f"b.{fmt}", fmt, page_rows=4, cursor=None)]
        assert [len(p) for p in pages] == [4, 4, 2]
        assert_same_rows(joined(pages), sample_frame(10))
