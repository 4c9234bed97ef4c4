"""A live control server (uvicorn in a thread, real SQLite store, reconcile loop on) for e2e tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn

from control.api.app import create_app
from control.client import AsyncControlClient
from control.deploy import free_port
from control.settings import Settings


class LiveControl:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://{settings.host}:{settings.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app, host=settings.host, port=settings.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveControl:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("control did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.kill_started()  # after the reconcile loop stopped: it cannot start another one now

    def kill_started(self) -> None:
        """Kill every agent and service process this control started (and their children)."""
        import os
        import signal

        for adapter in self.app.state.orchestrator.adapters.values():
            for pid in list(getattr(adapter, "_procs", {})):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


def kill_processes_of(home: Path) -> list[int]:
    """SIGKILL every process whose environment says `ATOM_HOME=home` (agents and services a control
    started and left running on purpose when it stopped); returns their pids."""
    import os
    import signal

    wanted = f"ATOM_HOME={home}".encode()
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


@pytest.fixture
def live_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", port=free_port(), heartbeat_timeout=60, reconcile_interval=0.3)


@pytest.fixture
def live_control(live_settings: Settings) -> Iterator[LiveControl]:
    with LiveControl(live_settings) as live:
        yield live
        live.kill_started()


@pytest.fixture
async def client(live_control: LiveControl) -> AsyncIterator[AsyncControlClient]:
    async with AsyncControlClient(live_control.url) as c:
        yield c


async def wait_for(probe: Callable[[], Any], *, timeout: float, what: str, every: float = 0.2) -> Any:  # noqa: ASYNC109
    """Poll `probe()` (sync or async) until it returns a truthy value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


def make_tabular(directory: Path, rows: int = 600, seed: int = 7) -> None:
    """Separable binary classification data: train.csv, test.csv."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    w = np.array([1.5, -2.0, 1.0, 0.5, -1.0, 2.0])
    y = (x @ w + 0.1 * rng.normal(size=rows) > 0).astype(int)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]).assign(label=y)
    directory.mkdir(parents=True, exist_ok=True)
    cut = int(rows * 0.8)
    df.iloc[:cut].to_csv(directory / "train.csv", index=False)
    df.iloc[cut:].to_csv(directory / "test.csv", index=False)


async def run_state(client: AsyncControlClient, run_id: int, states: tuple[str, ...]) -> Any:
    run = await client.get_run(run_id)
    return run if run.state.value in states else None


__all__ = ["LiveControl", "httpx", "kill_processes_of", "make_tabular", "run_state", "wait_for"]


async def service_key(control_url: str, service_id: int, token: str | None = None) -> str:
    """A new inference key for the service (`POST /api/v1/services/{id}/key`, shown once)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=control_url, headers=headers, timeout=30) as http:
        resp = await http.post(f"/api/v1/services/{service_id}/key")
    assert resp.status_code == 200, resp.text
    return str(resp.json()["key"])


async def infer_test_rows(
    endpoint: str, model: str, csv: Path, rows: int = 3, *, key: str | None
) -> httpx.Response:
    """POST the first `rows` rows of a test CSV (its label dropped) to a service's V2 infer route,
    with the service's key (`service_key`) as its bearer token."""
    frame = pd.read_csv(csv).drop(columns=["label"]).head(rows)
    body = {
        "inputs": [
            {"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()}
            for c in frame.columns
        ]
    }
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        return await http.post(f"{endpoint}/v2/models/{model}/infer", json=body)
