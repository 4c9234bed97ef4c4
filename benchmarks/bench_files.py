"""Benchmark: downloading one large HTTP object to local disk: the Atom file cache vs curl vs httpx.

    python benchmarks/bench_files.py [--size 2048] [--repeat 3]

Serves a generated file (`--size` MiB, kept under `--dir` and reused) from the test file server
(sendfile, its own process) on loopback, and in the same run measures, each contender in a fresh
subprocess (peak RSS from that child's own rusage), writing to the same disk, cold every time:

1. to-disk MB/s: `curl -o`, httpx streaming (`iter_raw` and `iter_bytes`, 1 MiB), and
   `FileCache.fetch` with 1 and with N connections (a new cache directory per run; the cache also
   computes the content digest while it downloads);
2. against a server that limits every connection to `--rate` MB/s: one stream vs N ranges
   (the goal: N ranges give at least 0.8 N x one stream);
3. K concurrent readers of one object (`python -m connectors.cache fetch`, K processes, one
   shared cache directory): the server's request and byte counters show one download.

Prints tables and writes benchmarks/results/files.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MB = 1_000_000
MiB = 1 << 20

_HTTPX = """
import sys, time, httpx
url, out, mode = sys.argv[1:4]
start = time.perf_counter()
with httpx.Client(timeout=60) as client, client.stream("GET", url) as r, open(out, "wb") as f:
    chunks = r.iter_raw(1 << 20) if mode == "raw" else r.iter_bytes(1 << 20)
    for chunk in chunks:
        f.write(chunk)
print("ELAPSED", time.perf_counter() - start)
"""

_ATOM = """
import sys, time
from connectors.cache import FileCache
from connectors.http import HttpRangeSource
url, root, parallel = sys.argv[1], sys.argv[2], int(sys.argv[3])
cache = FileCache(root, parallel=parallel, max_bytes=64 << 30)
start = time.perf_counter()
cached = cache.fetch_sync(HttpRangeSource(url))
print("ELAPSED", time.perf_counter() - start)
cached.release()
cache.close()
"""


_CLIENT = """
import socket, sys, time, http.client
from urllib.parse import urlsplit
url, mode = sys.argv[1:3]
u = urlsplit(url)
view = memoryview(bytearray(1 << 20))
total = 0
start = time.perf_counter()
if mode == "http.client":
    conn = http.client.HTTPConnection(u.hostname, u.port)
    conn.request("GET", u.path)
    resp = conn.getresponse()
    while n := resp.readinto(view):
        total += n
elif mode == "raw":
    sock = socket.create_connection((u.hostname, u.port))
    sock.sendall(f"GET {u.path} HTTP/1.1\\r\\nHost: {u.hostname}\\r\\n\\r\\n".encode())
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        head += sock.recv(65536)
    header, _, total_bytes = head.partition(b"\\r\\n\\r\\n")
    lines = header.lower().split(b"\\r\\n")
    length = int(next(h for h in lines if h.startswith(b"content-length")).split(b":")[1])
    total = len(total_bytes)
    while total < length:
        total += sock.recv_into(view)
else:
    import httpx
    with httpx.stream("GET", url) as r:
        for chunk in r.iter_raw(1 << 20):
            total += len(chunk)
