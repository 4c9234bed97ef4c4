"""Benchmark: what the exam engine costs to run a DAG of 200 no-op nodes, against a plain loop.

    python benchmarks/exam_overhead.py [--nodes 200] [--shape all|chain|layers] [--repeat 3]

A real control in this process (`create_app`, SQLite home, the reconcile loop on at its default
2 s interval) with one stand-in adapter: starting a run schedules its "agent", which reports
`running` then `succeeded` through the real agent routes (HTTP over ASGI, the run's own token).
The nodes do no work, so the whole wall time from the exam run's start to its end is control
overhead: dispatch, state reports, the engine deciding and claiming each downstream run, and the
exam run's end state. Shapes:
- `chain`: 200 nodes one after another (each start waits for the previous end);
- `layers`: fan-out and fan-in, `1 -> 49 -> 1 -> 49 -> ...` (a join after every wide layer).
The baseline is a plain Python loop calling 200 no-op functions in the same order. The goal
(issue 14) is at most 5 s of control overhead for 200 nodes. Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from control.api.app import create_app  # noqa: E402
from control.dispatch.base import Adapter, Admission, Observed, RunDescription  # noqa: E402
from control.settings import Settings  # noqa: E402

GOAL_S = 5.0
SP = "/api/v1/spaces/bench"
LAMP = "/lamp/atom/service/operator"


class NoOpAgents(Adapter):
    """Starts each run's 'agent' as a task that reports running, then succeeded, at once."""

    name = "local"

    def __init__(self) -> None:
        self.client: httpx.AsyncClient | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def _start(self, launch: RunDescription, admission: Admission) -> str:
        task = asyncio.get_running_loop().create_task(self._agent(launch.ident, launch.env["ATOM_RUN_TOKEN"]))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return f"noop:{launch.ident}"

    async def _agent(self, run_id: int, token: str) -> None:
        assert self.client is not None
        auth = {"Authorization": f"Bearer {token}"}
        for state in ("running", "succeeded"):
            resp = await self.client.post(
                f"/api/v1/agent/runs/{run_id}/state", json={"state": state}, headers=auth
            )
            resp.raise_for_status()

    async def _stop(self, external_id: str, *, grace: float) -> None:
        return None

    async def _describe(self, external_id: str) -> Observed:
        return Observed(alive=True)


def shape_edges(names: list[str], shape: str) -> dict[str, list[str]]:
    if shape == "chain":
        return {a: [b] for a, b in zip(names, names[1:], strict=False)}
    edges: dict[str, list[str]] = {}
    i, wide = 0, 49
    joins = [0]
    while joins[-1] + wide + 1 < len(names):
        joins.append(joins[-1] + wide + 1)
    for at, j in enumerate(joins):
        nxt = joins[at + 1] if at + 1 < len(joins) else len(names)
        layer = names[j + 1 : nxt]
        edges[names[j]] = layer
        if nxt < len(names):
            for n in layer:
                edges[n] = [names[nxt]]
        i = nxt
    del i
    return edges


async def ok(resp: httpx.Response) -> Any:
    if resp.status_code >= 300:
        raise RuntimeError(f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}")
    return resp.json() if resp.content else None


