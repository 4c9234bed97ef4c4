"""The second half of benchmarks/k8s_start.py: a run's start request to its pod Running under the
kubelet simulator, next to the local adapter's start request to its agent running, in one control.

One control (uvicorn in a thread, SQLite home) and one spec with two nodes that differ only in
their service info's runtime pattern: `COMMAND` (the local adapter: a child process of control)
and `KUBERNETES` (the Kubernetes adapter: a Job on the API stand-in, run by tests/k8s_sim's
scheduler, kubelet and Job controller, its container on the test suite's Docker engine with the
agent image, or a local process of `atom-runtime` where no engine can start). The job is
TrainExample's MLP for one epoch on a small dataset in a hostPath directory. Each run is timed from
the startNodeTask request to (a) its pod's phase Running, as a watch on the API server sees it
(Kubernetes only), (b) the run's state `running` in control (the agent fetched its spec and said
so: comparable across adapters), (c) the run succeeded. Rounds interleave the two, medians.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SPACE = "default"
SPEC = """
connections:
  - {{connectName: bench, connectType: FILE, connectAddr: {data}}}
sources:
  - {{sourceName: train, connectionName: bench, sourceType: source, operateExecute: train.csv}}
  - {{sourceName: test, connectionName: bench, sourceType: test_source, operateExecute: test.parquet}}
operators:
  - operatorName: bench
    operatorRuntimeType: TRAIN
    moduleName: runtime_agent.examples.train_example
    executeObject: TrainExample
    operatorEpoch: 1
    operatorConf: {{labelColumn: label}}
    environmentConf: {{volumes: [{{name: data, hostPath: {{path: {data}}}, mountPath: {data}}}]}}
models:
  - {{modelName: bench-local, connectionName: bench}}
  - {{modelName: bench-k8s, connectionName: bench}}
serviceInfos:
  - {{siName: local-small, siCpu: 1, siMemory: 1024}}
  - {{siName: k8s-small, siCpu: 1, siMemory: 1024, siRuntimePattern: KUBERNETES}}
nodes:
  - nodeName: bench-local
    operatorRuntimeType: TRAIN
    nodeStatus: EDIT_FINISH
    relation: {{operator: bench, sources: [train, test], model: bench-local, serviceInfo: local-small}}
  - nodeName: bench-k8s
    operatorRuntimeType: TRAIN
    nodeStatus: EDIT_FINISH
    relation: {{operator: bench, sources: [train, test], model: bench-k8s, serviceInfo: k8s-small}}
