"""An original-runtime operator end to end: live control, a real agent process, MariaDB tables, a service.

The training operator (`SoftmaxTrainReporting`) reports, per batch, what the agent handed it;
the test checks those against the table: features only, `labels` the batch's label values, at
most operatorReadNum rows per call. Its pickled model becomes a model version, AUTO_DEPLOY
starts `SoftmaxReasoning` as a service, and an Open Inference Protocol request gets predictions
(the request's id column is left out before `predict`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from control.client import AsyncControlClient
from control.deploy import free_port
from control.schemas import TaskEvent
from control.settings import Settings
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_SOCKET, MYSQL_USER, mysql_connect
from tests.control.factory import LAMP, SP, ok
from tests.e2e.conftest import LiveControl, run_state, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.slow]

TRAIN_ROWS, TEST_ROWS, READ_NUM = 1000, 300, 128
CENTERS = np.array([[0.0, 0.0], [6.0, 6.0], [-6.0, 6.0]])
OPERATORS = "tests.runtime_agent.legacy_operators"


def samples(n: int, seed: int, first_id: int = 1) -> list[tuple[int, float, float, int]]:
    """Rows (id, f0, f1, label): the label is a function of the id, the features its cluster."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(first_id, first_id + n):
        label = (i * 7) % 3
        f0, f1 = CENTERS[label] + rng.normal(scale=1.0, size=2)
        rows.append((i, float(f0), float(f1), label))
    return rows


@pytest.fixture
def tables(mysql_database: str) -> str:
    conn = mysql_connect(mysql_database)
    with conn.cursor() as cur:
        for table, rows in (("samples", samples(TRAIN_ROWS, 1)), ("holdout", samples(TEST_ROWS, 2, 5001))):
            cur.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, f0 DOUBLE, f1 DOUBLE, label INT)")
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)", rows)
    conn.commit()
    conn.close()
    return mysql_database


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveControl]:
    settings = Settings(
        home=tmp_path / "home", port=free_port(), heartbeat_timeout=60, reconcile_interval=0.3
    )
    with LiveControl(settings) as control:
        yield control
        control.kill_started()


async def _define(api: httpx.AsyncClient, database: str, models_dir: Path) -> int:
    conn: dict[str, Any] = {
        "connectName": "dw",
        "connectType": "MYSQL",
        "connectAddr": MYSQL_HOST,
        "connectPort": MYSQL_PORT,
        "connectAccount": MYSQL_USER,
        "connectPassword": MYSQL_PASSWORD,
        "connectSpace": database,
    }
    if MYSQL_SOCKET:
        conn["sourceConf"] = {"unix_socket": MYSQL_SOCKET}
    await ok(await api.put(SP, json={"spaceName": "default"}))
    await ok(await api.put(f"{SP}/connections/dw", json=conn))
    files = {"connectName": "models", "connectType": "FILE", "connectAddr": str(models_dir)}
    await ok(await api.put(f"{SP}/connections/models", json=files))
    ids = []
    for name, role in (("samples", "source"), ("holdout", "test_source")):
        body = {
            "sourceName": name,
            "connectionName": "dw",
            "sourceType": role,
            "operateExecute": name,
            "paginateReadNum": 300,
            "operatorReadNum": READ_NUM,
        }
        ids.append((await ok(await api.put(f"{SP}/sources/{name}", json=body)))["id"])
    op = await ok(
        await api.put(
            f"{SP}/operators/softmax",
            json={
                "operatorName": "softmax",
                "operatorRuntimeType": "TRAIN",
                "moduleName": OPERATORS,
                "executeObject": "SoftmaxTrainReporting",
                "deployType": "AUTO_DEPLOY",
                "operatorConf": {"classes": 3, "labelColumn": "label"},
                "modelConf": {"servingObject": f"{OPERATORS}:SoftmaxReasoning"},
            },
        )
    )
    model = await ok(
        await api.put(f"{SP}/models/softmax", json={"modelName": "softmax", "connectionName": "models"})
    )
    si = await ok(await api.put(f"{SP}/service-infos/small", json={"siName": "small", "siCpu": 1}))
    node = await ok(
        await api.put(f"{SP}/nodes/softmax", json={"nodeName": "softmax", "operatorRuntimeType": "TRAIN"})
    )
    relation = {
        "nodeId": node["id"],
        "operatorId": op["id"],
        "dataSourceIds": ids,
        "modelID": model["id"],
        "serviceInfoId": si["id"],
    }
    await ok(await api.post(f"{LAMP}/node/createNodeRelation", json=relation))
    await ok(await api.patch(f"{SP}/nodes/softmax", json={"nodeStatus": "EDIT_FINISH"}))
    return int(node["id"])


