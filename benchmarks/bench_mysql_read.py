"""Benchmark: a MySQL table into DataFrames with the Atom MYSQL connector vs what users otherwise run.

    .venv/bin/python benchmarks/bench_mysql_read.py                 # 1,000,000 rows, 10 columns
    .venv/bin/python benchmarks/bench_mysql_read.py --rows 200000 --write

Creates (or reuses, when it already holds the right number of rows) the table
`atom_bench_read_<rows>` (BIGINT key, INTs, DOUBLEs, DECIMAL, DATETIME(6), DATE, VARCHARs, with
NULLs) in the given database. Then, in one session, each contender runs in a fresh subprocess
(so each peak RSS, read from /proc/self/status VmHWM, is its own), `--repeat` times in turn:

- pandas.read_sql through SQLAlchemy + pymysql (the common usage),
- pymysql `fetchall()` into `DataFrame.from_records`,
- connectorx.read_sql straight into pandas, 2 partitions on the key (and into Arrow),
- the Atom connector streamed in pages (each page consumed: a column summed), into pandas and Arrow.

It prints rows/s (best and median of the runs) and peak RSS next to pandas.read_sql's with the
ratios, the Atom connector's per-page cost over the first and the last pages, and where its time
goes (connectorx fetch, Arrow casts, pandas conversion; client and server CPU). `--write` adds
writing the rows back: `Connector.write` (staged, atomic) vs `DataFrame.to_sql`. The tables are
written as markdown to benchmarks/results/mysql_read.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

READERS = {
    "read_sql": "pandas.read_sql (SQLAlchemy+pymysql)",
    "fetchall": "pymysql fetchall -> DataFrame",
    "cx_pandas": "connectorx.read_sql -> pandas (2 partitions)",
    "cx_arrow": "connectorx.read_sql -> Arrow (2 partitions)",
    "atom": "Atom connector, pages -> pandas",
    "atom_arrow": "Atom connector, pages -> Arrow",
}
WRITERS = {
    "to_sql": "DataFrame.to_sql (SQLAlchemy+pymysql, chunks of 10k)",
    "atom_write_new": "Atom write(), new table (stage + RENAME)",
    "atom_write_append": "Atom write(), append to existing (stage + INSERT..SELECT)",
}
DDL = (
    "(id BIGINT PRIMARY KEY, a INT NOT NULL, b INT NULL, x DOUBLE NOT NULL, y DOUBLE NULL, "
    "price DECIMAL(12,2) NOT NULL, at DATETIME(6) NOT NULL, day DATE NOT NULL, s VARCHAR(32) NOT NULL, "
    "t VARCHAR(64) NULL) ENGINE=InnoDB"
)
FILL = (
    "SELECT seq, seq % 1000, IF(seq % 7 = 0, NULL, seq % 100000), seq * 0.37, "
    "IF(seq % 11 = 0, NULL, seq / 3), "
    "(seq % 10000) / 100, TIMESTAMP('2024-01-01') + INTERVAL seq SECOND + INTERVAL (seq % 1000) MICROSECOND, "
    "DATE('2020-01-01') + INTERVAL (seq % 2000) DAY, CONCAT('name-', seq), "
    "IF(seq % 5 = 0, NULL, CONCAT('category-', seq % 37, '-', MD5(seq % 500)))"
)


# -- helpers -----------------------------------------------------------------------------------


def _hwm_mib() -> float:
    """Peak resident set of this process (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pymysql(args: argparse.Namespace) -> Any:
    import pymysql

    where: dict[str, Any] = (
        {"unix_socket": args.socket} if args.socket else {"host": args.host, "port": args.port}
    )
    return pymysql.connect(user=args.user, password=args.password, database=args.db, autocommit=True, **where)


def _sqlalchemy_url(args: argparse.Namespace) -> str:
    from urllib.parse import quote

    auth = quote(args.user, safe="") + (":" + quote(args.password, safe="") if args.password else "")
    if args.socket:
        return f"mysql+pymysql://{auth}@localhost/{args.db}?unix_socket={args.socket}"
    return f"mysql+pymysql://{auth}@{args.host}:{args.port}/{args.db}"


def _cx_url(args: argparse.Namespace) -> str:
    from connectors._mysql_bulk import connection_string

    return connection_string(
        user=args.user,
        password=args.password,
        host=args.host,
        port=args.port,
        database=args.db,
        unix_socket=args.socket,
    )


def _config(args: argparse.Namespace, **conf: Any) -> Any:
    from connectors import ConnectionConfig

    source_conf: dict[str, Any] = {"partitions": args.partitions, **conf}
    if args.socket:
        source_conf["unix_socket"] = args.socket
    return ConnectionConfig(
        "MYSQL",
        addr=args.host,
        port=args.port,
        account=args.user,
        password=args.password,
        space=args.db,
        source_conf=source_conf,
    )


def _cpu_ticks() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies of this machine, from /proc/stat (zeros where unreadable)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0, 0
    idle = fields[3] + fields[4]
    steal = fields[7] if len(fields) > 7 else 0
    return sum(fields) - idle - steal, steal, sum(fields)


def _server_cpu() -> float | None:
    """CPU seconds the local mysqld/mariadbd has used (None when it is not readable here)."""
    for pidfile in ("/run/mysqld/mysqld.pid", "/var/run/mysqld/mysqld.pid"):
        try:
            pid = int(Path(pidfile).read_text().strip())
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            continue
    return None


# -- the children ------------------------------------------------------------------------------


def _read_child(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    table = args.table
    base = _hwm_mib()
    pages: list[float] = []
    start = time.perf_counter()
    if args.child == "read_sql":
        import sqlalchemy

        engine = sqlalchemy.create_engine(_sqlalchemy_url(args))
        base = _hwm_mib()
        start = time.perf_counter()
        df = pd.read_sql(f"SELECT * FROM `{table}`", engine)
        rows, check = len(df), float(df["x"].sum())
    elif args.child == "fetchall":
        conn = _pymysql(args)
        base = _hwm_mib()
        start = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM `{table}`")
            df = pd.DataFrame.from_records(cur.fetchall(), columns=[d[0] for d in cur.description])
        rows, check = len(df), float(df["x"].sum())
    elif args.child in ("cx_pandas", "cx_arrow"):
        import connectorx as cx

        kind = "pandas" if args.child == "cx_pandas" else "arrow"
        result = cx.read_sql(
            _cx_url(args), f"SELECT * FROM `{table}`", return_type=kind, partition_on="id", partition_num=2
        )
        rows = len(result)
        check = float(result["x"].sum()) if kind == "pandas" else float(result.column("x").to_numpy().sum())
    else:
        from connectors import ReadOptions, open_connector

        arrow = args.child == "atom_arrow"
        options = ReadOptions(paginate_read_num=args.page, arrow=arrow, async_load=not args.no_prefetch)

        async def read() -> tuple[int, float]:
            n, total = 0, 0.0
            async with open_connector(_config(args)) as conn:
                last = time.perf_counter()
                async for page in conn.read(table, options):
                    n += len(page)
                    total += float(page.column("x").to_numpy().sum() if arrow else page["x"].sum())
                    now = time.perf_counter()
                    pages.append(now - last)
                    last = now
            return n, total

        rows, check = asyncio.run(read())
    seconds = time.perf_counter() - start
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_mib": _hwm_mib(),
        "base_mib": base,
        "check": check,
        "pages": pages,
    }


def _page_cost_child(args: argparse.Namespace) -> dict[str, Any]:
    """Per-page fetch cost without prefetch: each page's time is its own fetch + conversion."""
    from connectors import ReadOptions, open_connector

    async def read() -> list[float]:
        times: list[float] = []
        async with open_connector(_config(args)) as conn:
            reader = conn.read(args.table, ReadOptions(paginate_read_num=args.page, async_load=False))
            last = time.perf_counter()
            async for _page in reader:
                now = time.perf_counter()
                times.append(now - last)
                last = now
        return times

    return {"pages": asyncio.run(read())}


def _profile_child(args: argparse.Namespace) -> dict[str, Any]:
    """Where the Atom connector's time goes, stage by stage, over the whole table (one thread)."""
    import resource

    from connectors import open_connector
    from connectors._mysql_read import KeysetRead
    from connectors._mysql_types import conform, to_pandas

    parts = {
        "connectorx fetch": 0.0,
        "Arrow casts (conform)": 0.0,
        "Arrow -> pandas": 0.0,
        "consumer (sum)": 0.0,
    }
    conn: Any = open_connector(_config(args, partitions=1))
    read = KeysetRead(conn, args.table, conn.settings.read(_options(args)), query=False)
    asyncio.run(conn._call(read._describe, "describing", args.table))
    assert read.columns is not None
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    server0 = _server_cpu()
    wall0 = time.perf_counter()
    last, rows = None, 0
    while True:
        where = "" if last is None else f"WHERE `id` > {last} "
        t0 = time.perf_counter()
        raw = conn._bulk.fetch(f"SELECT * FROM `{args.table}` {where}ORDER BY `id` LIMIT {args.page}")
        t1 = time.perf_counter()
        table = conform(raw, read.columns)
        t2 = time.perf_counter()
        df = to_pandas(table, read.columns)
        t3 = time.perf_counter()
        df["x"].sum()
        t4 = time.perf_counter()
        for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[key] += value
        rows += len(raw)
        if len(raw) < args.page:
            break
        last = raw.column("id")[-1].as_py()
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    server1 = _server_cpu()
    client_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    server_cpu = None if server0 is None or server1 is None else server1 - server0
    return {"rows": rows, "wall": wall, "parts": parts, "client_cpu": client_cpu, "server_cpu": server_cpu}


def _options(args: argparse.Namespace) -> Any:
    from connectors import ReadOptions

    return ReadOptions(paginate_read_num=args.page)


def _write_child(args: argparse.Namespace) -> dict[str, Any]:
    import connectorx as cx

    df = cx.read_sql(_cx_url(args), f"SELECT * FROM `{args.table}`", return_type="arrow").to_pandas(
        split_blocks=True, date_as_object=False
    )
    if args.child == "atom_write_append":  # an existing target: the rows go in after the ones there
        df["id"] += len(df)
    base = _hwm_mib()
    start = time.perf_counter()
    if args.child == "to_sql":
        import sqlalchemy

        engine = sqlalchemy.create_engine(_sqlalchemy_url(args))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df.to_sql(args.target, engine, if_exists="append", index=False, chunksize=10_000)
        rows = len(df)
    else:
        from connectors import open_connector

        async def write() -> int:
            async with open_connector(_config(args)) as conn:
                return await conn.write(df, args.target, key="id")

        rows = asyncio.run(write())
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "peak_mib": _hwm_mib(), "base_mib": base}


