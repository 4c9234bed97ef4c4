"""How a Kubernetes run's end reads, and when it is over for good, against the API stand-in
(tests/k8s_sim: kmock's server behind the official client) with pod and Job status written by hand
as a kubelet, the Job controller, the taint manager and PodGC write them (k8s_kubelet.py):
a pod taken away with its lost node, an image pull error as a certain end, and a stopped pod that
still runs its SIGTERM handler (its log is not complete until it ends)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from control.dispatch.k8s_status import observe_run
from control.dispatch.kubernetes import KubernetesAdapter
from tests.control.dispatch.conformance import poll
from tests.control.dispatch.k8s_kubelet import HandKubelet, Logs, stamp
from tests.control.dispatch.test_k8s_adapter import settings_for, started_pod
from tests.k8s_sim.kubeapi import KubeApi

pytestmark = pytest.mark.k8s
NS = "atom-research"


@pytest.fixture
async def adapter(kubeconfig: Path, tmp_path: Path) -> AsyncIterator[KubernetesAdapter]:
    adapter = KubernetesAdapter(settings_for(kubeconfig, tmp_path), watch_timeout=5)
    yield adapter
    await adapter.aclose()


@pytest.fixture
def kubelet(kube_client: Any) -> HandKubelet:
    return HandKubelet(kube_client)


def disrupted(reason: str, message: str) -> dict[str, Any]:
    return {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp(),
    }


def lost_pod(reason: str, message: str, *, phase: str = "Running") -> dict[str, Any]:
    """A pod as the API holds it once its node is gone: the container last said it runs (no
    kubelet reports any more); `status.reason` is not set."""
    return {
        "metadata": {"name": "train-iris-12-abcde", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": "gpu-node-7", "containers": [{"name": "agent", "image": "atom-agent:1"}]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "False"}, disrupted(reason, message)],
            "containerStatuses": [{"name": "agent", "state": {"running": {"startedAt": stamp()}}}],
        },
    }


def failed_job() -> dict[str, Any]:
    cond = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "limit"}
    return {"metadata": {"name": "train-iris-12"}, "status": {"conditions": [cond]}}


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint"),
        ("DeletionByPodGC", "PodGC: node no longer exists"),
    ],
)
def test_a_pod_of_a_lost_node_names_the_node(reason: str, message: str) -> None:
    seen = observe_run(failed_job(), [lost_pod(reason, message, phase="Failed")])
    assert not seen.alive and seen.detail == f"node gpu-node-7 was lost ({reason}): {message}"
    gone = observe_run(None, [lost_pod(reason, message)], name="train-iris-12")
    assert gone.detail == f"the Job train-iris-12 is gone; node gpu-node-7 was lost ({reason}): {message}"


def test_a_pod_the_kubelet_evicted_names_the_node_and_the_reason() -> None:
    pod = lost_pod("TerminationByKubelet", "The node was low on resource: memory.")
    pod["status"]["containerStatuses"] = []
    seen = observe_run(failed_job(), [pod])
    assert seen.detail == (
        "the pod was taken off node gpu-node-7 (TerminationByKubelet): The node was low on resource: memory."
    )


async def test_a_lost_node_through_the_adapter(adapter: KubernetesAdapter, kubelet: HandKubelet) -> None:
    external_id, pod = await started_pod(adapter, kubelet)
    kubelet.running(NS, pod)
    kubelet.core.patch_namespaced_pod(pod, NS, {"spec": {"nodeName": "sim-node-2"}})
    gc = disrupted("DeletionByPodGC", "PodGC: node no longer exists")
    kubelet.pod_status(NS, pod, {"phase": "Failed", "conditions": [gc]})
    kubelet.job_done(NS, "train-iris-12", ok=False, reason="BackoffLimitExceeded", message="limit")
    seen = await poll(lambda: _ended(adapter, external_id), f"{external_id} to end", within=20)
    assert seen.detail == "node sim-node-2 was lost (DeletionByPodGC): PodGC: node no longer exists"


async def _ended(adapter: KubernetesAdapter, external_id: str) -> Any:
    seen = await adapter.describe(external_id)
    return None if seen.alive else seen


async def test_an_image_pull_error_is_a_certain_end(adapter: KubernetesAdapter, kubelet: HandKubelet) -> None:
    external_id, pod = await started_pod(adapter, kubelet)
    kubelet.waiting(NS, pod, "ImagePullBackOff", "Back-off pulling image", image="atom-no-such:0")
    seen = await poll(lambda: _ended(adapter, external_id), "the pull error", within=20)
    assert seen.certain and seen.exit_code is None
    assert seen.detail == "image atom-no-such:0 could not be pulled: Back-off pulling image"


class Followed(Logs):
    """A log source whose containers run until `ended` names them (a follow sees lines arrive)."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: set[tuple[str, str]] = set()

    def open_log(
        self, namespace: str, pod: str, container: str | None, previous: bool
    ) -> Callable[[], tuple[bytes, bool]]:
        key = (namespace, pod)
        return lambda: (self.text.get(key, b""), key in self.ended)


async def test_a_stopped_pod_is_settled_once_it_has_ended_and_its_log_is_read(
    adapter: KubernetesAdapter, kubelet: HandKubelet, kube_api: KubeApi
) -> None:
    logs = Followed()
    logs.install(kube_api)
    external_id, pod = await started_pod(adapter, kubelet)
    logs.text[(NS, pod)] = b"waiting to be stopped\n"
    kubelet.running(NS, pod)
    assert await poll(lambda: adapter.logs(external_id), "the running pod's log")
    # the stop took the Job away; its pod runs its SIGTERM handler, the run reads as ended
    kubelet.batch.delete_namespaced_job("train-iris-12", NS, propagation_policy="Orphan")
    await poll(lambda: _ended(adapter, external_id), "the Job to read as gone", within=20)
    assert not await adapter.settled(external_id)
    logs.text[(NS, pod)] = b"waiting to be stopped\nstop requested: stopped by SIGTERM\n"
    logs.ended.add((NS, pod))
    kubelet.terminated(NS, pod, 143)
    assert await poll(lambda: adapter.settled(external_id), "the pod to settle", within=20)
    assert "stopped by SIGTERM" in (await adapter.logs(external_id) or "")
