"""Starts of the Kubernetes adapter that fail: one line each, and nothing left behind (the test lists
Jobs and Secrets after). Stand-in: the API server of tests/k8s_sim (kmock behind the official
client), with refusals injected as kmock reactions."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.dispatch import k8s_manifests as km
from control.dispatch.kubernetes import KubernetesAdapter
from control.errors import DispatchFailed
from tests.control.dispatch.k8s_kubelet import HandKubelet
from tests.control.dispatch.test_k8s_adapter import adapter, kubelet, names, run_desc, settings_for
from tests.k8s_sim.kubeapi import KubeApi

pytestmark = pytest.mark.k8s
__all__ = ["adapter", "kubelet"]  # the fixtures, shared with test_k8s_adapter


async def test_a_kubeconfig_that_does_not_load_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: [\n")
    adapter = KubernetesAdapter(settings_for(bad, tmp_path))
    with pytest.raises(DispatchFailed) as caught:
        await adapter.start(run_desc())
    message = str(caught.value)
    assert message.startswith(f"kubernetes adapter: the kubeconfig {bad} does not load: ")
    assert "ATOM_K8S_KUBECONFIG" in message and "\n" not in message
    missing = KubernetesAdapter(settings_for(tmp_path / "nope", tmp_path))
    with pytest.raises(DispatchFailed, match="kubeconfig .*nope does not exist: check ATOM_K8S_KUBECONFIG"):
        await missing.start(run_desc())


async def test_a_namespace_the_account_may_not_create(
    adapter: KubernetesAdapter, kubelet: HandKubelet, kube_api: KubeApi
) -> None:
    (
        kube_api.handler["create v1/namespaces"]
        << 403
        << {
            "kind": "Status",
            "reason": "Forbidden",
            "code": 403,
            "message": 'namespaces is forbidden: User "atom" cannot create resource "namespaces"',
        }
    )
    with pytest.raises(DispatchFailed) as caught:
        await adapter.start(run_desc())
    message = str(caught.value)
    assert "may not create namespace atom-research" in message and "403 Forbidden" in message
    assert "kubectl create namespace atom-research" in message and "\n" not in message
    assert names(kubelet.batch.list_job_for_all_namespaces()) == []
    assert names(kubelet.core.list_secret_for_all_namespaces()) == []


async def test_a_failed_start_leaves_no_secret_or_job(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    # the Job is refused (a name taken by something else): the Secret made before it goes again
    kubelet.core.create_namespace({"metadata": {"name": "atom-research"}})
    other = run_desc(99, name="other")
    kubelet.batch.create_namespaced_job(
        "atom-research",
        km.run_objects(other, adapter.options).job
        | {"metadata": {"name": "train-iris-12", "namespace": "atom-research"}},
    )
    with pytest.raises(DispatchFailed) as caught:
        await adapter.start(run_desc())
    assert "could not create Job atom-research/train-iris-12 for run 12: 409 AlreadyExists" in str(
        caught.value
    )
    assert names(kubelet.core.list_namespaced_secret("atom-research")) == []
    assert names(kubelet.batch.list_namespaced_job("atom-research")) == ["train-iris-12"]  # not ours: kept


async def test_a_bad_placement_is_refused_before_anything_is_made(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    with pytest.raises(
        DispatchFailed, match=r"environmentConf.tolerations\[0\] has unknown keys \['colour'\]"
    ):
        await adapter.start(run_desc(environment_conf={"tolerations": [{"colour": "red"}]}))
    assert names(kubelet.core.list_namespace()) == ["default", "kube-system"]


async def test_a_start_that_fails_after_the_job_takes_job_and_secret_back(
    adapter: KubernetesAdapter, kubelet: HandKubelet, kube_api: KubeApi
) -> None:
    refusal = {"kind": "Status", "reason": "Forbidden", "code": 403, "message": "secrets is forbidden: patch"}
    kube_api.handler["patch v1/secrets"] << 403 << refusal
    with pytest.raises(DispatchFailed) as caught:
        await adapter.start(run_desc())
    message = str(caught.value)
    assert "could not give the token's Secret to Job atom-research/train-iris-12 for run 12: 403" in message
    assert names(kubelet.batch.list_namespaced_job("atom-research")) == []
    assert names(kubelet.core.list_namespaced_secret("atom-research")) == []
