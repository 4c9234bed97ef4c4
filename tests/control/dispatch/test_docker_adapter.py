"""The Docker adapter on a real engine: the conformance suite, then limits, environment, memory,
services, idempotent starts and bad input (no image, no engine), with no container left behind.

Stand-in: none. The engine is the suite's real dockerd (`docker_engine`) and the containers run
the agent image built from this working tree (`agent_image`); the conformance agents are small
Python programs run by the image's python3.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from control.dispatch.base import Adapter, Observed, RunDescription
from control.dispatch.describe import base_env
from control.dispatch.docker import DockerAdapter
from control.dispatch.docker_spec import DockerOptions, create_kwargs
from control.dispatch.local_limits import LocalInventory
from control.errors import DispatchFailed
from control.schemas.resources import ResourceRequest
from control.settings import Settings
from tests.control.dispatch.conformance import (
    ENV_MARK,
    PRINTS_ENV,
    SLEEPER,
    AdapterConformance,
    Broken,
    describe,
    poll,
    printed,
    read_logs,
    until,
    wait_ended,
    wait_output,
)

pytestmark = pytest.mark.docker
MIB = 1 << 20


class Engine:
    """The test's view of the engine: its address, the image, and the containers a test made."""

    def __init__(self, host: str, image: str) -> None:
        import docker

        self.host, self.image = host, image
        self.client = docker.DockerClient(base_url=host, timeout=60)
        self.label = f"atom.test={uuid.uuid4().hex[:12]}"
        self.prefix = f"atom-t{uuid.uuid4().hex[:6]}"

    def adapter(self, volumes: tuple[str, ...] = (), **kwargs: Any) -> DockerAdapter:
        key, value = self.label.split("=")
        options = DockerOptions(image=self.image, volumes=volumes, prefix=self.prefix, labels={key: value})
        return DockerAdapter(host=self.host, options=options, **kwargs)

    def mine(self) -> list[Any]:
        return list(self.client.containers.list(all=True, filters={"label": self.label}, ignore_removed=True))

    def sweep(self) -> list[str]:
        """Remove whatever the test left (so nothing leaks) and say what it was."""
        left = self.mine()
        for container in left:
            container.remove(force=True)
        return [c.name for c in left]


@pytest.fixture
def engine(docker_engine: Any, agent_image: str) -> Iterator[Engine]:
    eng = Engine(docker_engine.host, agent_image)
    yield eng
    left = eng.sweep()
    eng.client.close()
    assert left == [], f"containers left behind: {left}"


class TestDockerConformance(AdapterConformance):
    replaced_env = frozenset({"PATH", "HOME"})

    @pytest.fixture
    async def adapter(self, engine: Engine, log_dir: Path) -> AsyncIterator[Adapter]:
        adapter = engine.adapter(volumes=(f"{log_dir}:{log_dir}",))
        yield adapter
        await adapter.aclose()

    @pytest.fixture
    def broken(self, engine: Engine, log_dir: Path) -> Broken:
        adapter = engine.adapter()
        return Broken(
            adapter,
            replace(describe("print('never')", log_dir), image="atom-no-such-image:0"),
            "atom-no-such-image",
        )

    @pytest.fixture
    def expected_total(self, engine: Engine) -> dict[str, float]:
        return {"cpu": float(engine.client.info()["NCPU"]), "gpu": 0.0}

    def check_graceful_stop(self, seen: Observed) -> None:
        assert seen.exit_code == 0, seen

    def check_forced_stop(self, seen: Observed) -> None:
        assert seen.exit_code == 137 and "SIGKILL" in seen.detail, seen


@pytest.fixture
async def adapter(engine: Engine, tmp_path: Path) -> AsyncIterator[DockerAdapter]:
    adapter = engine.adapter(volumes=(f"{tmp_path}:{tmp_path}",))
    yield adapter
    await adapter.aclose()


async def _end(adapter: DockerAdapter, external_id: str) -> None:
    await adapter.stop(external_id, grace=1)
    await adapter.release(external_id)


