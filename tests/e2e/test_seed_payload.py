"""`POST /operator/create_operators` with the seed-000 payload shape runs the seed's TrainExample.

The payload is the seed's example field for field; only the addresses point at local files
(the seed's own host is not reachable from a test machine) and the operator runs 1 epoch.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from control.client import AsyncControlClient
from tests.e2e.conftest import make_tabular, run_state, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.slow]

CONNECT = {
    "id": 9,
    "colonyType": "SINGLE",
    "createTime": 1648133297000,
    "deleteFlag": 0,
    "mode": "string",
    "operationType": "string",
    "connectAccount": "lampup",
    "connectPassword": "Lampup@123",
    "connectAddr": "120.78.148.188",
    "connect_port": 3306,
    "sourceConf": {},
    "sourceCount": 0,
    "connectName": "string",
    "sourceRoute": "string",
    "sourceSize": "10",
    "connectSpace": "atom",
    "connectType": "MYSQL",
    "spaceId": 1,
    "updateTime": 1648636277000,
}
SOURCE = {
    "asyncLoad": True,
    "connectReadNum": 0,
    "connectionId": 9,
    "connectionName": "connection1",
    "createTime": 1648133522000,
    "dataExecuteAfter": "string",
    "dataExecuteBefore": "string",
    "dataFormat": "labelsCSV",
    "sourceType": "source",
    "deleteFlag": 0,
    "disposable": True,
    "id": 87,
    "operateExecute": "/atom_runtime/example/train.pkl",
    "operateExecuteAfter": "string",
    "operateExecuteBefore": "string",
    "operatorReadNum": 0,
    "order": 0,
    "paginateReadNum": 0,
    "sourceConf": {},
    "sourceSpace": "",
    "spaceId": 14,
    "taskInitExecute": "string",
    "updateTime": 1648133522000,
}
MODEL = {
    "id": 23,
    "connectId": 9,
    "connectStatus": "connected",
    "createTime": 1648133455000,
    "deleteFlag": 0,
    "modelAddress": "string",
    "modelCreateType": "TRAIN",
    "modelName": "string",
    "modelScore": 0,
    "modelStatus": "string",
    "modelTechnologyType": "MULTI_MODE",
    "modelType": "PRE_TRAINING",
    "modelVersion": "string",
    "nodeId": 0,
    "operatorId": 14,
    "operatorResult": "CONTAIN_OPTIMAL",
    "produceWay": "string",
    "resourceSize": "string",
    "resourceType": "string",
    "resourceValue": "string",
    "runtimeId": 0,
    "spaceId": 0,
    "updateTime": 1648133455000,
}
OPERATOR = {
    "id": 14,
    "codeAddress": "127.0.0.1",
    "codeMode": "CODE",
    "codeVersion": "0.0.1",
    "createTime": 1648132810000,
    "deleteFlag": 0,
    "deployType": "NOT_DEPLOY",
    "environmentConf": "",
    "executeObject": "TrainExample",
    "level": 1,
    "modelConf": "",
    "moduleName": "atom_runtime.example.train_example",
    "operatorConf": "",
    "operatorEpoch": 2,
    "operatorModel": "OFFLINE",
    "operatorName": "testOperator",
    "operatorPlanRuntimes": "10",
    "operatorPriority": 1,
    "operatorRuntimeType": "TRAIN",
    "operatorSourceId": 1,
    "operatorSourceType": "CUSTOM",
    "operatorTemplateId": 1,
    "resourcesAccountId": 1,
    "spaceId": 1,
    "updateTime": 1648132810000,
}


def seed_payload(data: Path) -> dict[str, Any]:
    local = {**CONNECT, "connectType": "FILE", "connectAddr": str(data), "connectPassword": ""}
    pairs = []
    for role, target in (("source", "train.pkl"), ("test_source", "val.pkl"), ("sink", "predictions.csv")):
        pairs.append(
            {
                "connectTo": copy.deepcopy(local),
                "sourceTo": {
                    **SOURCE,
                    "sourceType": role,
                    "operateExecute": target,
                    "dataFormat": "csv" if target.endswith("csv") else "labelsCSV",
                },
            }
        )
    return {
        "modelConnect": local,
        "modelTo": MODEL,
        "operatorTo": {**OPERATOR, "operatorEpoch": 1, "operatorConf": '{"labelColumn": "label"}'},
        "sourceAndConnects": pairs,
    }


async def test_seed_payload_runs(live_control, client: AsyncControlClient, tmp_path: Path) -> None:
    import pandas as pd

    data = tmp_path / "data"
    make_tabular(data, rows=300)
    pd.read_csv(data / "train.csv").to_pickle(data / "train.pkl")
    pd.read_csv(data / "test.csv").to_pickle(data / "val.pkl")
    for key in ("modelConnect",):
        assert key in seed_payload(data)
    started = await client.create_operators(seed_payload(data))
    run = await wait_for(
        lambda: run_state(client, started.run_ids[0], ("succeeded", "failed", "stopped")),
        timeout=300,
        what="the seed run",
    )
    assert run.state.value == "succeeded", run.reason
    assert run.node_name == "testoperator"
    assert (data / "predictions.csv").exists()
    models = await client.list("default", "models")
    assert models[0]["modelName"] == "string" and models[0]["versions"][0]["modelVersion"] == "1"


async def test_seed_payload_refuses_unknown_fields(
    live_control, client: AsyncControlClient, tmp_path
) -> None:
    from control.errors import ControlAPIError

    payload = seed_payload(tmp_path)
    payload["operatorTo"]["gpuCount"] = 2
    with pytest.raises(ControlAPIError, match="gpuCount: unknown field"):
        await client.create_operators(payload)