# -- the session -------------------------------------------------------------------------------


def _ensure_table(args: argparse.Namespace) -> str:
    table = f"atom_bench_read_{args.rows}"
    conn = _pymysql(args)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        if cur.fetchone()[0]:
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            if cur.fetchone()[0] == args.rows:
                print(f"reusing {args.db}.{table} ({args.rows:,} rows)")
                return table
        started = time.perf_counter()
        cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        cur.execute(f"CREATE TABLE `{table}` {DDL}")
        cur.execute(f"INSERT INTO `{table}` {FILL} FROM seq_1_to_{args.rows}")  # MariaDB's Sequence engine
        print(
            f"created {args.db}.{table} ({args.rows:,} rows, 10 columns) "
            f"in {time.perf_counter() - started:.1f} s"
        )
    conn.close()
    return table


def _run_child(args: argparse.Namespace, child: str, **extra: Any) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", child, "--table", args.table, "--rows", str(args.rows)]
    cmd += ["--host", args.host, "--port", str(args.port), "--user", args.user, "--db", args.db]
    cmd += ["--page", str(args.page), "--partitions", str(args.partitions)]
    if args.socket:
        cmd += ["--socket", args.socket]
    for key, value in extra.items():
        cmd += [f"--{key}", str(value)]
    env = {**os.environ, "ATOM_BENCH_PASSWORD": args.password}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{child} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _compare(
    args: argparse.Namespace, contenders: dict[str, str], reference: str, child_extra: dict[str, Any]
) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    for rep in range(args.repeat):
        order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
        for name in order:
            extra = dict(child_extra)
            if "target" in extra:
                extra["target"] = f"{extra['target']}_{name}"
                _drop(args, extra["target"])
                if name == "atom_write_append":
                    _copy_empty(args, extra["target"])
            result = _run_child(args, name, **extra)
            if "target" in extra:
                _drop(args, extra["target"])
            if result["rows"] != args.rows:
                raise SystemExit(f"{name} handled {result['rows']} rows, expected {args.rows}")
            runs[name].append(result)
            print(
                f"  run {rep + 1}/{args.repeat} {contenders[name]:58} "
                f"{result['rows'] / result['seconds']:>12,.0f} rows/s"
                f"  peak {result['peak_mib']:6.0f} MiB",
                flush=True,
            )
    ref_rate = max(r["rows"] / r["seconds"] for r in runs[reference])
    ref_mem = min(r["peak_mib"] for r in runs[reference])
    rows = []
    for name, label in contenders.items():
        rates = [r["rows"] / r["seconds"] for r in runs[name]]
        peak = min(r["peak_mib"] for r in runs[name])
        rows.append(
            [
                label,
                _fmt_rate(max(rates)),
                _fmt_rate(statistics.median(rates)),
                f"{max(rates) / ref_rate:.1f}x",
                f"{peak:.0f}",
                f"{peak / ref_mem:.2f}",
            ]
        )
    head = ["method", "rows/s best", "rows/s median", "x ref speed", "peak RSS MiB", "x ref RSS"]
    return _table(head, rows), runs