async def test_service_info_resources_become_the_container_limits(
    engine: Engine, adapter: DockerAdapter, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    desc = describe(until(go), tmp_path, resources=ResourceRequest(cpu=1.5, memory_mib=300))
    admission = await adapter.admit(desc)
    external_id = await adapter.start(desc, admission)
    try:
        host = engine.client.api.inspect_container(external_id)["HostConfig"]
        assert host["NanoCpus"] == 1_500_000_000, host["NanoCpus"]
        assert host["Memory"] == 300 * MIB and host["MemorySwap"] == 300 * MIB
        assert host["NetworkMode"] == "host" and host["Init"] is True
        env = engine.client.api.inspect_container(external_id)["Config"]["Env"]
        assert "OMP_NUM_THREADS=2" in env  # torch's pool fits the quota, not the host's cores
        labels = engine.client.api.inspect_container(external_id)["Config"]["Labels"]
        assert labels["atom.kind"] == "run" and labels["atom.run"] == str(desc.ident)
        assert labels["atom.node"] == desc.name and labels["atom.space"] == "default"
        go.touch()
        assert (await wait_ended(adapter, external_id)).exit_code == 0
    finally:
        await _end(adapter, external_id)


async def test_a_request_larger_than_the_engine_is_infeasible(adapter: DockerAdapter, tmp_path: Path) -> None:
    from control.dispatch.base import Infeasible

    desc = describe(SLEEPER, tmp_path, resources=ResourceRequest(cpu=64))
    with pytest.raises(Infeasible, match=r"needs 64 CPU; the Docker engine at unix://\S+ has \d+"):
        await adapter.admit(desc)


async def test_gpus_become_a_device_request_and_an_engine_without_gpu_support_fails_cleanly(
    engine: Engine, tmp_path: Path
) -> None:
    adapter = engine.adapter(inventory=LocalInventory(["0", "1"]))
    desc = describe(SLEEPER, tmp_path, resources=ResourceRequest(cpu=0, gpu=1))
    admission = await adapter.admit(desc)
    assert admission.grant["gpus"] == ["0"], admission
    kwargs = create_kwargs(desc, adapter.options, image=engine.image, gpus=admission.grant["gpus"])
    assert kwargs["device_requests"] == [
        {"Driver": "", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu"]], "Options": {}}
    ]
    second = describe(SLEEPER, tmp_path, resources=ResourceRequest(cpu=0, gpu=2))
    assert (await adapter.admit(second)).wait == "waiting for 2 GPU (1 free)"
    with pytest.raises(DispatchFailed) as caught:  # this engine has no NVIDIA runtime
        await adapter.start(desc, admission)
    assert "\n" not in str(caught.value) and "could not start container" in str(caught.value)
    await adapter.cancel(desc)
    assert engine.mine() == [] and adapter.inventory.free_gpus() == ["0", "1"]
    await adapter.aclose()


async def test_the_environment_is_built_not_control_s_and_the_home_is_shared(
    engine: Engine, adapter: DockerAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-agents-1234")
    monkeypatch.setenv("ATOM_DB_URL", "mysql+pymysql://root:pw@db/atom")
    monkeypatch.setenv("VIRTUAL_ENV", "/control/venv")
    settings = Settings(home=tmp_path / "home")
    env = base_env(settings)
    assert env["PATH"] == os.environ["PATH"] and env["ATOM_HOME"] == str(settings.home)
    settings.home.mkdir()
    wrote = settings.home / "from-the-container.txt"
    code = PRINTS_ENV + f"open({str(wrote)!r}, 'w').write('hello')\n"
    desc = replace(describe(code, tmp_path), env=env)
    external_id = await adapter.start(desc)
    try:
        await wait_ended(adapter, external_id)
        seen = json.loads(
            printed(await read_logs(adapter, desc, external_id), ENV_MARK).removeprefix(ENV_MARK)
        )
        config = engine.client.api.inspect_container(external_id)["Config"]
    finally:
        await _end(adapter, external_id)
    assert "AWS_SECRET_ACCESS_KEY" not in seen and "ATOM_DB_URL" not in seen
    assert not any("not-for-agents" in item for item in config["Env"])
    assert seen["PATH"] != os.environ["PATH"] and "/control/venv" not in seen["PATH"]
    assert seen.get("VIRTUAL_ENV") != "/control/venv"
    assert seen["ATOM_HOME"] == str(settings.home) and seen["ATOM_CONTROL_URL"] == settings.callback_url
    assert wrote.read_text() == "hello"  # control's home is the same path inside
    assert (wrote.stat().st_uid, wrote.stat().st_gid) == (os.getuid(), os.getgid())


async def test_a_container_over_its_memory_limit_ends_out_of_memory(
    adapter: DockerAdapter, tmp_path: Path
) -> None:
    hog = "chunks = [b'x' * (10 << 20) for _ in range(30)]\nprint('survived', flush=True)\n"
    desc = describe(hog, tmp_path, resources=ResourceRequest(cpu=0, memory_mib=64))
    external_id = await adapter.start(desc)
    try:
        seen = await wait_ended(adapter, external_id)
        assert seen.exit_code == 137 and "out of memory (limit 64 MiB)" in seen.detail, seen
        assert not printed(await read_logs(adapter, desc, external_id), "survived")
    finally:
        await _end(adapter, external_id)


async def test_the_same_description_started_twice_is_one_container(
    engine: Engine, adapter: DockerAdapter, tmp_path: Path
) -> None:
    desc = describe(SLEEPER, tmp_path)
    first = await adapter.start(desc)
    created = engine.client.api.inspect_container(first)["Id"]
    try:
        assert await adapter.start(desc) == first
        assert [c.id for c in engine.mine()] == [created]
        changed = replace(desc, env={**desc.env, "ANOTHER": "1"})  # a new token, say: the old agent goes
        assert await adapter.start(changed) == first
        [container] = engine.mine()
        assert container.id != created and "ANOTHER=1" in container.attrs["Config"]["Env"]
    finally:
        await _end(adapter, first)


async def test_a_released_container_is_removed_once_it_ends_with_its_output_in_the_log(
    engine: Engine, adapter: DockerAdapter, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    desc = describe(until(go, "print('last words', flush=True)"), tmp_path)
    external_id = await adapter.start(desc)
    await wait_output(adapter, desc, external_id, "ready")
    await adapter.release(external_id)  # control released it early: it still runs
    assert (await adapter.describe(external_id)).alive
    go.touch()
    await poll(lambda: asyncio.to_thread(lambda: not engine.mine()), "the container to be removed")
    assert printed(desc.log_path.read_text(), "last words")
    assert (await adapter.describe(external_id)).exit_code == 0  # how it ended is remembered


async def test_a_service_container_is_removed_when_stopped_and_its_log_kept(
    engine: Engine, adapter: DockerAdapter, tmp_path: Path
) -> None:
    desc = replace(describe(SLEEPER, tmp_path), kind="service", name="tabular-1")
    external_id = await adapter.start(desc)
    assert external_id == f"{engine.prefix}-svc-{desc.ident}"
    await wait_output(adapter, desc, external_id, "ready")
    await adapter.stop(external_id, grace=1)
    assert engine.mine() == []
    assert printed(desc.log_path.read_text(), "ready")
    seen = await adapter.describe(external_id)
    assert not seen.alive and "stopped" in seen.detail, seen
    await adapter.stop(external_id, grace=1)  # a second stop is fine


async def test_a_container_created_but_never_started_is_removed_by_stop(
    engine: Engine, adapter: DockerAdapter, tmp_path: Path
) -> None:
    desc = describe(SLEEPER, tmp_path)  # control stopped between create and start, say
    kwargs = create_kwargs(desc, adapter.options, image=engine.image, gpus=[])
    created = await asyncio.to_thread(lambda: engine.client.containers.create(**kwargs))
    assert (await adapter.describe(created.name)).alive
    await adapter.stop(created.name, grace=1)
    assert engine.mine() == []
    seen = await adapter.describe(created.name)
    assert not seen.alive and seen.detail == "the agent container was stopped before it started"


async def test_an_image_that_does_not_exist_fails_in_one_line_leaving_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    desc: RunDescription = replace(describe("print('never')", tmp_path), image="atom-no-such-image:0")
    for pull, expected in (
        ("missing", "image atom-no-such-image:0 is not on the engine at {} and could not be pulled: "),
        ("never", "image atom-no-such-image:0 is not on the engine at {} and ATOM_DOCKER_PULL is never"),
    ):
        adapter = engine.adapter(pull=pull)
        with pytest.raises(DispatchFailed) as caught:
            await adapter.start(desc)
        assert str(caught.value).startswith(expected.format(engine.host)), caught.value
        assert "\n" not in str(caught.value)
        await adapter.aclose()
    assert engine.mine() == []


async def test_an_engine_that_does_not_answer_fails_in_one_line(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/no-docker.sock"
    adapter = DockerAdapter(host=host)
    desc = describe("print('never')", tmp_path)
    for call in (adapter.start(desc), adapter.describe_resources(), adapter.admit(desc)):
        with pytest.raises(DispatchFailed) as caught:
            await call
        message = str(caught.value)
        assert message.startswith(f"Docker engine at {host} is not answering: "), message
        assert message.endswith("; start dockerd or set ATOM_DOCKER_HOST") and "\n" not in message
    await adapter.aclose()


def test_a_run_s_own_thread_count_wins_over_the_cpu_limit(tmp_path: Path) -> None:
    options = DockerOptions(image="any")
    limited = describe(SLEEPER, tmp_path, resources=ResourceRequest(cpu=3))
    assert create_kwargs(limited, options, image="any", gpus=[])["environment"]["OMP_NUM_THREADS"] == "3"
    own = replace(limited, env={**limited.env, "OMP_NUM_THREADS": "8"})
    assert create_kwargs(own, options, image="any", gpus=[])["environment"]["OMP_NUM_THREADS"] == "8"
    unlimited = describe(SLEEPER, tmp_path, resources=ResourceRequest(cpu=0))
    assert "OMP_NUM_THREADS" not in create_kwargs(unlimited, options, image="any", gpus=[])["environment"]
