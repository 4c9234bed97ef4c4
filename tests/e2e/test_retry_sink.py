"""A retried run writes its FILE sink once: the agent is killed (SIGKILL) in the middle of writing
its sink, control sees the agent lost and starts attempt 2 of the same run, which succeeds; the
sink then holds every row exactly once, and the attempts say what happened. A user's re-run of
the succeeded run leaves the sink as it was too. Real control, real agent processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from control.client import AsyncControlClient
from control.schemas import TaskEvent
from control.settings import Settings
from tests.control.factory import SP, define_node, ok
from tests.e2e.conftest import LiveControl, make_tabular, run_state, wait_for

pytestmark = pytest.mark.e2e

ROWS = 400
ENDED = ("succeeded", "failed", "stopped")


def staged(data: Path) -> list[Path]:
    """The sink's staging files (`.predictions.csv.<hex>.tmp`): rows written, not yet committed."""
    return [p for p in data.glob(".predictions.csv.*.tmp") if p.stat().st_size > 0]


async def test_a_killed_agent_is_retried_and_its_sink_holds_each_row_once(
    live_settings: Settings, tmp_path: Path
) -> None:
    data, mark = tmp_path / "data", tmp_path / "stalled"
    make_tabular(data, rows=ROWS)  # 320 train + 80 test rows, all copied to the sink
    live_settings.retry_base_s = 0.2
    live_settings.retry_jitter = 0
    live_settings.heartbeat_timeout = 10
    with LiveControl(live_settings) as live:
        async with (
            httpx.AsyncClient(base_url=live.url, timeout=60) as api,
            AsyncControlClient(live.url) as client,
        ):
            d = await define_node(
                api,
                data_dir=str(data),
                module="tests.e2e.retry_operators",
                cls="CopyThenStall",
                deploy="NOT_DEPLOY",
                finish=False,
            )
            conf = {"stallAfter": 200, "markFile": str(mark)}
            await ok(
                await api.patch(
                    f"{SP}/operators/tabular", json={"operatorRuntimeType": "PYTHON", "operatorConf": conf}
                )
            )
            for source in ("train", "test"):
                await ok(await api.patch(f"{SP}/sources/{source}", json={"operatorReadNum": 50}))
            node = {"maxRetries": 2, "nodeStatus": "EDIT_FINISH"}
            await ok(await api.patch(f"{SP}/nodes/train-tabular", json=node))
            event = TaskEvent(task_id=d["node"]["id"], envs={"ATOM_SINK_FLUSH_ROWS": "50"})
            run_id = (await client.start_node_task(event)).run_ids[0]

            await wait_for(lambda: mark.exists() and staged(data), timeout=60, what="attempt 1 mid-sink")
            first = await client.get_run(run_id)
            assert first.attempt == 1 and first.external_id, first
            assert not (data / "predictions.csv").exists()  # staged only
            orphan = staged(data)
            os.killpg(int(first.external_id.split(":")[1]), signal.SIGKILL)

            async def second_done() -> Any:
                run = await client.get_run(run_id)
                return run if run.attempt == 2 and run.state.value in ENDED else None

            run = await wait_for(second_done, timeout=60, what="attempt 2 to end")
            assert run.state.value == "succeeded", run.reason
            sink = pd.read_csv(data / "predictions.csv")
            assert len(sink) == ROWS and len(sink.drop_duplicates()) == ROWS
            assert staged(data) == orphan  # the killed attempt's staged rows never became rows

            tried = await client.run_attempts(run_id)
            assert [(a["attempt"], a["state"], a["failureClass"]) for a in tried] == [
                (1, "failed", "lost"),
                (2, "succeeded", None),
            ]
            assert "SIGKILL" in tried[0]["reason"], tried[0]
            assert "stalling after 200 rows" in await client.attempt_log(run_id, 1)
            assert "stalling" not in await client.attempt_log(run_id, 2)

            again = await client.rerun(run_id, "the same run once more")
            assert again["attempt"] == 3 and again["id"] == run_id
            run = await wait_for(
                lambda: run_state(client, run_id, ENDED), timeout=60, what="the re-run to end"
            )
            assert run.state.value == "succeeded" and run.attempt == 3, run.reason
            after = pd.read_csv(data / "predictions.csv")
            assert len(after) == ROWS and len(after.drop_duplicates()) == ROWS
            pd.testing.assert_frame_equal(
                after.sort_values("f0").reset_index(drop=True), sink.sort_values("f0").reset_index(drop=True)
            )
