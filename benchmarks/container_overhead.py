"""Benchmark: what running the agent in a container costs against running it as a local process.

    python benchmarks/container_overhead.py [--rows 2000] [--epochs 5] [--repeat 5]
        [--docker-host unix:///path/docker.sock] [--image atom-agent:TAG]

One control (uvicorn in a thread, SQLite home), one spec, two nodes that differ only in their
service info's runtime pattern: `COMMAND` (the local adapter: a child process of control) and
`DOCKER` (the Docker adapter: a container of the agent image on host networking, control's home
bound in). The job is `run_overhead.py`'s: TrainExample's MLP on the quickstart dataset for
`--epochs` epochs, predictions written to a CSV, the model uploaded and registered. Each run is
timed from the startNodeTask request to the model version listed by the API; the contenders run
`--repeat` times, interleaved, and the table shows medians and the ratio. For context it also
times an empty container (`python3 -c pass` in the same image: create, start, exit, remove).

Without `--docker-host` / `--image` it uses the test suite's engine and agent image
(tests/docker_support.py: starts dockerd on a private socket, builds the image once per content).
Writes benchmarks/results/container_overhead.md.
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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "container_overhead.md"
SPACE = "bench"

SPEC = """
connections:
  - {{connectName: bench, connectType: FILE, connectAddr: {data}}}
sources:
  - {{sourceName: train, connectionName: bench, sourceType: source, operateExecute: train.csv,
      dataFormat: csv}}
  - {{sourceName: test, connectionName: bench, sourceType: test_source, operateExecute: test.parquet,
      dataFormat: parquet}}
  - {{sourceName: predictions, connectionName: bench, sourceType: sink, operateExecute: predictions.csv,
      dataFormat: csv}}
operators:
  - operatorName: bench
    operatorRuntimeType: TRAIN
    moduleName: runtime_agent.examples.train_example
    executeObject: TrainExample
    operatorEpoch: {epochs}
    operatorConf: {{labelColumn: label}}
models:
  - {{modelName: bench-local, connectionName: bench}}
  - {{modelName: bench-docker, connectionName: bench}}
serviceInfos:
  - {{siName: local-small, siCpu: 1, siMemory: 1024}}
  - {{siName: docker-small, siCpu: 1, siMemory: 1024, siRuntimePattern: DOCKER}}
nodes:
  - nodeName: bench-local
    operatorRuntimeType: TRAIN
    nodeStatus: EDIT_FINISH
    relation: {{operator: bench, sources: [train, test, predictions], model: bench-local,
                serviceInfo: local-small}}
  - nodeName: bench-docker
    operatorRuntimeType: TRAIN
    nodeStatus: EDIT_FINISH
    relation: {{operator: bench, sources: [train, test, predictions], model: bench-docker,
                serviceInfo: docker-small}}
"""


class Control:
    """A control server in this process (uvicorn thread) whose Docker adapter uses `host` / `image`."""

    def __init__(self, home: Path, host: str, image: str) -> None:
        import uvicorn

        from control.api.app import create_app
        from control.deploy import free_port
        from control.settings import Settings

        settings = Settings(
            home=home, port=free_port(), docker_host=host, docker_image=image, docker_pull="never"
        )
        self.url = f"http://{settings.host}:{settings.port}"
        self.app = create_app(settings)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host=settings.host, port=settings.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Control:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("control did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


async def timed_run(url: str, node: str, model: str, limit_s: float = 600) -> tuple[float, dict[str, float]]:
    """Seconds from startNodeTask to the new model version listed; the agent's `timings:` stages."""
    from control.client import AsyncControlClient
    from control.schemas import RunState, TaskEvent
    from runtime_agent.timings import parse_line

    async with AsyncControlClient(url, timeout=60) as client:
        node_id = int((await client.get(SPACE, "nodes", node))["id"])
        before = len((await client.get(SPACE, "models", model)).get("versions") or [])
        started = time.perf_counter()
        run_id = (await client.start_node_task(TaskEvent(task_id=node_id))).run_ids[0]
        took: float | None = None
        while True:
            now = time.perf_counter()
            if (
                took is None
                and len((await client.get(SPACE, "models", model)).get("versions") or []) > before
            ):
                took = now - started
            run = await client.get_run(run_id)
            if run.state in (RunState.FAILED, RunState.STOPPED):
                raise RuntimeError(f"run {run_id} on {node} {run.state}: {run.reason}")
            if took is not None and run.state == RunState.SUCCEEDED:
                break
            if now > started + limit_s:
                raise RuntimeError(f"run {run_id} on {node} did not finish in {limit_s:.0f}s ({run.state})")
            await asyncio.sleep(0.05)
        text = ""
        waited = time.perf_counter() + 20  # a container's log is copied after the run ends
        while "timings:" not in text and time.perf_counter() < waited:
            text = (await client.run_logs(run_id, limit=1 << 22)).text
            if "timings:" not in text:
                await asyncio.sleep(0.3)
        return took, parse_line(text)


