"""Adaptive batching in the model server: the batcher alone, the engine, and 200 requests at a real server."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn

from runtime_agent.errors import ModelError
from runtime_agent.serve import LoadedModel, ModelServer, create_app, local_loader
from runtime_agent.serve_batching import BatchConfig, Batcher, WorkerThread
from tests.runtime_agent.conftest import tabular

EXAMPLE = "runtime_agent.examples.train_example:TabularReasoning"


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.up.set()


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """`app` under uvicorn on a free port, in a thread of this process; its base URL. Stopped at exit."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = _Uvicorn(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="test-uvicorn")
    thread.start()
    try:
        assert server.up.wait(timeout=60), "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
        assert not thread.is_alive()


# -- the batcher alone ---------------------------------------------------------------------------


def _doubling(calls: list[list[int]]) -> Any:
    async def run(items: list[int]) -> list[Any]:
        calls.append(list(items))
        return [ValueError(f"odd {i}") if i == 13 else i * 2 for i in items]

    return run


def _batcher(runner: Any, size: int = 32, wait_ms: float = 2.0) -> Batcher[int, int]:
    return Batcher(runner, BatchConfig(size, wait_ms / 1000), rows=lambda i: 1, key=lambda i: i % 2)


async def test_each_caller_gets_its_own_result_and_batches_form() -> None:
    calls: list[list[int]] = []
    batcher = _batcher(_doubling(calls), size=8)
    values = [i for i in range(40) if i != 13]
    results = await asyncio.gather(*(batcher.submit(i) for i in values))
    assert results == [i * 2 for i in values]
    assert all(len(c) <= 8 for c in calls) and len(calls) < len(values)
    assert all(len({i % 2 for i in c}) == 1 for c in calls)  # different keys never share a batch
    assert sorted(i for c in calls for i in c) == values
    assert batcher.stats.batches == len(calls) and batcher.stats.requests == len(values)
    await batcher.aclose()


async def test_an_error_for_one_item_fails_that_request_alone() -> None:
    batcher = _batcher(_doubling([]))
    results = await asyncio.gather(*(batcher.submit(i) for i in (11, 13, 15)), return_exceptions=True)
    assert results[0] == 22 and results[2] == 30
    assert isinstance(results[1], ValueError) and str(results[1]) == "odd 13"


async def test_a_runner_error_fails_every_request_of_its_batch_only() -> None:
    async def run(items: list[int]) -> list[int]:
        if 3 in items:
            raise RuntimeError("model exploded")
        return items

    batcher = _batcher(run)
    odd = [batcher.submit(i) for i in (1, 3, 5)]  # one batch (key 1)
    even = [batcher.submit(i) for i in (2, 4)]  # another (key 0)
    results = await asyncio.gather(*odd, *even, return_exceptions=True)
    assert [str(r) for r in results[:3]] == ["model exploded"] * 3
    assert results[3:] == [2, 4]


@pytest.mark.parametrize(("size", "wait_ms"), [(1, 2.0), (32, 0.0)])
async def test_size_1_or_wait_0_turns_batching_off(size: int, wait_ms: float) -> None:
    calls: list[list[int]] = []
    batcher = _batcher(_doubling(calls), size=size, wait_ms=wait_ms)
    assert not batcher.config.enabled
    assert await asyncio.gather(*(batcher.submit(i) for i in range(6))) == [0, 2, 4, 6, 8, 10]
    assert calls == [[i] for i in range(6)]


async def test_a_batch_waits_for_requests_on_their_way() -> None:
    calls: list[list[int]] = []
    batcher = _batcher(_doubling(calls), wait_ms=60_000)  # only the arrival ends the wait here
    with batcher.arriving():  # a request is being read: the batch waits for it
        first = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not first.done() and calls == []
        second = asyncio.ensure_future(batcher.submit(4))
    assert await asyncio.gather(first, second) == [4, 8]
    assert calls == [[2, 4]]


def test_a_batcher_serves_one_event_loop_after_another() -> None:
    calls: list[list[int]] = []
    batcher = _batcher(_doubling(calls))

    async def some() -> list[int]:
        return list(await asyncio.gather(*(batcher.submit(i) for i in (2, 4))))

    assert asyncio.run(some()) == [4, 8]
    assert asyncio.run(some()) == [4, 8]


async def test_closing_fails_what_still_waits() -> None:
    release = asyncio.Event()

    async def slow(items: list[int]) -> list[int]:
        await release.wait()
        return items

    batcher = _batcher(slow, size=1)
    running = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 4)]
    await asyncio.sleep(0)
    await batcher.aclose()
    results = await asyncio.gather(*running, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results), results


def test_batch_config_from_model_conf() -> None:
    assert BatchConfig.from_model_conf({}) == BatchConfig(32, 0.002)
    assert BatchConfig.from_model_conf({"maxBatchSize": 8, "maxBatchWaitMs": 5}) == BatchConfig(8, 0.005)
    assert not BatchConfig.from_model_conf({"maxBatchSize": 1}).enabled
    assert not BatchConfig.from_model_conf({"maxBatchWaitMs": 0}).enabled
    for bad in ({"maxBatchSize": 0}, {"maxBatchSize": "8"}, {"maxBatchSize": 2.5}, {"maxBatchWaitMs": -1}):
        with pytest.raises(ModelError, match="modelConf.maxBatch"):
            BatchConfig.from_model_conf(bad)