"""
PROCESS_IMAGE = "atom-agent:process"


class PodClock(threading.Thread):
    """When each run's pod was first seen Running (a watch on every namespace, Atom's pods only)."""

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(name="bench-pod-clock", daemon=True)
        from kubernetes import config

        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.running: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        from kubernetes import client, watch

        core = client.CoreV1Api(self.api_client)
        since = None
        while not self.stopped.is_set():
            kwargs: dict[str, Any] = {"timeout_seconds": 1, "deserialize": False}
            if since:
                kwargs["resource_version"] = since
            selector = "app.kubernetes.io/managed-by=atom"
            for event in watch.Watch().stream(
                core.list_pod_for_all_namespaces, label_selector=selector, **kwargs
            ):
                pod = event["object"]
                since = pod["metadata"].get("resourceVersion", since)
                run = (pod["metadata"].get("labels") or {}).get("atom.dev/run")
                if run and (pod.get("status") or {}).get("phase") == "Running":
                    self.running.setdefault(run, time.perf_counter())

    def close(self) -> None:
        self.stopped.set()
        self.join(5)
        self.api_client.close()


@contextlib.contextmanager
def runtime() -> Iterator[tuple[Any, str, str]]:
    """(the simulator's runtime, the agent image, what runs the pods in words)."""
    from tests.k8s_sim.runtime import DockerRuntime, ProcessRuntime

    try:
        from tests.docker_support import EngineUnavailable, acquire_engine, ensure_agent_image, release_engine

        engine = acquire_engine()
    except EngineUnavailable as exc:
        root = Path(tempfile.mkdtemp(prefix="bench-proc-"))
        process = ProcessRuntime({PROCESS_IMAGE: [str(Path(sys.executable).parent / "atom-runtime")]}, root)
        try:
            yield process, PROCESS_IMAGE, f"local processes of atom-runtime (no Docker engine: {exc})"
        finally:
            process.close()
            shutil.rmtree(root, ignore_errors=True)
        return
    docker_client = engine.client()
    try:
        image = ensure_agent_image(engine)
        docker = DockerRuntime(docker_client, label=f"bench-{uuid.uuid4().hex[:8]}")
        try:
            yield docker, image, f"containers of {image} on the test Docker engine (host network)"
        finally:
            docker.close()
    finally:
        docker_client.close()
        release_engine(engine)


async def timed(url: str, node: str, clock: PodClock | None) -> dict[str, float]:
    from control.client import AsyncControlClient
    from control.schemas import RunState, TaskEvent

    async with AsyncControlClient(url, timeout=60) as client:
        node_id = int((await client.get(SPACE, "nodes", node))["id"])
        t0 = time.perf_counter()
        run_id = (await client.start_node_task(TaskEvent(task_id=node_id))).run_ids[0]
        out: dict[str, float] = {}
        while "succeeded" not in out:
            run = await client.get_run(run_id)
            now = time.perf_counter() - t0
            if run.state in (RunState.FAILED, RunState.STOPPED):
                raise RuntimeError(f"run {run_id} on {node}: {run.state} {run.reason}")
            if run.state in (RunState.RUNNING, RunState.SUCCEEDED):
                out.setdefault("running", now)
            if run.state == RunState.SUCCEEDED:
                out["succeeded"] = now
            if now > 600:
                raise RuntimeError(f"run {run_id} on {node} did not end in 600 s")
            await asyncio.sleep(0.02)
        if clock is not None:
            deadline = time.perf_counter() + 10
            while str(run_id) not in clock.running and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            out["pod running"] = clock.running[str(run_id)] - t0
        return out


def measure(rounds: int, settle: float) -> str:
    """Run the rounds; the results as a markdown section."""
    from control.cli._spec import load_spec
    from control.cli.apply import apply_spec
    from control.cli.quickstart import make_dataset
    from control.client import AsyncControlClient
    from control.deploy import free_port
    from control.settings import Settings
    from tests.e2e.conftest import LiveControl
    from tests.k8s_sim.cluster import SimCluster
    from tests.k8s_sim.kubeapi import KubeApi

    data = Path(tempfile.mkdtemp(prefix="bench-k8s-"))  # a hostPath the image's user (10001) may use
    times: dict[str, list[dict[str, float]]] = {"local": [], "k8s": []}
    try:
        make_dataset(data, 400)
        for path in [data, *data.iterdir()]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        with runtime() as (rt, image, what), KubeApi() as api:
            kubeconfig = api.write_kubeconfig(data.parent / f"{data.name}.kubeconfig")
            sim = SimCluster(api, kubeconfig, rt).start()
            clock = PodClock(kubeconfig)
            clock.start()
            home = Path(tempfile.mkdtemp(prefix="bench-k8s-home-"))
            settings = Settings(home=home, port=free_port(), k8s_kubeconfig=str(kubeconfig), k8s_image=image)
            try:
                with LiveControl(settings) as live:
                    spec = data / "bench.yaml"
                    spec.write_text(SPEC.format(data=data))

                    async def apply() -> None:
                        async with AsyncControlClient(live.url, timeout=60) as client:
                            await apply_spec(client, load_spec([spec], SPACE))

                    asyncio.run(apply())
                    for i in range(rounds):
                        for key in ("local", "k8s"):
                            time.sleep(settle)
                            node = f"bench-{key}"
                            times[key].append(
                                asyncio.run(timed(live.url, node, clock if key == "k8s" else None))
                            )
                        print(f"round {i + 1}: {times['local'][-1]} {times['k8s'][-1]}", flush=True)
                    live.kill_started()
            finally:
                clock.close()
                sim.close()
                shutil.rmtree(home, ignore_errors=True)
                kubeconfig.unlink(missing_ok=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return report(times, what, rounds)


def report(times: dict[str, list[dict[str, float]]], what: str, rounds: int) -> str:
    def med(key: str, what_: str) -> float:
        return statistics.median(t[what_] for t in times[key])

    def runs(key: str, what_: str) -> str:
        return ", ".join(f"{t[what_]:.2f}" for t in times[key])

    local_running = med("local", "running")
    rows = [
        ("local adapter: start request -> run running (agent process up, spec fetched)", "local", "running"),
        ("Kubernetes adapter: start request -> pod Running (simulated kubelet)", "k8s", "pod running"),
        ("Kubernetes adapter: start request -> run running (agent in the pod)", "k8s", "running"),
        ("local adapter: start request -> run succeeded", "local", "succeeded"),
        ("Kubernetes adapter: start request -> run succeeded", "k8s", "succeeded"),
    ]
    lines = [
        "",
        "## Start request to pod Running, under the kubelet simulator, beside the local adapter",
        "",
        f"`python benchmarks/k8s_start.py --rounds {rounds}`: one control, one spec, two nodes that differ",
        "only in their runtime pattern (COMMAND, KUBERNETES); TrainExample, one epoch, 320 training rows",
        "from a hostPath directory. Pods: the API stand-in, tests/k8s_sim's scheduler, kubelet and Job",
        "controller. Rounds interleaved, medians; ratios against the local adapter's start request -> run",
        "running.",
        "",
        f"What ran the pods: {what}.",
        "",
        "| measured | seconds (median) | runs | vs local running |",
        "|---|---:|---|---:|",
    ]
    for label, key, metric in rows:
        ratio = f"{med(key, metric) / local_running:.2f}x" if metric != "succeeded" else ""
        lines.append(f"| {label} | {med(key, metric):.2f} | {runs(key, metric)} | {ratio} |")
    lines += ["", f"Load average (1 min) at the end {os.getloadavg()[0]:.2f}."]
    return "\n".join(lines) + "\n"