async def apply(url: str, data: Path, epochs: int) -> None:
    from control.cli._spec import load_spec
    from control.cli.apply import apply_spec
    from control.client import AsyncControlClient

    path = data / "bench.yaml"
    path.write_text(SPEC.format(data=data, epochs=epochs))
    async with AsyncControlClient(url, timeout=60) as client:
        await apply_spec(client, load_spec([path], SPACE))


def empty_container(host: str, image: str) -> float:
    """Create, start, wait for and remove a container running `python3 -c pass` in the image."""
    from docker.client import DockerClient

    client = DockerClient(base_url=host, timeout=120)
    try:
        started = time.perf_counter()
        container = client.containers.run(
            image, entrypoint=["python3", "-c", "pass"], network_mode="host", init=True, detach=True
        )
        container.wait(timeout=120)
        container.remove(force=True)
        return time.perf_counter() - started
    finally:
        client.close()


def engine_and_image(args: argparse.Namespace) -> tuple[str, str, Any]:
    """(engine URL, image tag, what to release after) from the arguments or the test suite's engine."""
    if args.docker_host and args.image:
        return args.docker_host, args.image, None
    from tests.docker_support import acquire_engine, ensure_agent_image

    engine = acquire_engine()
    return args.docker_host or engine.host, args.image or ensure_agent_image(engine), engine


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--docker-host", help="the engine (default: the test suite's, started if needed)")
    parser.add_argument("--image", help="the agent image (default: the test suite's, built if needed)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds of quiet before each timing")
    args = parser.parse_args()

    from control.cli.quickstart import make_dataset

    host, image, engine = engine_and_image(args)
    load_before = os.getloadavg()[0]
    seconds: dict[str, list[float]] = {"local": [], "docker": [], "empty": []}
    stages: dict[str, list[dict[str, float]]] = {"local": [], "docker": []}
    try:
        with tempfile.TemporaryDirectory(prefix="atom-container-") as tmp:
            home = Path(tmp) / "home"
            data = home / "data"  # under control's home: the container sees the same path
            make_dataset(data, args.rows)
            with Control(home, host, image) as control:
                asyncio.run(apply(control.url, data, args.epochs))
                for i in range(args.repeat):
                    for key in ("local", "docker"):
                        time.sleep(args.settle)
                        took, timings = asyncio.run(timed_run(control.url, f"bench-{key}", f"bench-{key}"))
                        seconds[key].append(took)
                        stages[key].append(timings)
                    time.sleep(args.settle)
                    seconds["empty"].append(empty_container(host, image))
                    done = " ".join(f"{k}={v[-1]:.2f}s" for k, v in seconds.items())
                    print(f"round {i + 1}: {done}", flush=True)
    finally:
        if engine is not None:
            from tests.docker_support import release_engine

            release_engine(engine)
    notes = [
        f"Load average (1 min) at the start {load_before:.2f}, at the end {os.getloadavg()[0]:.2f}"
        " (the machine is shared; figures move with it)."
    ]
    report(args, host, image, seconds, stages, notes)
    return 0


def report(
    args: argparse.Namespace,
    host: str,
    image: str,
    seconds: dict[str, list[float]],
    stages: dict[str, list[dict[str, float]]],
    notes: list[str],
) -> None:
    local = median(seconds["local"])
    labels = {
        "local": "Atom run, local adapter (a child process of control)",
        "docker": "Atom run, Docker adapter (a container of the agent image)",
        "empty": "an empty container: python3 -c pass in the same image",
    }
    rows = []
    for key, label in labels.items():
        runs = seconds[key]
        ratio = f"{median(runs) / local:.2f}x" if key != "empty" else ""
        rows.append([label, f"{median(runs):.2f}", ", ".join(f"{r:.2f}" for r in runs), ratio])
    main_table = table(["contender", "seconds (median)", "runs", "vs local"], rows)
    stage_rows = []
    for key in ("local", "docker"):
        names: list[str] = []
        for timings in stages[key]:
            names += [n for n in timings if n not in names]
        medians = {n: median([t[n] for t in stages[key] if n in t]) for n in names}
        total = medians.pop("total", None)
        if total is not None:
            medians["dispatch + agent start (run - agent total)"] = median(seconds[key]) - total
        for name, value in sorted(medians.items(), key=lambda kv: -kv[1]):
            if value >= 0.01:
                stage_rows.append([key, name, f"{value:.2f}"])
    machine = f"{platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()})"
    lines = [
        "# Container overhead: the same run through the local adapter and the Docker adapter",
        "",
        f"Machine: {machine}; `python benchmarks/container_overhead.py --rows {args.rows} --epochs"
        f" {args.epochs} --repeat {args.repeat}`; engine {host}, image {image}.",
        "Job: TrainExample's MLP on the quickstart dataset (80% train.csv, 20% test.parquet) under control's",
        "home, predictions written to a CSV, the model uploaded; timed from the startNodeTask request to the",
        "model version listed by the API. Contenders interleaved, medians.",
        "",
        main_table,
        "",
        "The agent's own stages (its `timings:` log line, medians):",
        "",
        table(["run", "stage", "seconds (median)"], stage_rows) if stage_rows else "",
        "",
        *notes,
    ]
    text = "\n".join(lines).rstrip() + "\n"
    print("\n" + text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