async def build(api: httpx.AsyncClient, data: Path, n: int, shape: str) -> None:
    """Space `bench`: one operator and source, exam `dag` of `n` nodes in `shape`."""
    await ok(await api.put(SP, json={"spaceName": "bench"}))
    await ok(
        await api.put(
            f"{SP}/connections/files",
            json={"connectName": "files", "connectType": "FILE", "connectAddr": str(data)},
        )
    )
    src = await ok(
        await api.put(
            f"{SP}/sources/rows",
            json={
                "sourceName": "rows",
                "connectionName": "files",
                "sourceType": "source",
                "operateExecute": "rows.csv",
                "dataFormat": "csv",
            },
        )
    )
    op = await ok(
        await api.put(
            f"{SP}/operators/noop",
            json={
                "operatorName": "noop",
                "operatorRuntimeType": "PYTHON_DATA",
                "moduleName": "runtime_agent.examples.train_example",
                "executeObject": "TrainExample",
            },
        )
    )
    await ok(await api.put(f"{SP}/experiments/bench", json={"experimentName": "bench"}))
    exp = await ok(await api.get(f"{SP}/experiments/bench"))
    exam = await ok(await api.put(f"{SP}/exams/dag", json={"examName": "dag", "experimentId": exp["id"]}))
    names = [f"n{i:03d}" for i in range(n)]
    ids = {}
    for name in names:
        node = await ok(
            await api.put(f"{SP}/nodes/{name}", json={"nodeName": name, "operatorRuntimeType": "PYTHON_DATA"})
        )
        ids[name] = node["id"]
    edges = shape_edges(names, shape)
    for name in names:
        body = {
            "nodeId": ids[name],
            "operatorId": op["id"],
            "dataSourceIds": [src["id"]],
            "nextNodeIds": [ids[x] for x in edges.get(name, [])],
        }
        await ok(await api.post(f"{LAMP}/node/createNodeRelation", json=body))
        await ok(
            await api.patch(f"{SP}/nodes/{name}", json={"examId": exam["id"], "nodeStatus": "EDIT_FINISH"})
        )


async def one_exam(n: int, shape: str) -> float:
    """Seconds from starting the exam run to its end (all nodes succeeded)."""
    with tempfile.TemporaryDirectory(prefix="atom-exam-bench-") as tmp:
        home, data = Path(tmp) / "home", Path(tmp) / "data"
        data.mkdir()
        (data / "rows.csv").write_text("a,label\n1,0\n")
        app = create_app(Settings(home=home), reconcile=True)
        agents = NoOpAgents()
        async with app.router.lifespan_context(app):
            app.state.orchestrator.adapters["local"] = agents
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://control", timeout=60) as api:
                agents.client = api
                await build(api, data, n, shape)
                started = time.perf_counter()
                er = await ok(await api.post(f"{SP}/exams/dag/runs", json={}))
                state = er["state"]
                while state == "running":  # the list leaves the runs out: a light poll
                    await asyncio.sleep(0.1)  # at most 0.1 s late; polling faster slows control
                    page = await ok(await api.get("/api/v1/exam-runs", params={"limit": 1}))
                    state = page["items"][0]["state"]
                er = await ok(await api.get(f"/api/v1/exam-runs/{er['id']}"))
                took = time.perf_counter() - started
                if er["state"] != "succeeded" or len(er["runs"]) != n:
                    raise RuntimeError(f"exam run ended {er['state']}: {er['reason']}")
                if any(r["state"] != "succeeded" for r in er["runs"]):
                    raise RuntimeError("a node did not succeed")
        return took


def plain_loop(n: int) -> float:
    def noop() -> None:
        return None

    steps = [noop] * n
    started = time.perf_counter()
    for step in steps:
        step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--shape", choices=("all", "chain", "layers"), default="all")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    shapes = ["chain", "layers"] if args.shape == "all" else [args.shape]
    base = statistics.median(plain_loop(args.nodes) for _ in range(max(args.repeat, 5)))
    py = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"exam overhead: {args.nodes} no-op nodes, {py}, load average {os.getloadavg()[0]:.1f}")
    print(
        f"{'shape':<8} {'median s':>9} {'min s':>7} {'per node ms':>12} {'goal s':>7} {'vs plain loop':>14}"
    )
    failed = False
    for shape in shapes:
        times = [asyncio.run(one_exam(args.nodes, shape)) for _ in range(args.repeat)]
        med = statistics.median(times)
        failed |= med > GOAL_S
        ratio = med / base if base > 0 else float("inf")
        per = 1000 * med / args.nodes
        print(f"{shape:<8} {med:>9.2f} {min(times):>7.2f} {per:>12.1f} {GOAL_S:>7.1f} {ratio:>13.0f}x")
    print(f"plain loop of {args.nodes} no-op calls: {base * 1e6:.1f} us (median)")
    print("goal met" if not failed else f"goal NOT met: more than {GOAL_S:g} s of control overhead")


if __name__ == "__main__":
    main()
