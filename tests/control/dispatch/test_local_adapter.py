"""The local adapter: the conformance suite, then exclusive GPUs, CPU affinity and memory cgroups."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from control.dispatch.base import Adapter, Admission, Observed, RunDescription
from control.dispatch.local import LocalAdapter, _parse
from control.schemas.resources import ResourceRequest
from tests.control.dispatch.conformance import (
    SLEEPER,
    AdapterConformance,
    Broken,
    Launch,
    describe,
    printed,
    read_logs,
    until,
    wait_ended,
    wait_output,
)


class TestLocalConformance(AdapterConformance):
    exact_env = True

    @pytest.fixture
    async def adapter(self) -> AsyncIterator[Adapter]:
        adapter = LocalAdapter()
        yield adapter
        await adapter.aclose()

    @pytest.fixture
    def broken(self, log_dir: Path) -> Broken:
        desc = describe("", log_dir)
        missing = str(log_dir / "no-such-agent")
        return Broken(LocalAdapter(memory_limits=False), replace(desc, command=[missing]), missing)

    @pytest.fixture
    def expected_total(self) -> dict[str, float]:
        return {"cpu": float(os.cpu_count() or 1), "gpu": 0.0}

    async def child_environ(self, adapter: Adapter, desc: RunDescription, external_id: str) -> dict[str, str]:
        """The live agent's environment as the kernel holds it (/proc/<pid>/environ)."""
        await wait_output(adapter, desc, external_id, "ready")
        pid, _ = _parse(external_id)
        raw = await asyncio.to_thread(Path(f"/proc/{pid}/environ").read_bytes)
        pairs = (item.decode().split("=", 1) for item in raw.split(b"\0") if item)
        return {key: value for key, value in pairs}

    def check_graceful_stop(self, seen: Observed) -> None:
        assert seen.exit_code == 0, seen

    def check_forced_stop(self, seen: Observed) -> None:
        assert seen.exit_code == -9 and "SIGKILL" in seen.detail, seen


@pytest.fixture
async def gpu_adapter() -> AsyncIterator[LocalAdapter]:
    adapter = LocalAdapter(gpus=["0", "1"], memory_limits=False)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def launch_on(gpu_adapter: LocalAdapter) -> AsyncIterator[Launch]:
    started: list[str] = []

    async def start(desc: RunDescription, admission: Admission | None = None) -> str:
        external_id = await gpu_adapter.start(desc, admission)
        started.append(external_id)
        return external_id

    yield start
    for external_id in started:
        await gpu_adapter.stop(external_id, grace=0.5)
        await gpu_adapter.release(external_id)


async def test_each_run_gets_its_own_gpu_and_a_third_waits(
    gpu_adapter: LocalAdapter, launch_on: Launch, tmp_path: Path
) -> None:
    show = "import os\nprint('CVD=' + os.environ['CUDA_VISIBLE_DEVICES'], flush=True)\n"
    one_gpu = ResourceRequest(cpu=0, gpu=1)
    go = tmp_path / "go"
    first = describe(show + until(go), tmp_path, resources=one_gpu)
    second = describe(show + SLEEPER, tmp_path, resources=one_gpu)
    third = describe(show, tmp_path, resources=one_gpu)

    ids, seen = [], []
    for desc in (first, second):
        admission = await gpu_adapter.admit(desc)
        assert admission.wait == "" and len(admission.grant["gpus"]) == 1, admission
        external_id = await launch_on(desc, admission)
        ids.append(external_id)
        text = await wait_output(gpu_adapter, desc, external_id, "CVD=")
        seen.append(printed(text, "CVD=").removeprefix("CVD="))
    assert sorted(seen) == ["0", "1"], seen

    waiting = await gpu_adapter.admit(third)
    assert waiting.wait == "waiting for 1 GPU (0 free)", waiting

    go.touch()
    assert (await wait_ended(gpu_adapter, ids[0])).exit_code == 0
    await gpu_adapter.release(ids[0])
    admission = await gpu_adapter.admit(third)
    assert admission.wait == "" and admission.grant["gpus"] == [seen[0]], admission
    external_id = await launch_on(third, admission)
    assert (await wait_ended(gpu_adapter, external_id)).exit_code == 0
    assert printed(await read_logs(gpu_adapter, third, external_id), "CVD=") == f"CVD={seen[0]}"
    assert (await gpu_adapter.describe(ids[1])).alive


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="CPU affinity needs at least 2 usable cores")
async def test_a_run_asking_one_cpu_is_pinned_to_one_core(tmp_path: Path) -> None:
    adapter = LocalAdapter(memory_limits=False)
    go = tmp_path / "go"
    code = until(go, "print('AFFINITY=' + ','.join(map(str, sorted(os.sched_getaffinity(0)))))")
    desc = describe(code, tmp_path, resources=ResourceRequest(cpu=1))
    admission = await adapter.admit(desc)
    external_id = await adapter.start(desc, admission)
    try:
        go.touch()
        assert (await wait_ended(adapter, external_id)).exit_code == 0
        text = await read_logs(adapter, desc, external_id)
        cores = [int(c) for c in printed(text, "AFFINITY=").removeprefix("AFFINITY=").split(",")]
        assert len(cores) == 1 and cores == admission.grant["cpus"], (cores, admission)
    finally:
        await adapter.stop(external_id, grace=0.5)
        await adapter.release(external_id)


async def test_a_run_over_its_memory_limit_is_killed_and_described(tmp_path: Path) -> None:
    adapter = LocalAdapter()
    try:
        if adapter.cgroups is None or not adapter.cgroups.available:
            pytest.skip("no memory cgroup can be made here (needs root or a delegated cgroup)")
        go = tmp_path / "go"
        hog = "chunks = [b'x' * (10 << 20) for _ in range(30)]\nprint('survived', flush=True)\n"
        desc = describe(until(go, hog), tmp_path, resources=ResourceRequest(cpu=0, memory_mib=64))
        admission = await adapter.admit(desc)
        external_id = await adapter.start(desc, admission)
        try:
            go.touch()
            seen = await wait_ended(adapter, external_id)
            assert "out of memory (limit 64 MiB)" in seen.detail, seen
            assert not printed(await read_logs(adapter, desc, external_id), "survived")
        finally:
            await adapter.stop(external_id, grace=0.5)
            await adapter.release(external_id)
    finally:
        await adapter.aclose()
