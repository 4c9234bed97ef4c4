"""What the run benchmarks share: a control server in the benchmark's process, a spec applied to it,
and one run timed from its start request to its model version listed by the API."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path
from typing import Any


class Control:
    """A control server in this process (uvicorn in a thread, SQLite under `home`); `settings` are
    control's settings (`ray_address=...`, `docker_host=...`)."""

    def __init__(self, home: Path, **settings: Any) -> None:
        import uvicorn

        from control.api.app import create_app
        from control.deploy import free_port
        from control.settings import Settings

        conf = Settings(home=home, port=free_port(), **settings)
        self.url = f"http://{conf.host}:{conf.port}"
        self.app = create_app(conf)
        config = uvicorn.Config(self.app, host=conf.host, port=conf.port, log_level="warning")
        self.server = uvicorn.Server(config)
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


def apply_text(url: str, path: Path, text: str, space: str) -> None:
    """Write `text` (a spec YAML) to `path` and apply it to the control at `url`, as `atom apply` does."""
    from control.cli._spec import load_spec
    from control.cli.apply import apply_spec
    from control.client import AsyncControlClient

    path.write_text(text)
    spec = load_spec([path], space)

    async def apply() -> None:
        async with AsyncControlClient(url, timeout=60) as client:
            await apply_spec(client, spec)

    asyncio.run(apply())


async def timed_run(
    url: str, space: str, node: str, model: str, limit_s: float = 600
) -> tuple[float, dict[str, float]]:
    """Seconds from startNodeTask on `node` to a new version of `model` listed; the agent's timings."""
    from control.client import AsyncControlClient
    from control.schemas import RunState, TaskEvent
    from runtime_agent.timings import parse_line

    async with AsyncControlClient(url, timeout=60) as client:
        node_id = int((await client.get(space, "nodes", node))["id"])
        before = len((await client.get(space, "models", model)).get("versions") or [])
        started = time.perf_counter()
        run_id = (await client.start_node_task(TaskEvent(task_id=node_id))).run_ids[0]
        took: float | None = None
        while True:
            now = time.perf_counter()
            if (
                took is None
                and len((await client.get(space, "models", model)).get("versions") or []) > before
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
        waited = time.perf_counter() + 20  # a remote target's log is copied after the run ends
        while "timings:" not in text and time.perf_counter() < waited:
            text, offset = "", 0
            while True:
                chunk = await client.run_logs(run_id, offset=offset)
                text += chunk.text
                offset = chunk.next_offset
                if not chunk.text:
                    break
            if "timings:" not in text:
                await asyncio.sleep(0.3)
        return took, parse_line(text)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def stage_medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each agent stage over `runs` (stages in first-seen order)."""
    names: list[str] = []
    for timings in runs:
        names += [n for n in timings if n not in names]
    return {n: median([t[n] for t in runs if n in t]) for n in names}


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
