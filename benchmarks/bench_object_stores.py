"""Benchmark: S3 and ALIYUNOSS connectors vs the SDK + pandas code a user would otherwise write.

    python benchmarks/bench_object_stores.py --rows 1000000

Starts moto_server (S3) and the OSS-protocol test server (tests/connectors/oss_server.py), each
in its own process on loopback, uploads one parquet object of N rows x 10 columns to each, then
runs every contender in a fresh subprocess so that its peak RSS (VmHWM) is its own:

- read, connector: `conn.read(key)` pages of 100 000 rows, first with an empty file cache (the
  object is fetched in parallel ranges into it), then again with the cached copy, then with the
  cache bypassed (one GET into a temp file, as objects up to `direct_read_bytes` are read);
- read, SDK + pandas: `get_object` whole into memory, then `pandas.read_parquet(BytesIO)`;
- write, connector: `conn.write(df, key, mode="replace")` (temp file, multipart upload);
- write, SDK + pandas: `df.to_parquet()` into memory, then one `put_object`.

Prints rows/s, MB/s (object bytes) and peak RSS per contender, with the ratio to its SDK peer.
Both servers are Python processes sharing the machine's cores with the client: absolute figures
are loopback figures, the ratios are the point. moto answers a range request at about the cost
of a whole GET (it copies the object), so the S3 cold-cache row (many ranges) is a moto artifact;
parallel ranges pay off only where each connection is rate-limited (TRAPS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUCKET = "atom-bench"
KEY_ID, SECRET = "bench-key-id", "bench-key-secret"
PAGE_ROWS = 100_000


def _rss_mib() -> float:
    """Peak RSS of this process (VmHWM: ru_maxrss would carry the forking parent's peak over exec)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


def make_frame(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(42)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype="int64"),
            "a": rng.random(rows),
            "b": rng.random(rows),
            "c": rng.normal(size=rows),
            "d": rng.normal(size=rows),
            "i": rng.integers(0, 1_000_000, rows, dtype="int32"),
            "j": rng.integers(0, 100, rows, dtype="int32"),
            "flag": rng.random(rows) < 0.5,
            "ts": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(rows), unit="s"),
            "name": pd.Series(rng.integers(0, 10_000, rows)).map(lambda v: f"user-{v}"),
        }
    )


def config(store: str, endpoint: str, cache_dir: str, **conf: Any) -> Any:
    from connectors import ConnectionConfig

    kind = "S3" if store == "s3" else "ALIYUNOSS"
    return ConnectionConfig(
        kind,
        addr=endpoint,
        account=KEY_ID,
        password=SECRET,
        space=BUCKET,
        source_conf={"cache_dir": cache_dir, **conf},
    )


def sdk_client(store: str, endpoint: str) -> Any:
    if store == "s3":
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )
    import oss2

    return oss2.Bucket(oss2.Auth(KEY_ID, SECRET), endpoint, BUCKET)


# -- child: one contender ------------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    """Run one contender; print {"rows", "seconds", "rss_mib", "base_mib"} as JSON."""
    import pandas as pd

    from connectors import ReadOptions, open_connector

    df = make_frame(args.rows) if args.child.startswith("write") else None
    base = _rss_mib()
    rows = 0
    start = time.perf_counter()
    if args.child in ("read-atom", "read-atom-direct"):
        conf = {"direct_read_bytes": 1 << 40} if args.child == "read-atom-direct" else {}

        async def read() -> int:
            n = 0
            async with open_connector(config(args.store, args.endpoint, args.cache_dir, **conf)) as conn:
                async for page in conn.read(args.key, ReadOptions(paginate_read_num=PAGE_ROWS)):
                    n += len(page)
            return n

        rows = asyncio.run(read())
    elif args.child == "read-sdk":
        client = sdk_client(args.store, args.endpoint)
        if args.store == "s3":
            data = client.get_object(Bucket=BUCKET, Key=args.key)["Body"].read()
        else:
            data = client.get_object(args.key).read()
        rows = len(pd.read_parquet(io.BytesIO(data)))
    elif args.child == "write-atom":

        async def write() -> int:
            async with open_connector(config(args.store, args.endpoint, args.cache_dir)) as conn:
                return await conn.write(df, "written-" + args.key.replace("/", "-"), mode="replace")

        rows = asyncio.run(write())
    elif args.child == "write-sdk":
        assert df is not None
        body = df.to_parquet(index=False)
        client = sdk_client(args.store, args.endpoint)
        if args.store == "s3":
            client.put_object(Bucket=BUCKET, Key="written-" + args.key.replace("/", "-"), Body=body)
        else:
            client.put_object("written-" + args.key.replace("/", "-"), body)
        rows = len(df)
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "seconds": seconds, "rss_mib": _rss_mib(), "base_mib": base}))


