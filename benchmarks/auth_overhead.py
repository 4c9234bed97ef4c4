"""Benchmark: what checking the caller costs the control API, against the same API with no logins.

    python benchmarks/auth_overhead.py [--seconds 10] [--concurrency 16] [--runs 200]

One control server (`atom server`, its own process, SQLite home) holding two spaces of `--runs`
runs each. The same page of runs (`GET /api/v1/runs?limit=50`) is asked for as fast as
`--concurrency` clients can for `--seconds`, by:
- `open`: the implied local admin of an install without users (no token checked): the baseline;
- `user token`: a member of one of the spaces with a personal token (the token's hash looked up,
  its expiry and revocation checked, the list filtered to the member's spaces);
- `bootstrap token`: `ATOM_API_TOKEN`, a site admin.
Each contender gets its own fresh server (the first two on homes that differ only in their users),
and the table shows requests per second, the median latency and the ratio to `open`.
Writes benchmarks/results/auth_overhead.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "auth_overhead.md"
BOOTSTRAP = "bench-bootstrap-token"


def seed(home: Path, runs: int, *, with_user: bool) -> str | None:
    """Two spaces of `runs` finished runs each; with_user: a member of `a` and their token."""
    from control.access import Role, Scope
    from control.settings import Settings
    from control.store import models as m
    from control.store import repo
    from control.store.engine import Store
    from control.users import create_user, issue_token, set_member

    store = Store(Settings(home=home).database_url)
    try:
        with store.transaction() as ses:
            spaces = [repo.ensure_space(session=ses, name=name)[0] for name in ("a", "b")]
            for space in spaces:
                for i in range(runs):
                    ses.add(
                        m.Runtime(
                            space_id=space.id,
                            node_name=f"node-{i % 20}",
                            operator_runtime_type="TRAIN",
                            state="succeeded",
                            token_hash="0" * 64,
                            spec={},
                        )
                    )
            if not with_user:
                return None
            admin = create_user(ses, "root", "bench-password", admin=True)
            member = create_user(ses, "ann", "bench-password")
            set_member(ses, spaces[0], member, Role.MEMBER)
            set_member(ses, spaces[0], admin, Role.OWNER)
            return issue_token(ses, member, "bench", scope=Scope.WRITE, expires_at=None).secret
    finally:
        store.dispose()


class Server:
    def __init__(self, home: Path, port: int, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "server"],
            env={**os.environ, "ATOM_HOME": str(home), "ATOM_PORT": str(port), "NO_COLOR": "1", **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("control did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def hammer(url: str, token: str | None, seconds: float, concurrency: int) -> tuple[float, float, int]:
    """(requests per second, median latency in ms, items per page) over `seconds`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    items = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        first = await http.get("/api/v1/runs", params={"limit": 50})
        first.raise_for_status()
        items = len(first.json()["items"])
        end = time.monotonic() + seconds

        async def client() -> None:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                resp = await http.get("/api/v1/runs", params={"limit": 50})
                latencies.append(time.perf_counter() - t0)
                resp.raise_for_status()

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    from control.deploy import free_port

    rows: list[tuple[str, float, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="atom-auth-bench-") as tmp:
        for name in ("open", "user token", "bootstrap token"):
            home = Path(tmp) / name.replace(" ", "-")
            token = seed(home, args.runs, with_user=name == "user token")
            env = {"ATOM_API_TOKEN": BOOTSTRAP} if name == "bootstrap token" else {}
            server = Server(home, free_port(), env)
            try:
                server.wait()
                bearer = BOOTSTRAP if name == "bootstrap token" else token
                rps, p50, items = asyncio.run(hammer(server.url, bearer, args.seconds, args.concurrency))
            finally:
                server.stop()
            rows.append((name, rps, p50, items))
            print(f"{name:16} {rps:8.1f} req/s  p50 {p50:6.1f} ms  ({items} runs a page)")
    base = rows[0][1]
    lines = [
        "# Control API: the cost of checking the caller",
        "",
        f"`GET /api/v1/runs?limit=50`, {args.concurrency} concurrent clients, {args.seconds:g} s each, "
        f"{args.runs} runs in each of two spaces; {platform.machine()}, {os.cpu_count()} CPUs.",
        "",
        "| caller | requests/s | p50 ms | runs a page | vs open |",
        "|---|---|---|---|---|",
    ]
    for name, rps, p50, items in rows:
        lines.append(f"| {name} | {rps:.1f} | {p50:.1f} | {items} | {rps / base:.2f}x |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
