"""Resume with real agent processes: extract -> load, load's operator raises; the operator is fixed and
the exam run resumed: only load runs again (its second attempt, the fixed code), extract is kept."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

from control.client import AsyncControlClient
from tests.control.factory import LAMP, SP, exam_data_node, ok
from tests.e2e.conftest import LiveControl

pytestmark = pytest.mark.e2e
ROWS = 300


def _operator(name: str, cls: str) -> dict[str, str]:
    return {
        "operatorName": name,
        "operatorRuntimeType": "PYTHON_DATA",
        "moduleName": "tests.e2e.operators",
        "executeObject": cls,
    }


async def test_resume_runs_the_fixed_operator_and_keeps_the_rest(
    live_control: LiveControl, client: AsyncControlClient, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"f0": [float(i) for i in range(ROWS)]}).to_parquet(data / "in.parquet")
    async with httpx.AsyncClient(base_url=live_control.url, timeout=60) as api:
        await ok(await api.put(SP, json={"spaceName": "default"}))
        await ok(
            await api.put(
                f"{SP}/connections/files",
                json={"connectName": "files", "connectType": "FILE", "connectAddr": str(data)},
            )
        )
        await ok(await api.put(f"{SP}/operators/copy", json=_operator("copy", "CopyRows")))
        await ok(await api.put(f"{SP}/operators/loader", json=_operator("loader", "Explodes")))
        experiment = await ok(await api.put(f"{SP}/experiments/etl", json={"experimentName": "etl"}))
        exam = await ok(
            await api.put(f"{SP}/exams/daily", json={"examName": "daily", "experimentId": experiment["id"]})
        )
        load = await exam_data_node(
            api, "load", operator="loader", source="mid.parquet", sink="out.csv", exam_id=exam["id"]
        )
        extract = await exam_data_node(
            api, "extract", operator="copy", source="in.parquet", sink="mid.parquet", exam_id=exam["id"]
        )
        rel = (await ok(await api.get(f"{SP}/nodes/extract")))["relation"]
        body = {k: rel[k] for k in ("nodeId", "operatorId", "dataSourceIds")}
        await ok(await api.post(f"{LAMP}/node/createNodeRelation", json={**body, "nextNodeIds": [load]}))
        for name in ("extract", "load"):
            await ok(await api.patch(f"{SP}/nodes/{name}", json={"nodeStatus": "EDIT_FINISH"}))

        er = await client.start_exam_run("daily")
        failed = await client.wait_exam_run(er.id, timeout=120)
        by = {r.node_name: r for r in failed.runs}
        assert failed.state.value == "failed", failed.reason
        assert by["extract"].state.value == "succeeded" and by["extract"].node_id == extract
        assert by["load"].state.value == "failed" and "negative values" in by["load"].reason
        assert not (data / "out.csv").exists()

        await ok(await api.patch(f"{SP}/operators/loader", json={"executeObject": "CopyRows"}))  # the fix
        resumed = await client.resume_exam_run(er.id)
        assert resumed.resumes == 1 and resumed.state.value == "running"
        done = await client.wait_exam_run(er.id, timeout=120)
    runs = {r.node_name: r for r in done.runs}
    assert done.state.value == "succeeded", [(r.node_name, r.state, r.reason) for r in done.runs]
    assert (runs["load"].attempt, runs["load"].id) == (2, by["load"].id)
    assert (runs["extract"].attempt, runs["extract"].finished_at) == (1, by["extract"].finished_at)
    spec = await client.run_spec(runs["load"].id)
    assert spec.operator.execute_object == "CopyRows"
    out = pd.read_csv(data / "out.csv")
    assert out["f0x2"].tolist() == [2.0 * i for i in range(ROWS)]
