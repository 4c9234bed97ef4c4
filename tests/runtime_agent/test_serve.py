"""The V2 inference server: in-process over ASGI for the protocol, and one real `serve` process."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from runtime_agent.serve import LoadedModel, ModelServer, create_app, local_loader
from tests.runtime_agent.conftest import agent_env, tabular

EXAMPLE = "runtime_agent.examples.train_example:TabularReasoning"
LEGACY = "runtime_agent.examples.legacy_example:CentroidReasoning"


@pytest.fixture
async def client(trained_example) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    server = ModelServer(
        local_loader(trained_example.model_dir, EXAMPLE, name="tabular", version="3"), name="tabular"
    )
    await server.load()
    app = create_app(server, load_on_startup=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as c:
        yield c
    await server.aclose()


def columns_request(df) -> dict:  # type: ignore[no-untyped-def]
    return {
        "id": "req-1",
        "inputs": [
            {"name": c, "shape": [len(df)], "datatype": "FP64", "data": df[c].tolist()} for c in ("f0", "f1")
        ],
    }


async def test_health_and_metadata(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    assert (await client.get("/v2/models/tabular/ready")).json() == {"name": "tabular", "ready": True}
    meta = (await client.get("/v2/models/tabular")).json()
    assert meta["name"] == "tabular" and meta["versions"] == ["3"]
    assert meta["platform"] == "atom-runtime/TabularReasoning"
    # a generic OIP client builds the one [-1, 2] tensor; the per-column form is described beside it
    assert meta["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 2], "parameters": {"columns": ["f0", "f1"]}}
    ]
    assert [t["name"] for t in meta["parameters"]["column_inputs"]] == ["f0", "f1"]
    assert [t["name"] for t in meta["outputs"]] == [
        "prediction",
        "probability_0",
        "probability_1",
        "probability_2",
    ]


async def test_infer_with_one_tensor_per_column(client: httpx.AsyncClient) -> None:
    df = tabular(40, seed=7)
    resp = await client.post("/v2/models/tabular/infer", json=columns_request(df))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model_name"] == "tabular" and body["model_version"] == "3" and body["id"] == "req-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    prediction = outputs["prediction"]
    assert prediction["datatype"] == "INT64" and prediction["shape"] == [40]
    assert sum(p == t for p, t in zip(prediction["data"], df.label, strict=True)) >= 36
    assert outputs["probability_1"]["datatype"] == "FP32"


async def test_infer_with_a_matrix_and_versioned_path(client: httpx.AsyncClient) -> None:
    df = tabular(10, seed=8)
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": [10, 2],
                "datatype": "FP32",
                "data": df[["f1", "f0"]].values.tolist(),
                "parameters": {"columns": ["f1", "f0"]},
            }
        ],
        "outputs": [{"name": "prediction"}],
    }
    resp = await client.post("/v2/models/tabular/versions/3/infer", json=body)
    assert resp.status_code == 200, resp.text
    [output] = resp.json()["outputs"]
    assert output["name"] == "prediction" and len(output["data"]) == 10
    # without parameters.columns the model's declared inputs name the columns
    body["inputs"][0]["data"] = df[["f0", "f1"]].values.tolist()
    del body["inputs"][0]["parameters"]
    again = await client.post("/v2/models/tabular/infer", json=body)
    assert again.json()["outputs"][0]["data"] == output["data"]


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v2/models/other/infer", None, 404, "unknown model 'other'"),
        ("/v2/models/tabular/versions/9/infer", None, 404, "no version '9'"),
        ("/v2/models/tabular/infer", {"inputs": []}, 400, "invalid inference request"),
        (
            "/v2/models/tabular/infer",
            {"inputs": [{"name": "f0", "shape": [2], "datatype": "FP32", "data": [1]}]},
            400,
            "input 'f0': shape [2] needs 2 values, got 1",
        ),
        (
            "/v2/models/tabular/infer",
            {"inputs": [{"name": "f0", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
            400,
            "expected 2 features, got 1 (missing: f1)",
        ),
        (
            "/v2/models/tabular/infer",
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [[1.0, 2.0, 3.0, 4.0]]}]},
            400,
            "input 'x': expected 2 features, got 4",
        ),
        (
            "/v2/models/tabular/infer",
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "BYTES", "data": [["a", "b"]]}]},
            400,
            "input 'x': datatype BYTES, expected FP32",
        ),
        (
            "/v2/models/tabular/infer",
            {"inputs": [{"name": "x", "shape": [1, 2, 1], "datatype": "FP32", "data": [1.0, 2.0]}]},
            400,
            "expected [-1] per feature, or a single [-1, 2] tensor",
        ),
        (
            "/v2/models/tabular/infer",
            {"inputs": [{"name": "f0", "shape": [1], "datatype": "FP32"}]},
            400,
            "input 'f0' has no data",
        ),
        ("/v2/models/tabular/infer", b"{not json", 400, "invalid inference request: Invalid JSON"),
        (
            "/v2/models/tabular/infer",
            {"inputs": [{"name": "f0", "shape": [1], "datatype": "XX", "data": [1]}]},
            400,
            "unknown datatype",
        ),
    ],
)
async def test_errors(
    client: httpx.AsyncClient, path: str, body: dict | bytes | None, status: int, needle: str
) -> None:
    if isinstance(body, bytes):
        resp = await client.post(path, content=body)
    else:
        resp = await client.post(path, json=body if body is not None else columns_request(tabular(2)))
    assert resp.status_code == status
    assert needle in resp.json()["error"]
    assert "\n" not in resp.json()["error"]  # one line


async def test_answers_name_the_model_as_the_request_did(trained_example) -> None:  # type: ignore[no-untyped-def]
    async def load() -> LoadedModel:
        inner = await local_loader(trained_example.model_dir, EXAMPLE, name="tabular", version="3")()
        inner.aliases = ("tabular-svc",)
        return inner

    server = ModelServer(load, name="tabular")
    await server.load()
    app = create_app(server, load_on_startup=False)
    body = columns_request(tabular(3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as c:
        for name in ("tabular", "tabular-svc"):
            assert (await c.post(f"/v2/models/{name}/infer", json=body)).json()["model_name"] == name
            assert (await c.get(f"/v2/models/{name}")).json()["name"] == name
            assert (await c.get(f"/v2/models/{name}/ready")).json()["name"] == name
    await server.aclose()


async def test_not_ready_until_loaded(trained_example) -> None:  # type: ignore[no-untyped-def]
    server = ModelServer(local_loader(trained_example.model_dir, EXAMPLE, name="tabular"), name="tabular")
    app = create_app(server, load_on_startup=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as c:
        assert (await c.get("/v2/health/live")).status_code == 200
        assert (await c.get("/v2/health/ready")).status_code == 503
        resp = await c.post("/v2/models/tabular/infer", json=columns_request(tabular(2)))
        assert resp.status_code == 503 and "loading" in resp.json()["error"]
        await server.load()
        assert (await c.get("/v2/health/ready")).status_code == 200
        assert (await c.post("/v2/models/tabular/infer", json=columns_request(tabular(2)))).status_code == 200
    await server.aclose()


async def test_bad_serving_object_reports_why_not_ready(trained_example) -> None:  # type: ignore[no-untyped-def]
    server = ModelServer(local_loader(trained_example.model_dir, "no_such.module:Cls", name="m"), name="m")
    with pytest.raises(Exception, match="no_such.module"):
        await server.load()
    app = create_app(server, load_on_startup=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as c:
        resp = await c.get("/v2/health/ready")
        assert resp.status_code == 503 and "no_such.module" in resp.json()["error"]


async def test_legacy_reasoning_operator_serves(tmp_path: Path) -> None:
    from runtime_agent.testing import AgentRunner

    trained = await AgentRunner(
        "runtime_agent.examples.legacy_example:CentroidTrain", sources={"source": tabular(120, seed=9)}
    ).arun()
    assert trained.ok, trained.reason
    assert trained.model_address is not None
    archive = Path(trained.model_address.removeprefix("file://"))  # serve straight from model.tar.gz
    server = ModelServer(local_loader(archive, LEGACY, name="centroid"), name="centroid")
    await server.load()
    app = create_app(server, load_on_startup=False)
    df = tabular(20, seed=10)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as c:
        resp = await c.post("/v2/models/centroid/infer", json=columns_request(df))
    await server.aclose()
    assert resp.status_code == 200, resp.text
    [output] = resp.json()["outputs"]
    assert output["name"] == "prediction" and output["datatype"] == "INT64"
    assert sum(p == t for p, t in zip(output["data"], df.label, strict=True)) >= 18


def test_serving_the_example_model_leaves_torch_out(trained_example) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import sys, asyncio, pathlib\n"
        "from runtime_agent.serve import ModelServer, local_loader\n"
        f"model = pathlib.Path({str(trained_example.model_dir)!r})\n"
        f"s = ModelServer(local_loader(model, {EXAMPLE!r}, name='t'))\n"
        "asyncio.run(s.load()); asyncio.run(s.aclose())\n"
        "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=agent_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['pandas']"  # pandas is warmed up before ready; torch never comes


def test_numpy_and_torch_predictions_agree(trained_example, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from runtime_agent.examples import _numpy_mlp
    from runtime_agent.examples.train_example import TabularReasoning

    df = tabular(50, seed=31)
    lean = TabularReasoning()
    lean.load(trained_example.model_dir)
    assert lean._layers is not None and lean._model is None
    monkeypatch.setattr(_numpy_mlp, "read_state_dict", lambda path: None)  # as for a file numpy cannot read
    full = TabularReasoning()
    full.load(trained_example.model_dir)
    assert full._layers is None and full._model is not None
    a, b = lean.predict(df), full.predict(df)
    assert a["prediction"].tolist() == b["prediction"].tolist() and a.dtypes.equals(b.dtypes)
    for column in a.columns[1:]:
        np.testing.assert_allclose(a[column], b[column], rtol=1e-5, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_command_standalone(trained_example, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    archive = Path(trained_example.model_versions[0].model_address.removeprefix("file://"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime_agent",
            "serve",
            "--model",
            str(archive),
            "--operator",
            EXAMPLE,
            "--name",
            "tabular",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=agent_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        # wait for the two log lines that mean "socket bound" and "model loaded" (either order)
        while not (any("Uvicorn running" in x for x in seen) and any("version 1 ready" in x for x in seen)):
            seen.append(lines.get(timeout=60))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert http.get("/v2/health/ready").json() == {"ready": True}
            resp = http.post("/v2/models/tabular/infer", json=columns_request(tabular(5, seed=11)))
        assert resp.status_code == 200 and len(resp.json()["outputs"][0]["data"]) == 5
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM), "".join(seen)  # uvicorn re-raises SIGTERM after shutdown


def _pump(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream or ():
        lines.put(line)