def _batches(points: list[dict[str, Any]]) -> list[dict[str, float]]:
    steps: dict[int, dict[str, float]] = {}
    for p in points:
        steps.setdefault(p["step"], {})[p["name"]] = p["value"]
    return [v for _, v in sorted(steps.items()) if "batch_rows" in v]


async def test_original_operator_trains_on_mysql_and_serves(
    live: LiveControl, tables: str, tmp_path: Path
) -> None:
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=30) as api,
        AsyncControlClient(live.url) as client,
    ):
        node_id = await _define(api, tables, tmp_path / "models")
        run_id = (await client.start_node_task(TaskEvent(task_id=node_id))).run_ids[0]
        run = await wait_for(
            lambda: run_state(client, run_id, ("succeeded", "failed", "stopped")), timeout=180, what="the run"
        )
        assert run.state.value == "succeeded", run.reason
        assert run.rows_read == TRAIN_ROWS + TEST_ROWS

        # per execute(): at most operatorReadNum rows, as many labels, two features, this batch's labels
        batches = _batches(await ok(await api.get(f"/api/v1/runs/{run_id}/metrics")))
        table = samples(TRAIN_ROWS, 1)
        offset = 0
        for batch in batches:
            n = int(batch["batch_rows"])
            assert 0 < n <= READ_NUM and batch["batch_labels"] == n and batch["batch_features"] == 2
            rows = table[offset : offset + n]
            assert batch["batch_label_sum"] == sum(r[3] for r in rows)
            assert batch["batch_first_f0"] == pytest.approx(rows[0][1])
            offset += n
        assert offset == TRAIN_ROWS and len(batches) >= TRAIN_ROWS // READ_NUM

        # result()'s pickle is a model version, scored by the operator, and served
        model = await ok(await api.get(f"{SP}/models/softmax"))
        [version] = model["versions"]
        assert version["modelScore"] >= 0.95

        async def ready() -> Any:
            services = await ok(await api.get("/api/v1/services"))
            mine = [sv for sv in services if sv["runtimeId"] == run_id]
            if mine and mine[0]["state"] in ("failed", "stopped"):
                raise AssertionError(f"service {mine[0]['state']}: {mine[0].get('reason')}")
            return mine[0] if mine and mine[0]["state"] == "ready" else None

        service = await wait_for(ready, timeout=120, what="the inference service")
        query = samples(12, 3, 9001)
        request = {
            "inputs": [
                {"name": "id", "shape": [12], "datatype": "INT64", "data": [r[0] for r in query]},
                {"name": "f0", "shape": [12], "datatype": "FP64", "data": [r[1] for r in query]},
                {"name": "f1", "shape": [12], "datatype": "FP64", "data": [r[2] for r in query]},
            ]
        }
        base = service["endpoint"].rstrip("/")
        base = base if "://" in base else f"http://{base}"
        resp = await api.post(f"{base}/v2/models/softmax/infer", json=request)
        assert resp.status_code == 200, resp.text
        [output] = resp.json()["outputs"]
        assert output["name"] == "prediction" and output["shape"] == [12]
        assert sum(p == r[3] for p, r in zip(output["data"], query, strict=True)) >= 11
