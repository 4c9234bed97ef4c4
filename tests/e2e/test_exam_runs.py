"""An exam with real agent processes: extract -> load, the second reading what the first wrote."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

from control.client import AsyncControlClient
from control.schemas import TaskEvent
from tests.control.factory import LAMP, SP, exam_data_node, ok
from tests.e2e.conftest import LiveControl, run_state, wait_for

pytestmark = pytest.mark.e2e
ENDED = ("succeeded", "failed", "stopped")
ROWS = 1500
PAGE = 500


async def test_exam_passes_data_downstream(
    live_control: LiveControl, client: AsyncControlClient, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"f0": [float(i) for i in range(ROWS)]}).to_parquet(data / "in.parquet", row_group_size=500)
    async with httpx.AsyncClient(base_url=live_control.url, timeout=60) as api:
        await ok(await api.put(SP, json={"spaceName": "default"}))
        await ok(
            await api.put(
                f"{SP}/connections/files",
                json={"connectName": "files", "connectType": "FILE", "connectAddr": str(data)},
            )
        )
        await ok(
            await api.put(
                f"{SP}/operators/copy",
                json={
                    "operatorName": "copy",
                    "operatorRuntimeType": "PYTHON_DATA",
                    "moduleName": "tests.e2e.operators",
                    "executeObject": "CopyRows",
                },
            )
        )
        experiment = await ok(await api.put(f"{SP}/experiments/etl", json={"experimentName": "etl"}))
        exam = await ok(
            await api.put(f"{SP}/exams/daily", json={"examName": "daily", "experimentId": experiment["id"]})
        )
        load = await exam_data_node(
            api,
            "load",
            operator="copy",
            source="mid.parquet",
            sink="out.csv",
            exam_id=exam["id"],
            page_rows=500,
        )
        extract = await exam_data_node(
            api,
            "extract",
            operator="copy",
            source="in.parquet",
            sink="mid.parquet",
            exam_id=exam["id"],
            page_rows=500,
        )
        rel = await ok(await api.get(f"{SP}/nodes/extract"))
        await ok(
            await api.post(
                f"{LAMP}/node/createNodeRelation",
                json={**_relation(rel["relation"]), "nextNodeId": load},
            )
        )
        for name in ("extract", "load"):
            await ok(await api.patch(f"{SP}/nodes/{name}", json={"nodeStatus": "EDIT_FINISH"}))

    started = await client.start_node_task(TaskEvent(task_id=exam["id"], task_type="EXAM"))
    first, second = started.run_ids
    assert (await client.get_run(first)).node_id == extract
    waiting = await client.get_run(second)
    assert waiting.state.value == "queued" and waiting.reason == "waiting for extract"

    done = await wait_for(lambda: run_state(client, second, ENDED), timeout=120, what="the load run")
    assert done.state.value == "succeeded", done.reason
    assert (await client.get_run(first)).state.value == "succeeded"
    out = pd.read_csv(data / "out.csv")
    assert len(out) == ROWS and out["f0x2"].tolist() == [2.0 * i for i in range(ROWS)]

    spec = await client.run_spec(first)
    progress = {s.source_name: (s.rows_read, s.rows_total) for s in spec.sources}
    assert progress == {"extract-in": (ROWS, ROWS), "extract-out": (None, None)}
    assert (await client.run_spec(second)).sources[0].rows_read == ROWS


def _relation(rel: dict) -> dict:
    keep = ("nodeId", "operatorId", "dataSourceIds", "modelId", "serviceInfoId")
    return {k: rel[k] for k in keep if rel.get(k) is not None}
