"""Atom's connectors in a plain script: write, read in pages, upsert, and copy between stores.

Run it as is (it uses a temp directory, and MariaDB/Redis when they answer):

    .venv/bin/python examples/connectors_script.py
    .venv/bin/python examples/connectors_script.py --mysql mysql://root@127.0.0.1:3306/test \\
        --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import tempfile

import pandas as pd

from connectors import ReadOptions, WriteOptions
from connectors.errors import ConnectorError
from connectors.sync import open_connector_sync


def sample(rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(rows),
            "score": [i * 0.5 for i in range(rows)],
            "city": [("Hangzhou", "Beijing", "Shenzhen")[i % 3] for i in range(rows)],
        }
    )


def files_demo(workdir: str, df: pd.DataFrame) -> None:
    with open_connector_sync(f"file://{workdir}") as files:
        files.write(df, "scores.parquet", mode="replace")  # atomic: temp file + rename
        pages = files.read("scores.parquet", ReadOptions(paginate_read_num=25_000))
        total = sum(batch["score"].sum() for batch in pages)
        print(f"file: {len(df)} rows written, score sum read back in pages = {total}")


def mysql_demo(url: str, df: pd.DataFrame) -> None:
    with open_connector_sync(url) as db:
        db.write(df, "example_scores", mode="replace", key="id")  # table created from the dtypes
        changed = df.head(10).assign(score=-1.0)
        db.write(changed, "example_scores", mode="upsert", key="id")  # updates the 10 rows by id
        # a sink streams batches; nothing is visible until it commits, and a retry with the same
        # run_key replaces its own rows instead of adding them twice
        with db.sink("example_daily", WriteOptions(run_key="2026-11-22")) as sink:
            for start in range(0, len(df), 20_000):
                sink.write(df.iloc[start : start + 20_000])
        rows = sum(len(b) for b in db.read("example_scores", ReadOptions(paginate_read_num=20_000)))
        negative = next(iter(db.read("SELECT COUNT(*) AS n FROM example_scores WHERE score < 0")))
        print(f"mysql: {rows} rows read by keyset pages, {int(negative['n'][0])} upserted")


def redis_demo(url: str, df: pd.DataFrame) -> None:
    with open_connector_sync(url) as cache:
        cache.write(df.head(1_000), "example:score:", mode="replace", key="id")  # one hash per row
        back = pd.concat(cache.read("example:score:*", ReadOptions(paginate_read_num=500)))
        print(f"redis: {len(back)} hashes read back with SCAN + pipelines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    df = sample(args.rows)
    with tempfile.TemporaryDirectory() as workdir:
        files_demo(workdir, df)
    for name, demo, url in (("mysql", mysql_demo, args.mysql), ("redis", redis_demo, args.redis)):
        try:
            demo(url, df)
        except ConnectorError as exc:  # one clear line: what failed and what to do
            print(f"{name}: skipped: {exc}")


if __name__ == "__main__":
    main()
