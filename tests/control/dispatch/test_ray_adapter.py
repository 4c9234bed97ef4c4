"""The Ray adapter: the conformance suite on the session's Ray head, then a lazily started head with a GPU."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from control.dispatch.base import Adapter, Observed
from control.dispatch.ray import RayAdapter
from control.dispatch.ray_head import RayHead, session_pids
from control.schemas.resources import ResourceRequest
from tests.control.dispatch.conformance import (
    AdapterConformance,
    Broken,
    describe,
    poll,
    printed,
    read_logs,
    wait_ended,
    wait_output,
)

pytestmark = pytest.mark.ray


async def test_a_lazy_head_with_one_gpu_runs_a_second_gpu_job_after_the_first(tmp_path: Path) -> None:
    state = tmp_path / "home" / "ray-head.json"
    head = RayHead(num_cpus=1, num_gpus=1, state_file=state)
    adapter = RayAdapter(head=head)
    assert not head.running and head.address == ""
    sid = None
    try:
        seen = await adapter.describe_resources()
        assert head.running and head.pid is not None and state.is_file()
        sid = head.pid
        assert seen["startedByControl"] and seen["total"]["gpu"] == 1.0, seen

        go = tmp_path / "go"
        one_gpu = ResourceRequest(cpu=0, gpu=1)
        first = describe(
            "import os, time\nprint('first has GPU', flush=True)\n"
            f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.05)\n",
            tmp_path,
            resources=one_gpu,
        )
        second = describe("print('second ran', flush=True)", tmp_path, resources=one_gpu)
        first_id = await adapter.start(first)
        await wait_output(adapter, first, first_id, "first has GPU")
        second_id = await adapter.start(second)

        async def waiting() -> bool:
            seen = await adapter.describe(second_id)
            assert seen.alive, seen
            return seen.waiting == "waiting for 1 GPU (0 free)"

        await poll(waiting, "the second job to wait for the GPU")
        # control is killed (its head goes on) and a new control with the same home takes the head over
        adapter = RayAdapter(head=RayHead(num_cpus=1, num_gpus=1, state_file=state))
        assert (await adapter.describe(second_id)).alive  # the new control sees the old jobs
        assert adapter.head is not None and adapter.head.pid == sid and adapter.head.address == head.address
        go.touch()
        assert (await wait_ended(adapter, first_id)).exit_code == 0
        ended = await wait_ended(adapter, second_id)
        assert ended.exit_code == 0, ended
        assert printed(await read_logs(adapter, second, second_id), "second ran")
    finally:
        await adapter.aclose()
    assert adapter.head is not None and not adapter.head.running and not state.exists()
    assert sid is not None and session_pids(sid) == [], session_pids(sid)


class TestRayConformance(AdapterConformance):
    @pytest.fixture
    async def adapter(self, ray_cluster: Any) -> AsyncIterator[Adapter]:
        adapter = RayAdapter(address=ray_cluster.address, dashboard_url=ray_cluster.dashboard_url)
        yield adapter
        await adapter.aclose()

    @pytest.fixture
    def broken(self, log_dir: Path) -> Broken:
        dead = RayAdapter(address="127.0.0.1:1", dashboard_url="http://127.0.0.1:1")
        return Broken(dead, describe("print('never')", log_dir), "127.0.0.1:1")

    @pytest.fixture
    def expected_total(self, ray_cluster: Any) -> dict[str, float]:
        return {"cpu": float(ray_cluster.num_cpus), "gpu": 0.0}

    def check_graceful_stop(self, seen: Observed) -> None:
        assert "stopped" in seen.detail, seen

    def check_forced_stop(self, seen: Observed) -> None:
        assert "stopped" in seen.detail, seen
