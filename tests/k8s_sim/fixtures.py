"""Fixtures for anything that talks to Kubernetes in the tests (registered in tests/conftest.py).

- `kube_api`: the stand-in API server (kmock's HTTP server with the store of apiserver.py) on a
  free loopback port, one per test.
- `kubeconfig`: a kubeconfig file whose current context points the official client at it (what
  `ATOM_K8S_KUBECONFIG` takes).
- `kube_client`: a `kubernetes.client.ApiClient` made from that kubeconfig.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.k8s_sim.kubeapi import KubeApi


@pytest.fixture
def kube_api() -> Iterator[KubeApi]:
    from tests.k8s_sim.kubeapi import KubeApi

    with KubeApi() as api:
        yield api


@pytest.fixture
def kubeconfig(kube_api: KubeApi, tmp_path: Path) -> Path:
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_client(kubeconfig: Path) -> Iterator[Any]:
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


# -- the simulated cluster -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sim_engine(request: pytest.FixtureRequest) -> Any:
    """The Docker engine the simulator runs containers on, or None: then pods run as processes
    (no engine can start here, or `ATOM_TEST_K8S_RUNTIME=process`)."""
    import os

    if os.environ.get("ATOM_TEST_K8S_RUNTIME") == "process":
        return None
    try:
        return request.getfixturevalue("docker_engine")
    except (pytest.skip.Exception, pytest.FixtureLookupError):
        return None


@pytest.fixture(scope="session")
def sim_base_image(sim_engine: Any) -> str:
    """An image with python3 and sh for hand-written pods (the tests' Debian base on an engine)."""
    if sim_engine is None:
        return "sim-base:process"
    from tests.docker_support import ensure_base_image

    return ensure_base_image(sim_engine)


@pytest.fixture
def make_sim_cluster(
    kube_api: KubeApi, kubeconfig: Path, sim_engine: Any, sim_base_image: str, tmp_path: Path
) -> Iterator[Any]:
    """`make_sim_cluster(images={image: entrypoint}, process=False, **options)` starts a SimCluster
    on `kube_api` (one per test), on the engine when there is one unless `process`; on processes
    `images` says which images exist and what their entrypoint runs. Closed at teardown, which
    checks that no container or process of it is left."""
    import uuid

    from tests.k8s_sim.cluster import SimCluster
    from tests.k8s_sim.runtime import DockerRuntime, ProcessRuntime

    made: list[tuple[SimCluster, Any]] = []

    def make(images: dict[str, list[str]] | None = None, process: bool = False, **options: Any) -> SimCluster:
        if sim_engine is not None and not process:
            docker_client = sim_engine.client()
            runtime: Any = DockerRuntime(docker_client, label=uuid.uuid4().hex[:12])
        else:
            docker_client = None
            root = tmp_path / f"sim-proc-{len(made)}"
            root.mkdir()
            runtime = ProcessRuntime({"sim-base:process": [], sim_base_image: [], **(images or {})}, root)
        cluster = SimCluster(kube_api, kubeconfig, runtime, **options)
        made.append((cluster, docker_client))
        return cluster.start()

    yield make
    for cluster, docker_client in made:
        cluster.close()
        assert not cluster.errors, f"the simulator failed: {cluster.errors[0]}"
        if docker_client is not None:
            label = f"atom-sim={cluster.runtime.label}"  # type: ignore[attr-defined]
            left = docker_client.containers.list(all=True, filters={"label": label}, ignore_removed=True)
            docker_client.close()
            assert not left, f"containers left behind: {[c.name for c in left]}"
        else:
            runtime = cluster.runtime
            assert all(c.proc.poll() is not None for c in runtime._started), "processes left behind"  # type: ignore[attr-defined]