def _sweep(args: argparse.Namespace) -> str:
    """Atom rows/s (pandas pages) for page sizes x partitions, alternating the order per round."""
    combos = [(page, parts) for page in (25_000, 50_000, 100_000, 200_000) for parts in (1, 2, 4)]
    rates: dict[tuple[int, int], list[float]] = {c: [] for c in combos}
    peaks: dict[tuple[int, int], float] = {}
    print("sweeping page sizes x partitions")
    for rep in range(args.repeat):
        for page, parts in combos if rep % 2 == 0 else list(reversed(combos)):
            result = _run_child(args, "atom", page=page, partitions=parts)
            rates[(page, parts)].append(result["rows"] / result["seconds"])
            peaks[(page, parts)] = min(peaks.get((page, parts), 1e9), result["peak_mib"])
            rate = rates[(page, parts)][-1]
            print(f"  run {rep + 1}/{args.repeat} page {page:>7,} partitions {parts}: {rate:>12,.0f} rows/s")
    rows = [
        [
            f"{page:,}",
            str(parts),
            _fmt_rate(max(r)),
            _fmt_rate(statistics.median(r)),
            f"{peaks[(page, parts)]:.0f}",
        ]
        for (page, parts), r in rates.items()
    ]
    head = ["page rows", "partitions", "rows/s best", "rows/s median", "peak RSS MiB"]
    return f"## Atom page size x partitions (pandas pages)\n\n{_table(head, rows)}"


