"""Per-source progress for heartbeats: rows read per source, and the row count where it is cheap to know."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from control.schemas import SourceSpec
from runtime_agent.sources import Connections, SourceReader


def _source(
    base: Path, name: str, target: str, *, fmt: str = "", page: int = 100, disposable: bool = False
) -> SourceSpec:
    return SourceSpec.model_validate(
        {
            "sourceName": name,
            "sourceType": "source",
            "operateExecute": target,
            "dataFormat": fmt,
            "paginateReadNum": page,
            "operatorReadNum": page,
            "disposable": disposable,
            "connection": {"connectName": "files", "connectType": "FILE", "connectAddr": str(base)},
        }
    )


async def test_parquet_total_is_known_before_the_first_batch(tmp_path: Path) -> None:
    pd.DataFrame({"x": range(1000)}).to_parquet(tmp_path / "big.parquet", row_group_size=100)
    pd.DataFrame({"x": range(250)}).to_csv(tmp_path / "small.csv", index=False)
    pd.DataFrame({"x": range(30)}).to_parquet(tmp_path / "blob.bin")
    big, small, blob = (
        _source(tmp_path, "big", "big.parquet"),
        _source(tmp_path, "small", "small.csv"),
        _source(tmp_path, "blob", "blob.bin", fmt="parquet", disposable=True),
    )
    connections = Connections()
    reader = SourceReader([big, small, blob], connections)
    assert reader.progress() is None
    try:
        seen = []
        async for batch in reader.read(big):
            progress = reader.progress()
            assert progress is not None
            seen.append((progress["big"].rows_read, progress["big"].rows_total))
            assert len(batch) == 100
        assert seen[0] == (100, 1000) and seen[-1] == (1000, 1000)

        async for _ in reader.read(small):
            progress = reader.progress()
            assert progress is not None and progress["small"].rows_total is None  # csv: unknown until read
        after = reader.progress()
        assert after is not None and (after["small"].rows_read, after["small"].rows_total) == (250, 250)

        frames = [f async for f in reader.read(blob)]  # dataFormat parquet, disposable: one frame
        assert len(frames) == 1 and reader.counts["blob"].rows_total == 30

        async for _ in reader.read(big):  # a second pass counts again from zero
            break
        assert (reader.counts["big"].rows_read, reader.counts["big"].rows_total) == (100, 1000)
        wire = {name: p.wire() for name, p in (reader.progress() or {}).items()}
        assert wire["small"] == {"rowsRead": 250, "rowsTotal": 250}
    finally:
        await reader.aclose()
        await connections.aclose()
