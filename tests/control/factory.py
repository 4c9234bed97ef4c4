"""Builds a complete, startable node through the real API (used by several test modules)."""

from __future__ import annotations

from typing import Any

import httpx

from control.dispatch.base import Adapter, Admission, Observed, RunDescription

SP = "/api/v1/spaces/default"
LAMP = "/lamp/atom/service/operator"


async def ok(resp: httpx.Response, status: int | tuple[int, ...] = (200, 201)) -> Any:
    wanted = (status,) if isinstance(status, int) else status
    assert resp.status_code in wanted, resp.text
    return resp.json() if resp.content else None


async def define_node(
    api: httpx.AsyncClient,
    *,
    data_dir: str,
    node: str = "train-tabular",
    module: str = "runtime_agent.examples.train_example",
    cls: str = "TrainExample",
    deploy: str = "AUTO_DEPLOY",
    epochs: int = 2,
    finish: bool = True,
    password: str | None = None,
) -> dict[str, Any]:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    conn = {"connectName": "files", "connectType": "FILE", "connectAddr": data_dir}
    if password:
        conn["connectPassword"] = password
    await ok(await api.put(f"{SP}/connections/files", json=conn))
    ids = {}
    for name, role, target, fmt in (
        ("train", "source", "train.csv", "csv"),
        ("test", "test_source", "test.csv", "csv"),
        ("predictions", "sink", "predictions.csv", "csv"),
    ):
        body = {
            "sourceName": name,
            "connectionName": "files",
            "sourceType": role,
            "operateExecute": target,
            "dataFormat": fmt,
        }
        ids[name] = (await ok(await api.put(f"{SP}/sources/{name}", json=body)))["id"]
    op = await ok(
        await api.put(
            f"{SP}/operators/tabular",
            json={
                "operatorName": "tabular",
                "operatorRuntimeType": "TRAIN",
                "moduleName": module,
                "executeObject": cls,
                "operatorEpoch": epochs,
                "deployType": deploy,
                "operatorConf": {"labelColumn": "label", "hidden": 16, "lr": 0.05},
            },
        )
    )
    model = await ok(
        await api.put(f"{SP}/models/tabular", json={"modelName": "tabular", "connectionName": "files"})
    )
    si = await ok(await api.put(f"{SP}/service-infos/small", json={"siName": "small", "siCpu": 1}))
    n = await ok(await api.put(f"{SP}/nodes/{node}", json={"nodeName": node, "operatorRuntimeType": "TRAIN"}))
    await ok(
        await api.post(
            f"{LAMP}/node/createNodeRelation",
            json={
                "nodeId": n["id"],
                "operatorId": op["id"],
                "dataSourceIds": list(ids.values()),
                "modelID": model["id"],
                "serviceInfoId": si["id"],
            },
        )
    )
    if finish:
        n = await ok(await api.patch(f"{SP}/nodes/{node}", json={"nodeStatus": "EDIT_FINISH"}))
    return {"node": n, "operator": op, "model": model, "sources": ids}


class RecordingAdapter(Adapter):
    """Starts nothing: records each launch (its env holds the run token) and says the agent is alive."""

    name = "local"

    def __init__(self) -> None:
        self.launches: dict[int, RunDescription] = {}
        self.stopped: list[str] = []

    async def _start(self, launch: RunDescription, admission: Admission) -> str:
        assert launch.ident not in self.launches, f"run {launch.ident} dispatched twice"
        self.launches[launch.ident] = launch
        return f"fake:{launch.ident}"

    async def _stop(self, external_id: str, *, grace: float) -> None:
        self.stopped.append(external_id)

    async def _describe(self, external_id: str) -> Observed:
        return Observed(alive=True)

    def auth(self, run_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.launches[run_id].env['ATOM_RUN_TOKEN']}"}


async def exam_data_node(
    api: httpx.AsyncClient,
    name: str,
    *,
    operator: str,
    source: str,
    sink: str,
    exam_id: int,
    page_rows: int | None = None,
) -> int:
    """Node `name` of exam `exam_id`: operator `operator` reads `source` and writes `sink` through
    the FILE connection `files` (sources `<name>-in` / `<name>-out`); its id."""
    ids = []
    for src, role, target in ((f"{name}-in", "source", source), (f"{name}-out", "sink", sink)):
        body: dict[str, Any] = {
            "sourceName": src,
            "connectionName": "files",
            "sourceType": role,
            "operateExecute": target,
        }
        if role == "source" and page_rows is not None:
            body["paginateReadNum"] = page_rows
        ids.append((await ok(await api.put(f"{SP}/sources/{src}", json=body)))["id"])
    node = await ok(
        await api.put(
            f"{SP}/nodes/{name}",
            json={"nodeName": name, "operatorRuntimeType": "PYTHON_DATA", "examId": exam_id},
        )
    )
    op = await ok(await api.get(f"{SP}/operators/{operator}"))
    await ok(
        await api.post(
            f"{LAMP}/node/createNodeRelation",
            json={"nodeId": node["id"], "operatorId": op["id"], "dataSourceIds": ids},
        )
    )
    return int(node["id"])