def _drop(args: argparse.Namespace, table: str) -> None:
    conn = _pymysql(args)
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{table}`")
    conn.close()


def _copy_empty(args: argparse.Namespace, table: str) -> None:
    conn = _pymysql(args)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{table}` LIKE `{args.table}`")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per contender (best and median are shown)"
    )
    parser.add_argument("--page", type=int, default=0, help="Atom page size (default: the connector's)")
    parser.add_argument(
        "--partitions", type=int, default=0, help="Atom key ranges per page (default: the connector's)"
    )
    parser.add_argument("--write", action="store_true", help="also benchmark writing the rows back")
    parser.add_argument("--no-prefetch", action="store_true", help="Atom reads without async_load")
    parser.add_argument("--sweep", action="store_true", help="also try Atom page sizes x partitions")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3306)
    parser.add_argument(
        "--socket", default=os.environ.get("ATOM_TEST_MYSQL_SOCKET"), help="unix socket instead of TCP"
    )
    parser.add_argument("--user", default="root")
    parser.add_argument("--db", default="test")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mysql_read.md"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--table", default="", help=argparse.SUPPRESS)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.password = os.environ.get("ATOM_BENCH_PASSWORD", "")  # never on a command line
    from connectors._mysql_settings import DEFAULT_PAGE_ROWS, DEFAULT_PARTITIONS

    args.page = args.page or DEFAULT_PAGE_ROWS
    args.partitions = args.partitions or DEFAULT_PARTITIONS
    if args.child:
        child = {"pages": _page_cost_child, "profile": _profile_child}.get(args.child)
        if child is None:
            child = _write_child if args.child in WRITERS else _read_child
        print(json.dumps(child(args)))
        return
    _session(args)


