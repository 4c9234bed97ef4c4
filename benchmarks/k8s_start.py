"""Benchmark: the Kubernetes adapter's start, from the start request to the Job in the API server.

    python benchmarks/k8s_start.py [--repeat 30]

Stand-in: the test suite's Kubernetes API server (tests/k8s_sim: kmock's HTTP server with a store
that assigns uids and resourceVersions and validates every object against the official schema),
on loopback, behind the official `kubernetes` client. No scheduler or kubelet runs: this times the
adapter's API work only (a real API server adds its own admission, etcd and network latency).

For each start it records the time from `adapter.start(...)` being called to (a) the Job being in
the API server's store and (b) `start` returning (Secret, Job, the Secret's ownerReferences patch).
The first start in a namespace also reads and creates the namespace and syncs its watch; it is
shown apart.

Then (benchmarks/k8s_pods.py, skipped with `--skip-pods`) a run's start request to its pod Running
under the kubelet simulator, next to the local adapter's start request to its agent running, in
one control, `--rounds` times. Writes benchmarks/results/k8s_start.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "k8s_start.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="control runs per adapter (the pods half)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds of quiet before each run")
    parser.add_argument("--skip-pods", action="store_true", help="only the adapter's API work")
    args = parser.parse_args()

    from control.dispatch.base import RunDescription
    from control.dispatch.kubernetes import KubernetesAdapter
    from control.schemas.resources import ResourceRequest
    from control.settings import Settings
    from tests.k8s_sim.kubeapi import KubeApi

    def desc(ident: int) -> RunDescription:
        return RunDescription(
            kind="run",
            ident=ident,
            name="bench",
            command=["python", "-m", "runtime_agent", "run", "--run-id", str(ident)],
            args=("run", "--run-id", str(ident)),
            env={
                "ATOM_RUN_TOKEN": "t",
                "ATOM_CONTROL_URL": "http://127.0.0.1:8470",
                "ATOM_RUN_ID": str(ident),
            },
            log_path=Path("/tmp/unused.log"),
            resources=ResourceRequest(cpu=1, memory_mib=512),
            space="bench",
        )

    async def run(api: KubeApi, kubeconfig: Path, home: Path) -> tuple[float, list[float], list[float]]:
        adapter = KubernetesAdapter(Settings(home=home, k8s_kubeconfig=str(kubeconfig)), watch_timeout=30)
        in_store: list[float] = []
        returned: list[float] = []

        def watch_store(name: str, t0: float, out: list[float], done: threading.Event) -> None:
            key = ("batch/v1/jobs", "bench", name)
            while not done.is_set():
                if api.call(lambda: key in api.handler.store):
                    out.append(time.perf_counter() - t0)
                    return
                time.sleep(0.0005)

        t0 = time.perf_counter()
        await adapter.start(desc(0))
        first = time.perf_counter() - t0
        for i in range(1, args.repeat + 1):
            seen: list[float] = []
            done = threading.Event()
            t0 = time.perf_counter()
            poller = threading.Thread(target=watch_store, args=(f"bench-{i}", t0, seen, done))
            poller.start()
            await adapter.start(desc(i))
            returned.append(time.perf_counter() - t0)
            poller.join(10)
            done.set()
            in_store.extend(seen)
        await adapter.aclose()
        return first, in_store, returned

    with tempfile.TemporaryDirectory() as tmp, KubeApi() as api:
        kubeconfig = api.write_kubeconfig(Path(tmp) / "kubeconfig")
        first, in_store, returned = asyncio.run(run(api, kubeconfig, Path(tmp) / "home"))

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.1f}"

    def p90(values: list[float]) -> str:
        return f"{sorted(values)[int(len(values) * 0.9) - 1] * 1000:.1f}"

    load = os.getloadavg()[0]
    text = f"""# Kubernetes adapter: start request to Job created

Machine: {platform.node() or "?"} ({os.cpu_count()} CPUs, Python {platform.python_version()});
`python benchmarks/k8s_start.py --repeat {args.repeat}`. Stand-in API server: kmock with
tests/k8s_sim/apiserver.py (schema validation on create) on loopback, official client 36.
No scheduler or kubelet: the adapter's API work only.

| measured (a run in a namespace that exists, watch synced)      | median ms | p90 ms |
|----------------------------------------------------------------|-----------|--------|
| start request -> Job stored by the API server                  | {ms(in_store):>9} | {p90(in_store):>6} |
| start request -> start returned (Secret, Job, Secret's owner)  | {ms(returned):>9} | {p90(returned):>6} |

The first start in a new namespace (read + create the namespace, start and sync the watch on
Jobs, Deployments and pods, then the same three calls): {first * 1000:.0f} ms.
Load average (1 min) at the end {load:.2f}.
"""
    if not args.skip_pods:
        from benchmarks.k8s_pods import measure

        text += measure(args.rounds, args.settle)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
