"""The dispatch conformance suite against the Kubernetes adapter.

Stand-ins: the API server is kmock with tests/k8s_sim/apiserver.py behind the official client; the
scheduler, kubelets and Job controller are the simulator of tests/k8s_sim, whose pods run as local
processes here (each description's own command, with the pod's environment: a container image would
not have control's Python at the path the suite starts). The Docker-engine variant of the
simulator runs the end-to-end test (tests/e2e/test_dispatch_kubernetes.py).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from control.dispatch.base import Adapter, Observed
from control.dispatch.kubernetes import KubernetesAdapter
from control.settings import Settings
from tests.control.dispatch.conformance import AdapterConformance, Broken, describe
from tests.k8s_sim.kubeapi import KubeApi

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]
IMAGE = "sim-base:process"


@pytest.fixture
def sim(kube_api: KubeApi, kubeconfig: Path, tmp_path: Path) -> Iterator[Any]:
    """Three simulated nodes (4 CPUs, no GPU each) whose pods run as processes."""
    from tests.k8s_sim.cluster import SimCluster
    from tests.k8s_sim.runtime import ProcessRuntime

    root = tmp_path / "sim"
    root.mkdir()
    runtime = ProcessRuntime({IMAGE: [sys.executable]}, root)
    cluster = SimCluster(kube_api, kubeconfig, runtime).start()
    yield cluster
    cluster.close()
    assert all(c.proc.poll() is not None for c in runtime._started), "processes left behind"


def k8s_settings(kubeconfig: Path, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", k8s_kubeconfig=str(kubeconfig), k8s_image=IMAGE)


class TestKubernetesConformance(AdapterConformance):
    # a pod's HOME is its own (the image's; here the simulator's), never control's
    replaced_env = frozenset({"HOME"})

    @pytest.fixture
    async def adapter(self, sim: Any, kubeconfig: Path, tmp_path: Path) -> AsyncIterator[Adapter]:
        adapter = KubernetesAdapter(k8s_settings(kubeconfig, tmp_path), watch_timeout=10)
        yield adapter
        await adapter.aclose()

    @pytest.fixture
    def broken(self, log_dir: Path, tmp_path: Path) -> Broken:
        bad = tmp_path / "broken-kubeconfig"
        bad.write_text("clusters: [")
        return Broken(KubernetesAdapter(k8s_settings(bad, tmp_path)), describe("", log_dir), str(bad))

    @pytest.fixture
    def expected_total(self) -> dict[str, float]:
        return {"cpu": 12.0, "gpu": 0.0}

    def check_graceful_stop(self, seen: Observed) -> None:
        assert seen.exit_code == 0, seen

    def check_forced_stop(self, seen: Observed) -> None:
        assert seen.exit_code == 137 and "SIGKILL" in seen.detail, seen
