"""Benchmark: reading a MySQL table with the MYSQL connector vs pandas.read_sql vs plain pymysql.

    python benchmarks/bench_mysql_read.py --rows 200000

Creates a table of N rows (BIGINT key, INT, DOUBLE, DECIMAL, DATETIME(6), VARCHAR) in the given
MariaDB/MySQL database, then reads it whole with each method, each in a fresh subprocess so
that peak RSS (ru_maxrss) is that method's own. Prints rows/s, peak RSS and ratios against
`pandas.read_sql`, then drops the table (unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

METHODS = {
    "connector stream (async_load)": "stream",
    "connector stream (no prefetch)": "stream-sync",
    "connector disposable": "disposable",
    "pandas.read_sql (pymysql)": "read_sql",
    "pymysql fetchall (tuples)": "fetchall",
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pymysql(args: argparse.Namespace) -> Any:
    import pymysql

    return pymysql.connect(
        host=args.host, port=args.port, user=args.user, password=args.password, database=args.db
    )


def _child(args: argparse.Namespace) -> None:
    """Run one method and print {"rows", "seconds", "rss_mib", "base_mib"} as JSON."""
    import pandas as pd

    from connectors import ConnectionConfig, ReadOptions, open_connector

    cfg = ConnectionConfig(
        "MYSQL", addr=args.host, port=args.port, account=args.user, password=args.password, space=args.db
    )
    conn = _pymysql(args)
    base = _rss_mib()
    start = time.perf_counter()
    rows = 0
    if args.method in ("stream", "stream-sync", "disposable"):
        options = ReadOptions(
            paginate_read_num=args.page,
            async_load=args.method != "stream-sync",
            disposable=args.method == "disposable",
        )

        async def read() -> int:
            n = 0
            async with open_connector(cfg) as c:
                async for batch in c.read(args.table, options):
                    n += len(batch)
            return n

        rows = asyncio.run(read())
    elif args.method == "read_sql":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns that pymysql is not SQLAlchemy
            rows = len(pd.read_sql(f"SELECT * FROM `{args.table}`", conn))
    elif args.method == "fetchall":
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM `{args.table}`")
            rows = len(cur.fetchall())
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "seconds": seconds, "rss_mib": _rss_mib(), "base_mib": base}))


def _create(args: argparse.Namespace) -> None:
    conn = _pymysql(args)
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{args.table}`")
        cur.execute(
            f"CREATE TABLE `{args.table}` (id BIGINT PRIMARY KEY, a INT, x DOUBLE, price DECIMAL(12,2), "
            "at DATETIME(6), s VARCHAR(32)) ENGINE=InnoDB"
        )
        cur.execute(
            f"INSERT INTO `{args.table}` SELECT seq, seq % 1000, seq * 0.37, (seq % 10000) / 100, "
            f"TIMESTAMP('2024-01-01') + INTERVAL seq SECOND, CONCAT('name-', seq) FROM seq_1_to_{args.rows}"
        )
    conn.commit()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3306)
    parser.add_argument("--user", default="root")
    parser.add_argument("--password", default="")
    parser.add_argument("--db", default="test")
    parser.add_argument("--page", type=int, default=50_000, help="connector page size (paginate_read_num)")
    parser.add_argument("--keep", action="store_true", help="keep the table afterwards")
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--table", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        _child(args)
        return
    args.table = args.table or f"atom_bench_{args.rows}"
    t0 = time.perf_counter()
    _create(args)
    took = time.perf_counter() - t0
    print(f"table {args.db}.{args.table}: {args.rows} rows, 6 columns (created in {took:.1f} s)")
    results: dict[str, dict[str, float]] = {}
    try:
        for label, method in METHODS.items():
            child = [sys.executable, __file__, "--method", method, "--table", args.table]
            child += ["--host", args.host, "--port", str(args.port), "--user", args.user]
            child += ["--password", args.password, "--db", args.db, "--page", str(args.page)]
            out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            results[label] = json.loads(out.strip().splitlines()[-1])
            assert results[label]["rows"] == args.rows, (label, results[label])
    finally:
        if not args.keep:
            conn = _pymysql(args)
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS `{args.table}`")
            conn.close()
    ref = results["pandas.read_sql (pymysql)"]
    ref_speed = ref["rows"] / ref["seconds"]
    ref_mem = ref["rss_mib"] - ref["base_mib"]
    head = (
        f"{'method':32} {'seconds':>8} {'rows/s':>10} {'x read_sql':>10} "
        f"{'peak RSS':>9} {'+RSS':>8} {'x +RSS':>7}"
    )
    print(head)
    print("-" * len(head))
    for label, r in results.items():
        speed = r["rows"] / r["seconds"]
        extra = r["rss_mib"] - r["base_mib"]
        print(
            f"{label:32} {r['seconds']:8.2f} {speed:10,.0f} {speed / ref_speed:10.2f} "
            f"{r['rss_mib']:7.0f}Mi {extra:6.0f}Mi {extra / ref_mem if ref_mem > 0 else float('nan'):7.2f}"
        )
    print("+RSS = peak RSS minus RSS after imports and connecting; x = ratio to pandas.read_sql")


if __name__ == "__main__":
    main()
