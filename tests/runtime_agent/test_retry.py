"""The agent's calls through a control outage, against a real HTTP server that is stopped and started.

The server plays control's agent routes on a fixed local port: it records every request and
answers with the status the test sets. No mocks: the agent's client really gets connection
refused while the server is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from control.client import AsyncControlClient
from control.deploy import free_port
from control.errors import ControlAPIError, ControlUnreachable
from control.schemas import Heartbeat, MetricReport, ModelVersionReport, RunState
from runtime_agent._retry import RetryPolicy
from runtime_agent.callbacks import ControlCallbacks

FAST = RetryPolicy(window=60, first=0.02, factor=2, cap=0.2, jitter=0.2)


class FakeControl:
    """A tiny HTTP server for control's agent routes; `stop()` and `start()` on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.status = 200
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                owner.requests.append((self.path, body))
                answer: dict[str, Any] = {"msg": "no"} if owner.status >= 400 else self._answer(body)
                data = json.dumps(answer).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
                if self.path.endswith("/model-version"):
                    return {"modelVersion": "1", "modelVersionId": 7}
                if self.path.endswith("/heartbeat"):
                    return {"stop": False}
                if self.path.endswith("/state"):
                    return {
                        "id": 3,
                        "nodeId": None,
                        "nodeName": "n",
                        "spaceId": None,
                        "operatorRuntimeType": "TRAIN",
                        "adapter": "local",
                        "state": body["state"],
                        "attempt": 1,
                        "createdAt": "2026-12-07T00:00:00Z",
                    }
                return {}

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
            self._server = None

    def paths(self, suffix: str) -> list[dict[str, Any]]:
        return [body for path, body in self.requests if path.endswith(suffix)]


@pytest.fixture
def control() -> Iterator[FakeControl]:
    fake = FakeControl(free_port())
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def callbacks(control: FakeControl) -> AsyncIterator[ControlCallbacks]:
    cb = ControlCallbacks(AsyncControlClient(control.url, token="t0ken", timeout=5), 3, retry=FAST)
    try:
        yield cb
    finally:
        await cb.aclose()


async def _until(probe: Any, what: str, timeout: float = 20) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not probe():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_backoff_grows_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(window=600, first=0.5, factor=2, cap=15, jitter=0.2)
    delays = policy.delays(random.Random(1))
    got = [next(delays) for _ in range(8)]
    for delay, nominal in zip(got, [0.5, 1, 2, 4, 8, 15, 15, 15], strict=True):
        assert nominal * 0.8 <= delay <= nominal
    assert len(set(got[5:])) > 1  # jittered, not all at the same instant


async def test_a_call_waits_for_control_to_come_back(
    control: FakeControl, callbacks: ControlCallbacks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="runtime_agent._retry")
    report = asyncio.create_task(callbacks.report_state(RunState.RUNNING, "agent up"))
    await _until(lambda: not callbacks.link.up, "the link to go down")
    await asyncio.sleep(0.3)  # several failed attempts
    assert not report.done()
    control.start()
    await asyncio.wait_for(report, timeout=20)
    assert control.paths("/state") == [{"state": "running", "reason": "agent up"}]
    assert callbacks.link.up
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "runtime_agent._retry"]
    assert [level for level, _ in lines] == [logging.WARNING, logging.INFO, logging.INFO]  # not per attempt
    assert "unreachable" in lines[0][1]
    assert lines[1][1].startswith("state running waits for control")
    assert "answers again" in lines[2][1]


async def test_transient_answers_are_retried_until_the_window_ends(control: FakeControl) -> None:
    control.status = 503
    control.start()
    policy = RetryPolicy(window=0.5, first=0.02, cap=0.1)
    cb = ControlCallbacks(AsyncControlClient(control.url, timeout=5), 3, retry=policy)
    try:
        with pytest.raises(ControlAPIError) as info:
            await cb.register_model_version(ModelVersionReport(model_address="file:///m.tar.gz"))
    finally:
        await cb.aclose()
    assert info.value.status_code == 503
    assert len(control.paths("/model-version")) >= 3


async def test_a_4xx_answer_is_final(control: FakeControl, callbacks: ControlCallbacks) -> None:
    control.status = 409
    control.start()
    with pytest.raises(ControlAPIError) as info:
        await callbacks.report_state(RunState.SUCCEEDED)
    assert info.value.status_code == 409 and not isinstance(info.value, ControlUnreachable)
    assert len(control.paths("/state")) == 1
    assert callbacks.link.up


async def test_a_zero_window_tries_once(control: FakeControl) -> None:
    cb = ControlCallbacks(AsyncControlClient(control.url, timeout=5), 3, retry=RetryPolicy(window=0))
    try:
        with pytest.raises(ControlUnreachable):
            await cb.task_spec()
    finally:
        await cb.aclose()


async def test_metrics_wait_during_an_outage_and_arrive_in_order(
    control: FakeControl, callbacks: ControlCallbacks
) -> None:
    for step in range(1, 41):
        await callbacks.report_metrics(MetricReport(step=step, values={"loss": 1 / step}))
        assert await callbacks.heartbeat(Heartbeat(stage=f"epoch {step}")) is False
    assert [r.step for r in callbacks.pending] == list(range(1, 41))
    control.start()
    assert await callbacks.heartbeat(Heartbeat(stage="back")) is False  # an answer drains the buffer
    assert [body["step"] for body in control.paths("/metrics")] == list(range(1, 41))
    assert [body["stage"] for body in control.paths("/heartbeat")] == ["back"]  # none were queued
    assert not callbacks.pending
    await callbacks.report_metrics(MetricReport(step=41, values={"loss": 0.01}))
    assert control.paths("/metrics")[-1]["step"] == 41


async def test_a_full_buffer_drops_the_oldest_with_one_warning(
    control: FakeControl, caplog: pytest.LogCaptureFixture
) -> None:
    cb = ControlCallbacks(AsyncControlClient(control.url, timeout=5), 3, retry=FAST, max_pending_metrics=5)
    try:
        for step in range(1, 9):
            await cb.report_metrics(MetricReport(step=step, values={"loss": 1.0}))
        assert [r.step for r in cb.pending] == [4, 5, 6, 7, 8]
        assert cb.dropped_metrics == 3
        dropped = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
        assert len(dropped) == 1
        control.start()
        await cb.flush_metrics()
        assert [body["step"] for body in control.paths("/metrics")] == [4, 5, 6, 7, 8]
    finally:
        await cb.aclose()


async def test_the_model_version_waits_for_the_buffered_metrics(
    control: FakeControl, callbacks: ControlCallbacks
) -> None:
    for step in (1, 2, 3):
        await callbacks.report_metrics(MetricReport(step=step, values={"loss": 1.0}))
    register = asyncio.create_task(
        callbacks.register_model_version(ModelVersionReport(model_address="file:///m.tar.gz"))
    )
    await asyncio.sleep(0.2)
    assert not register.done()
    control.start()
    assigned = await asyncio.wait_for(register, timeout=20)
    assert assigned is not None and assigned.model_version == "1"
    assert [path.rsplit("/", 1)[1] for path, _ in control.requests] == [
        "metrics",
        "metrics",
        "metrics",
        "model-version",
    ]
