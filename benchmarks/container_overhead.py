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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "container_overhead.md"
SPACE = "bench"

from benchmarks._harness import Control, apply_text, median, stage_medians, table, timed_run  # noqa: E402

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
            with Control(home, docker_host=host, docker_image=image, docker_pull="never") as control:
                apply_text(
                    control.url, data / "bench.yaml", SPEC.format(data=data, epochs=args.epochs), SPACE
                )
                for i in range(args.repeat):
                    for key in ("local", "docker"):
                        time.sleep(args.settle)
                        took, timings = asyncio.run(
                            timed_run(control.url, SPACE, f"bench-{key}", f"bench-{key}")
                        )
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
        medians = stage_medians(stages[key])
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