def run_child(store: str, method: str, endpoint: str, key: str, rows: int, cache_dir: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", method, "--store", store, "--endpoint", endpoint]
    cmd += ["--key", key, "--rows", str(rows), "--cache-dir", cache_dir]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{store} {method} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- parent ------------------------------------------------------------------------------------


def serve_oss(port: int) -> None:
    from tests.connectors.oss_server import OSSServer

    server = OSSServer({KEY_ID: SECRET}, port=port).start()
    server.create_bucket(BUCKET)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


def start_servers() -> tuple[dict[str, str], list[subprocess.Popen[bytes]]]:
    procs = []
    s3_port, oss_port = _free_port(), _free_port()
    moto = Path(sys.executable).parent / "moto_server"
    procs.append(
        subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(s3_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    procs.append(subprocess.Popen([sys.executable, __file__, "--serve-oss", str(oss_port)]))
    _wait(s3_port, procs[0])
    _wait(oss_port, procs[1])
    endpoints = {"s3": f"http://127.0.0.1:{s3_port}", "oss": f"http://127.0.0.1:{oss_port}"}
    sdk_client("s3", endpoints["s3"]).create_bucket(Bucket=BUCKET)
    return endpoints, procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--stores", default="s3,oss", help="comma-separated: s3, oss")
    parser.add_argument("--child", default="")
    parser.add_argument("--serve-oss", type=int, default=0)
    parser.add_argument("--store", default="s3")
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--key", default="bench/data.parquet")
    parser.add_argument("--cache-dir", default="")
    args = parser.parse_args()
    if args.serve_oss:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        serve_oss(args.serve_oss)
        return
    if args.child:
        child(args)
        return

    endpoints, procs = start_servers()
    try:
        body = make_frame(args.rows).to_parquet(index=False)
        mb = len(body) / 1e6
        print(
            f"{args.rows:,} rows x 10 columns, parquet object {mb:.1f} MB; "
            "loopback moto_server / OSS test server"
        )
        header = (
            f"{'store':5} {'contender':34} {'rows/s':>12} {'MB/s':>8} {'peak RSS MiB':>13} "
            f"{'vs SDK rows/s':>14} {'vs SDK RSS':>11}"
        )
        print(header)
        print("-" * len(header))
        for store in args.stores.split(","):
            client = sdk_client(store, endpoints[store])
            if store == "s3":
                client.put_object(Bucket=BUCKET, Key=args.key, Body=body)
            else:
                client.put_object(args.key, body)
            with tempfile.TemporaryDirectory(prefix="atom-bench-cache-") as cache:
                runs = [
                    ("read: connector, cold cache", "read-atom"),
                    ("read: connector, cached copy", "read-atom"),
                    ("read: connector, one GET (no cache)", "read-atom-direct"),
                    ("read: SDK get_object + read_parquet", "read-sdk"),
                    ("write: connector (multipart)", "write-atom"),
                    ("write: SDK to_parquet + put_object", "write-sdk"),
                ]
                results = [
                    (label, run_child(store, m, endpoints[store], args.key, args.rows, cache))
                    for label, m in runs
                ]
            peers = {"read": results[3][1], "write": results[5][1]}
            for label, r in results:
                peer = peers[label.split(":")[0]]
                rate, peer_rate = r["rows"] / r["seconds"], peer["rows"] / peer["seconds"]
                print(
                    f"{store:5} {label:34} {rate:12,.0f} {mb / r['seconds']:8.1f} {r['rss_mib']:13.0f} "
                    f"{rate / peer_rate:13.2f}x {r['rss_mib'] / peer['rss_mib']:10.2f}x"
                )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
