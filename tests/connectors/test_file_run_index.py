"""A plain single-file FILE sink is idempotent per run without a column in the user's file: its
run keys live in a hidden index beside it, so a run written twice leaves its rows once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
import pytest

from connectors import ConnectionConfig, open_connector
from connectors._run_index import index_path
from connectors.base import RUN_COLUMN, WriteOptions
from connectors.files import FileConnector

FORMATS = ["csv", "jsonl", "parquet"]


@pytest.fixture
def files(tmp_path: Path) -> FileConnector:
    conn = open_connector(ConnectionConfig("FILE", addr=str(tmp_path)))
    assert isinstance(conn, FileConnector)
    return conn


def rows(run: str, n: int = 400, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": range(start, start + n), "run": [run] * n, "score": [0.5] * n})


async def write(files: FileConnector, target: str, df: pd.DataFrame, run_key: str | None) -> None:
    sink = files.sink(target, WriteOptions(run_key=run_key, run_index=run_key is not None))
    for i in range(0, len(df), 150):  # several batches, as an agent flushes them
        await sink.write(df.iloc[i : i + 150])
    await sink.commit()


async def read(files: FileConnector, target: str) -> pd.DataFrame:
    frames = [page async for page in files.read(target)]
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_the_same_run_written_twice_leaves_its_rows_once(
    files: FileConnector, tmp_path: Path, fmt: str
) -> None:
    target = f"out/data.{fmt}"
    await write(files, target, rows("a"), "node#1")
    await write(files, target, rows("a"), "node#1")
    got = await read(files, target)
    assert len(got) == 400 and got["id"].nunique() == 400
    assert list(got.columns) == ["id", "run", "score"] and RUN_COLUMN not in got.columns
    index = json.loads(index_path(tmp_path / target).read_text())
    assert index["current"]["segments"] == [["node#1", 400]]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"data.{fmt}", f".data.{fmt}.atom-runs.json"]
    )  # no temp file left


@pytest.mark.parametrize("fmt", FORMATS)
async def test_two_runs_keep_both_and_an_interleaved_rerun_replaces_only_its_own(
    files: FileConnector, fmt: str
) -> None:
    target = f"data.{fmt}"
    await write(files, target, rows("a"), "n#1")
    await write(files, target, rows("b", start=1000), "n#2")
    both = await read(files, target)
    assert len(both) == 800 and both["id"].nunique() == 800
    await write(files, target, rows("a2", n=300, start=5000), "n#1")  # A, B, A again
    got = await read(files, target)
    assert len(got) == 700
    assert got["run"].tolist() == ["b"] * 400 + ["a2"] * 300  # B kept in place, A's new rows last
    assert got["id"].tolist() == list(range(1000, 1400)) + list(range(5000, 5300))
    await write(files, target, rows("b2", n=10, start=9000), "n#2")
    got = await read(files, target)
    assert got["run"].tolist() == ["a2"] * 300 + ["b2"] * 10


@pytest.mark.parametrize("fmt", FORMATS)
async def test_rows_already_in_the_file_are_kept_and_owned_by_no_run(
    files: FileConnector, tmp_path: Path, fmt: str
) -> None:
    target = f"data.{fmt}"
    await write(files, target, rows("before", n=25, start=-25), None)  # a plain append, no index
    assert not index_path(tmp_path / target).exists()
    await write(files, target, rows("a"), "n#1")
    await write(files, target, rows("a"), "n#1")
    got = await read(files, target)
    assert got["run"].tolist() == ["before"] * 25 + ["a"] * 400


async def test_a_file_changed_behind_the_index_is_counted_again(files: FileConnector, tmp_path: Path) -> None:
    target = "data.csv"
    await write(files, target, rows("a", n=5), "n#1")
    await write(files, target, rows("x", n=3, start=100), None)  # appended without the index
    await write(files, target, rows("a", n=5), "n#1")
    got = await read(files, target)
    # the stale index is not trusted: the 8 rows already there belong to no run and stay
    assert got["run"].tolist() == ["a"] * 5 + ["x"] * 3 + ["a"] * 5


async def test_without_a_run_key_a_plain_append_still_appends(files: FileConnector) -> None:
    await write(files, "data.csv", rows("a"), None)
    await write(files, "data.csv", rows("a"), None)
    assert len(await read(files, "data.csv")) == 800


async def test_an_aborted_sink_leaves_file_and_index_as_they_were(
    files: FileConnector, tmp_path: Path
) -> None:
    await write(files, "data.csv", rows("a", n=10), "n#1")
    before = (tmp_path / "data.csv").read_bytes(), index_path(tmp_path / "data.csv").read_bytes()
    sink = files.sink("data.csv", WriteOptions(run_key="n#1", run_index=True))
    await sink.write(rows("a", n=7))
    await sink.abort()
    after = (tmp_path / "data.csv").read_bytes(), index_path(tmp_path / "data.csv").read_bytes()
    assert before == after


async def test_two_sinks_of_one_run_committing_together_leave_one_copy(files: FileConnector) -> None:
    a = files.sink("data.csv", WriteOptions(run_key="n#1", run_index=True))
    b = files.sink("data.csv", WriteOptions(run_key="n#1", run_index=True))
    await a.write(rows("a", n=50))
    await b.write(rows("b", n=60))
    await asyncio.gather(a.commit(), b.commit())  # take turns under the directory lock
    got = await read(files, "data.csv")
    assert len(got) in (50, 60) and got["run"].nunique() == 1