def _session(args: argparse.Namespace) -> None:
    args.table = _ensure_table(args)
    busy0, steal0, total0 = _cpu_ticks()
    where = args.socket or f"{args.host}:{args.port}"
    print(
        f"reading {args.rows:,} rows x 10 columns from {where}; Atom pages of {args.page:,} rows, "
        f"{args.partitions} partitions; {args.repeat} runs each, every run in a fresh process"
    )
    read_md, _ = _compare(args, READERS, "read_sql", {})
    cost_page = args.page if args.rows // args.page >= 8 else max(1, args.rows // 10)
    pages = _run_child(args, "pages", page=cost_page)["pages"]
    # page 1 also connects and describes the table: the comparison is pages 2-4 vs the last full ones
    full = pages[:-1] if len(pages) > 2 else pages
    k = max(1, min(3, (len(full) - 1) // 2))
    early, late = statistics.mean(full[1 : 1 + k]), statistics.mean(full[-k:])
    page_md = _table(
        [
            "page size",
            "pages",
            "page 1 (connects), ms",
            f"pages 2-{k + 1}, ms each",
            f"last {k} full pages, ms each",
            "last / early",
        ],
        [
            [
                f"{cost_page:,}",
                str(len(pages)),
                f"{pages[0] * 1000:.0f}",
                f"{early * 1000:.0f}",
                f"{late * 1000:.0f}",
                f"{late / early:.2f}",
            ]
        ],
    )
    prof = _run_child(args, "profile")
    total = sum(prof["parts"].values())
    prof_rows = [[name, f"{sec:.2f}", f"{100 * sec / total:.0f}%"] for name, sec in prof["parts"].items()]
    prof_rows.append(["client process CPU (all threads)", f"{prof['client_cpu']:.2f}", ""])
    if prof["server_cpu"] is not None:
        prof_rows.append(["MySQL server CPU", f"{prof['server_cpu']:.2f}", ""])
    prof_rows.append(
        [
            "wall, one page at a time, no prefetch",
            f"{prof['wall']:.2f}",
            f"{prof['rows'] / prof['wall']:,.0f} rows/s",
        ]
    )
    prof_md = _table(["stage (whole table, seconds)", "seconds", "share"], prof_rows)
    sections = [
        f"## Reading {args.rows:,} rows x 10 columns ({where}, {os.cpu_count()} CPUs)\n\n{read_md}",
        f"## Atom per-page cost (no prefetch)\n\n{page_md}",
        f"## Where the Atom connector's time goes (pages of {args.page:,}, one partition)\n\n{prof_md}",
    ]
    if args.sweep:
        sections.append(_sweep(args))
    if args.write:
        print("writing the rows back")
        write_md, _ = _compare(args, WRITERS, "to_sql", {"target": "atom_bench_write"})
        sections.append(f"## Writing {args.rows:,} rows x 10 columns\n\n{write_md}")
    busy1, steal1, total1 = _cpu_ticks()
    if total1 > total0:
        span = total1 - total0
        sections.append(
            f"Machine during the session: CPUs {100 * (busy1 - busy0) / span:.0f}% busy (this benchmark and "
            f"anything else running), {100 * (steal1 - steal0) / span:.0f}% stolen by the hypervisor."
        )
    report = "\n\n".join(sections) + "\n"
    print()
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    out.write_text(f"# MySQL read benchmark ({stamp})\n\nCommand: `{' '.join(sys.argv)}`\n\n{report}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