print("ELAPSED", time.perf_counter() - start)
print("CPU", time.process_time())
"""


def ensure_blob(directory: Path, size_mib: int) -> Path:
    """A file of `size_mib` MiB of incompressible bytes, generated once and reused."""
    path = directory / f"blob-{size_mib}.bin"
    if path.exists() and path.stat().st_size == size_mib * MiB:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    block = os.urandom(64 * MiB)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        left = size_mib * MiB
        i = 0
        while left:
            chunk = block[i % 997 :] + block[: i % 997]
            fh.write(chunk[:left])
            left -= min(left, len(chunk))
            i += 1
    tmp.replace(path)
    return path


class Server:
    """The test file server in its own process; `stats()` reads its counters."""

    def __init__(self, root: Path, rate: float | None = None) -> None:
        cmd = [sys.executable, "-m", "tests.connectors.http_server", "--root", str(root)]
        if rate:
            cmd += ["--rate", str(rate)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"test server did not start: {line}")
        self.port = int(line[1])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stats(self, command: str = "stats") -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        fields = self.proc.stdout.readline().split()[1:]
        return {k: int(v) for k, v in (f.split("=") for f in fields)}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def measure(cmd_for: dict[str, Any], size: int, repeat: int, scratch: Path) -> dict[str, dict[str, Any]]:
    """Run every contender `repeat` times, interleaved; MB/s medians and peak RSS."""
    results: dict[str, dict[str, Any]] = {name: {"mbps": [], "rss": []} for name in cmd_for}
    for _ in range(repeat):
        for name, make in cmd_for.items():
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            cmd = make(scratch)
            seconds, rss, _ = run_child(cmd)
            results[name]["mbps"].append(size / seconds / MB)
            results[name]["rss"].append(rss)
            shutil.rmtree(scratch, ignore_errors=True)
    return results


def run_child(cmd: list[str]) -> tuple[float, float, str]:
    """Run one contender; returns (seconds it reports, its own peak RSS in MiB, its output).

    A small wrapper process runs the contender and reports `RUSAGE_CHILDREN.ru_maxrss`, which then
    is that contender's alone.
    """
    wrapper = [
        sys.executable,
        "-c",
        "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
        "print('RSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(p.returncode)",
        *cmd,
    ]
    os.sync()
    started = time.perf_counter()
    proc = subprocess.run(wrapper, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()[-500:]}")
    rss = 0.0
    for line in proc.stderr.splitlines():
        if line.startswith("RSS"):
            rss = int(line.split()[1]) / 1024
    seconds = wall
    for line in proc.stdout.splitlines():
        if line.startswith("ELAPSED"):
            seconds = float(line.split()[1])
    return seconds, rss, proc.stdout


def contenders(url: str, parallel: int, python: str) -> dict[str, Any]:
    def curl(d: Path) -> list[str]:
        return ["curl", "-s", "-f", "-o", str(d / "out.bin"), "-w", "ELAPSED %{time_total}\n", url]

    def httpx(mode: str) -> Any:
        return lambda d: [python, "-c", _HTTPX, url, str(d / "out.bin"), mode]

    def atom(conns: int) -> Any:
        return lambda d: [python, "-c", _ATOM, url, str(d / "cache"), str(conns)]

    return {
        "curl -o": curl,
        "httpx iter_raw (1 MiB)": httpx("raw"),
        "httpx iter_bytes (1 MiB)": httpx("bytes"),
        "Atom cache, 1 connection": atom(1),
        f"Atom cache, {parallel} connections": atom(parallel),
    }


def measure_clients(url: str, size: int, repeat: int, python: str) -> dict[str, dict[str, list[float]]]:
    """One stream into a reused 1 MiB buffer, no disk: what each HTTP client costs by itself."""
    modes = {"raw socket recv_into": "raw", "http.client readinto": "http.client", "httpx iter_raw": "httpx"}
    results: dict[str, dict[str, list[float]]] = {name: {"mbps": [], "cpu": []} for name in modes}
    for _ in range(repeat):
        for name, mode in modes.items():
            seconds, _, out = run_child([python, "-c", _CLIENT, url, mode])
            results[name]["mbps"].append(size / seconds / MB)
            cpu = [float(line.split()[1]) for line in out.splitlines() if line.startswith("CPU")]
            results[name]["cpu"].append(cpu[0] if cpu else 0.0)
    return results


def readers(server: Server, url: str, k: int, scratch: Path, python: str) -> dict[str, Any]:
    """K processes fetch one object into one cache at once; the server counts what it sent."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    server.stats("reset")
    cmd = [python, "-m", "connectors.cache", "--root", str(scratch / "cache"), "fetch", url, "--quiet"]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(k)
    ]
    outs = [p.communicate() for p in procs]
    seconds = time.perf_counter() - started
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a reader failed: {[e.decode()[-300:] for _, e in outs]}")
    digests = {o.decode().split("\t")[2] for o, _ in outs}
    counters = server.stats()
    shutil.rmtree(scratch, ignore_errors=True)
    return {"seconds": seconds, "digests": digests, **counters}


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="MiB of the object (default 2048)")
    parser.add_argument("--rate-size", type=int, default=256, help="MiB of the rate-limited object")
    parser.add_argument("--rate", type=float, default=20, help="per-connection limit in MB/s (default 20)")
    parser.add_argument("--parallel", type=int, default=4, help="connections N (default 4)")
    parser.add_argument("--readers", type=int, default=4, help="concurrent reader processes K (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median reported)")
    parser.add_argument(
        "--dir", type=Path, default=Path("/tmp/atom-bench"), help="where the served files live"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "files.md")
    args = parser.parse_args()
    python = sys.executable
    blob = ensure_blob(args.dir, args.size)
    small = ensure_blob(args.dir, args.rate_size)
    scratch = args.dir / "scratch"
    size, small_size = blob.stat().st_size, small.stat().st_size
    n = args.parallel

    fast = Server(args.dir)
    limited = Server(args.dir, rate=args.rate * MB)
    try:
        print(
            f"0/3 HTTP clients reading {args.size} MiB into memory (no disk), {args.repeat} runs ...",
            flush=True,
        )
        clients = measure_clients(fast.url(blob.name), size, args.repeat, python)
        print(f"1/3 {args.size} MiB to disk over loopback, {args.repeat} runs each ...", flush=True)
        disk = measure(contenders(fast.url(blob.name), n, python), size, args.repeat, scratch)
        print(
            f"2/3 {args.rate_size} MiB from a server limiting each connection to {args.rate:g} MB/s ...",
            flush=True,
        )
        rate_cmds = {
            "curl -o (1 stream)": contenders(limited.url(small.name), n, python)["curl -o"],
            "Atom cache, 1 connection": contenders(limited.url(small.name), n, python)[
                "Atom cache, 1 connection"
            ],
            f"Atom cache, {n} ranges": contenders(limited.url(small.name), n, python)[
                f"Atom cache, {n} connections"
            ],
        }
        rated = measure(rate_cmds, small_size, 1, scratch)
        print(f"3/3 {args.readers} concurrent reader processes of one {args.size} MiB object ...", flush=True)
        shared = readers(fast, fast.url(blob.name), args.readers, scratch, python)
    finally:
        fast.stop()
        limited.stop()

    crows = []
    for name, r in clients.items():
        gib = size / 2**30
        crows.append(
            [name, f"{statistics.median(r['mbps']):.0f}", f"{statistics.median(r['cpu']) / gib:.2f}"]
        )
    t0 = table(crows, ["client, 1 stream, no disk", "MB/s (median)", "CPU s per GiB (median)"])
    curl = statistics.median(disk["curl -o"]["mbps"])
    rows = []
    for name, r in disk.items():
        med = statistics.median(r["mbps"])
        runs = ", ".join(f"{x:.0f}" for x in r["mbps"])
        rows.append([name, f"{med:.0f}", runs, f"{max(r['rss']):.0f}", f"{med / curl:.2f}x"])
    t1 = table(rows, ["to disk", "MB/s (median)", "runs", "peak RSS MiB", "vs curl"])
    one = statistics.median(rated["Atom cache, 1 connection"]["mbps"])
    rrows = []
    for name, r in rated.items():
        med = statistics.median(r["mbps"])
        rrows.append([name, f"{med:.1f}", f"{med / one:.2f}x", f"{max(r['rss']):.0f}"])
    t2 = table(rrows, [f"{args.rate:g} MB/s per connection", "MB/s", "vs 1 connection", "peak RSS MiB"])
    ranged = statistics.median(rated[f"Atom cache, {n} ranges"]["mbps"])
    verdict2 = f"{n} ranges / 1 stream = {ranged / one:.2f} (goal >= {0.8 * n:.1f} = 0.8 x {n})"
    t3 = table(
        [
            [
                str(args.readers),
                str(shared["gets"]),
                f"{shared['bytes']:,}",
                f"{size:,}",
                f"{shared['bytes'] / size:.2f}",
                str(len(shared["digests"])),
            ]
        ],
        ["readers K", "GET requests", "bytes served", "object bytes", "downloads", "distinct digests"],
    )
    machine = f"{platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()})"
    report = "\n\n".join(
        [
            "# Files: HTTP download to disk (benchmarks/bench_files.py)",
            f"Machine: {machine}; object {args.size} MiB over loopback from the sendfile test server; "
            f"{args.repeat} interleaved runs per contender, each in a fresh process, `sync` before each, "
            "cold cache every time.",
            "HTTP clients alone (one stream into a reused 1 MiB buffer, nothing written; the cache "
            "uses http.client readinto):",
            t0,
            "To disk:",
            t1,
            f"Per-connection rate limit {args.rate:g} MB/s, object {args.rate_size} MiB:",
            t2,
            verdict2,
            f"K = {args.readers} reader processes, one shared cache directory "
            "(the GETs are the part requests of one download):",
            t3,
        ]
    )
    print()
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