async def test_worker_thread_runs_calls_in_order_on_one_thread_and_ends() -> None:
    worker = WorkerThread("test-worker", idle_s=0.05)
    names = await asyncio.gather(
        *(worker.run(lambda i=i: (i, threading.current_thread().name)) for i in range(5))
    )
    assert [n[0] for n in names] == list(range(5)) and {n[1] for n in names} == {"test-worker"}
    idle = worker._thread
    assert idle is not None
    idle.join(timeout=30)  # ends by itself once idle
    assert not idle.is_alive()
    assert await worker.run(lambda: 7) == 7  # and a new one starts on the next call
    busy = worker._thread
    await worker.aclose()
    assert busy is not None and not busy.is_alive()


# -- the engine: operators that batch oddly ------------------------------------------------------


class _Summing:
    """Answers one row per call (the sum of all rows): a batch cannot be split, so it is redone alone."""

    calls = 0

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        return pd.DataFrame({"total": [float(df["x"].sum())]})


class _AsyncDoubling:
    async def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        await asyncio.sleep(0)
        return pd.DataFrame({"y": df["x"] * 2})


def _body(values: list[float], rid: str = "") -> bytes:
    tensor = {"name": "x", "shape": [len(values)], "datatype": "FP64", "data": values}
    return json.dumps({"id": rid, "inputs": [tensor]}).encode()


async def _answers(operator: Any, bodies: list[bytes]) -> list[dict[str, Any]]:
    async def load() -> LoadedModel:
        return LoadedModel(name="m", version="1", operator=operator)

    server = ModelServer(load, name="m")
    await server.load()
    assert server.engine is not None
    engine = server.engine

    async def one(body: bytes) -> dict[str, Any]:
        async def read() -> bytes:
            return body

        answer = await engine.answer(read, None, name="m", version="1")
        assert answer.status == 200, answer.body
        return dict(json.loads(answer.body))

    try:
        return list(await asyncio.gather(*(one(b) for b in bodies)))
    finally:
        await server.aclose()


async def test_a_model_that_changes_the_row_count_is_asked_one_request_at_a_time() -> None:
    operator = _Summing()
    got = await _answers(operator, [_body([1.0, 2.0]), _body([10.0]), _body([5.0, 5.0, 5.0])])
    assert [a["outputs"][0]["data"] for a in got] == [[3.0], [10.0], [15.0]]
    assert operator.calls == 4  # the batch of three, then each alone


async def test_an_async_predict_is_batched_too() -> None:
    got = await _answers(_AsyncDoubling(), [_body([float(i)], f"r{i}") for i in range(10)])
    assert [(a["id"], a["outputs"][0]["data"]) for a in got] == [(f"r{i}", [2.0 * i]) for i in range(10)]


# -- 200 concurrent requests at a real server ----------------------------------------------------


def _request(i: int, rng: np.random.Generator) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Request `i` and the frame an unbatched server would give the model (None: an invalid request)."""
    df = tabular(int(rng.integers(1, 65)), seed=1000 + i)
    if i % 40 == 7:  # the wrong width: fails alone
        data = np.column_stack([df.f0, df.f1, df.f1]).tolist()
        return {
            "id": f"r{i}",
            "inputs": [{"name": "x", "shape": [len(df), 3], "datatype": "FP32", "data": data}],
        }, None
    if i % 3 == 0:  # the column form, FP64: batched apart from the FP32 matrices
        inputs = [
            {"name": c, "shape": [len(df)], "datatype": "FP64", "data": df[c].tolist()} for c in ("f0", "f1")
        ]
        return {"id": f"r{i}", "inputs": inputs}, df[["f0", "f1"]].reset_index(drop=True)
    matrix = df[["f0", "f1"]].to_numpy(dtype="float32")
    tensor = {"name": "input", "shape": [len(df), 2], "datatype": "FP32", "data": matrix.tolist()}
    return {"id": f"r{i}", "inputs": [tensor]}, pd.DataFrame(matrix, columns=["f0", "f1"])


async def test_200_concurrent_requests_each_get_the_unbatched_answer(trained_example) -> None:  # type: ignore[no-untyped-def]
    loader = local_loader(trained_example.model_dir, EXAMPLE, name="tabular", model_conf={"maxBatchSize": 16})
    server = ModelServer(loader, name="tabular")
    await server.load()
    assert server.model is not None and server.engine is not None
    operator = server.model.operator
    rng = np.random.default_rng(3)
    cases = [_request(i, rng) for i in range(200)]
    expected = [operator.predict(frame) if frame is not None else None for _, frame in cases]

    with live_server(create_app(server, load_on_startup=False)) as url:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
            responses = await asyncio.gather(
                *(client.post("/v2/models/tabular/infer", json=b) for b, _ in cases)
            )

    for (body, _), want, resp in zip(cases, expected, responses, strict=True):
        if want is None:
            assert resp.status_code == 400 and resp.json()["error"] == "input 'x': expected 2 features, got 3"
            continue
        assert resp.status_code == 200, resp.text
        got = resp.json()
        assert got["id"] == body["id"] and got["model_name"] == "tabular"
        outputs = {o["name"]: o for o in got["outputs"]}
        assert list(outputs) == list(want.columns)
        assert outputs["prediction"]["shape"] == [len(want)]
        assert outputs["prediction"]["data"] == want["prediction"].tolist()
        for column in want.columns[1:]:
            np.testing.assert_allclose(outputs[column]["data"], want[column].to_numpy(), rtol=1e-5, atol=1e-6)
    valid = sum(w is not None for w in expected)
    stats = server.engine.batcher.stats
    assert stats.requests == valid and stats.rows == sum(len(w) for w in expected if w is not None)
    assert stats.batches < valid and stats.largest > 1  # requests did share predict calls
    assert server.engine.worker._thread is None  # the app's shutdown stopped the predict thread
