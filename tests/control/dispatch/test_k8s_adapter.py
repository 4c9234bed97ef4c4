"""The Kubernetes adapter against the API stand-in (tests/k8s_sim: kmock's server with a store
that behaves like kube-apiserver, behind the official `kubernetes` client): what it creates,
how pod and Job status read as run states (patched by hand as a kubelet would: k8s_kubelet.py),
logs, stop, and starts that fail without leaving anything behind."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from control.dispatch import k8s_manifests as km
from control.dispatch.base import Infeasible, RunDescription
from control.dispatch.kubernetes import KubernetesAdapter
from control.schemas.resources import ResourceRequest
from control.settings import Settings
from tests.control.dispatch.conformance import poll
from tests.control.dispatch.k8s_kubelet import HandKubelet, Logs
from tests.k8s_sim.kubeapi import KubeApi

pytestmark = pytest.mark.k8s
TOKEN = "run-token-do-not-leak-7f3a"


def run_desc(ident: int = 12, **extra: Any) -> RunDescription:
    env = {
        "PATH": "/control/venv/bin:/usr/bin",
        "HOME": "/home/control",
        "VIRTUAL_ENV": "/control/venv",
        "PYTHONPATH": "/control/src",
        "ATOM_CONTROL_URL": "http://127.0.0.1:8470",
        "ATOM_HOME": "/home/control/.local/share/atom",
        "ATOM_DATA_DIR": f"/home/control/.local/share/atom/runs/{ident}/data",
        "ATOM_RUN_ID": str(ident),
        "ATOM_RUN_TOKEN": TOKEN,
        "ATOM_NODE_NAME": "train-iris",
        "ATOM_EXAM_NAME": "nightly",
        "ATOM_MODEL_NAME": "iris",
        "DECLARED_BY_NODE": "yes",
    }
    fields: dict[str, Any] = {
        "kind": "run",
        "ident": ident,
        "name": "train-iris",
        "command": ["/control/venv/bin/python", "-m", "runtime_agent", "run", "--run-id", str(ident)],
        "args": ("run", "--run-id", str(ident)),
        "env": env,
        "log_path": Path("/tmp/unused.log"),
        "resources": ResourceRequest(cpu=2, gpu=1, memory_mib=2048),
        "space": "research",
        "retries": 2,
        "environment_conf": {
            "nodeSelector": {"accelerator": "a100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "volumes": [
                {"name": "data", "mountPath": "/data", "persistentVolumeClaim": {"claimName": "data"}}
            ],
            "timeoutSeconds": 3600,
        },
    }
    fields.update(extra)
    return RunDescription(**fields)


def settings_for(kubeconfig: Path, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        home=tmp_path / "home",
        k8s_kubeconfig=str(kubeconfig),
        k8s_namespace_prefix="atom-",
        k8s_control_url="http://control.atom-system.svc:8470",
        k8s_image="registry.example/atom-agent:1.0",
        **extra,
    )


@pytest.fixture
async def adapter(kubeconfig: Path, tmp_path: Path) -> AsyncIterator[KubernetesAdapter]:
    adapter = KubernetesAdapter(settings_for(kubeconfig, tmp_path), watch_timeout=5)
    yield adapter
    await adapter.aclose()


@pytest.fixture
def kubelet(kube_client: Any) -> HandKubelet:
    return HandKubelet(kube_client)


def names(items: Any) -> list[str]:
    return sorted(i.metadata.name for i in items.items)


# -- what a start creates ---------------------------------------------------------------------------


async def test_a_run_is_a_job_with_its_token_in_an_owned_secret(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    external_id = await adapter.start(run_desc())
    assert external_id == "job/atom-research/train-iris-12"
    job = kubelet.job("atom-research", "train-iris-12")
    labels = job["metadata"]["labels"]
    assert labels["atom.dev/space"] == "research" and labels["atom.dev/run"] == "12"
    assert labels["atom.dev/node"] == "train-iris" and labels["atom.dev/exam"] == "nightly"
    spec = job["spec"]
    assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 3600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["nodeSelector"] == {"accelerator": "a100"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data"}} in pod["volumes"]
    agent = pod["containers"][0]
    assert agent["image"] == "registry.example/atom-agent:1.0" and agent["imagePullPolicy"] == "IfNotPresent"
    assert agent["args"] == ["run", "--run-id", "12"] and "command" not in agent
    limits = {"cpu": "2", "memory": "2048Mi", "nvidia.com/gpu": "1"}
    assert agent["resources"] == {"requests": limits, "limits": limits}
    env = {e["name"]: e for e in agent["env"]}
    assert TOKEN not in json.dumps(job), "the run token is in the Job"
    assert env["ATOM_RUN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "train-iris-12-token",
        "key": "token",
    }
    assert env["ATOM_CONTROL_URL"]["value"] == "http://control.atom-system.svc:8470"
    assert (
        env["ATOM_DATA_DIR"]["value"] == f"{km.WORK_DIR}/data" and env["DECLARED_BY_NODE"]["value"] == "yes"
    )
    for host_only in ("PATH", "HOME", "VIRTUAL_ENV", "PYTHONPATH", "ATOM_HOME"):
        assert host_only not in env, host_only
    assert env["ATOM_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

    secret = kubelet.core.read_namespaced_secret("train-iris-12-token", "atom-research")
    assert base64.b64decode(secret.data["token"]).decode() == TOKEN
    [owner] = secret.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Job", "train-iris-12", job["metadata"]["uid"])


async def test_the_namespace_is_created_once_and_reused(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    await adapter.start(run_desc(1))
    await adapter.start(run_desc(2))
    ns = kubelet.core.read_namespace("atom-research")
    assert ns.metadata.labels == {"app.kubernetes.io/managed-by": "atom"}
    assert names(kubelet.batch.list_namespaced_job("atom-research")) == ["train-iris-1", "train-iris-2"]


async def test_a_service_is_a_deployment_with_a_service_and_an_hpa_it_owns(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    desc = RunDescription(
        kind="service",
        ident=3,
        name="iris-v2",
        command=["python", "-m", "runtime_agent", "serve"],
        args=("serve", "--service-id", "3", "--host", "127.0.0.1", "--port", "18501"),
        env={
            "ATOM_SERVICE_TOKEN": TOKEN,
            "ATOM_MODEL_NAME": "iris",
            "ATOM_MODEL_VERSION": "v2",
            "PATH": "/x",
        },
        log_path=Path("/tmp/unused.log"),
        resources=ResourceRequest(cpu=1, memory_mib=512, nodes=1),
        space="research",
        replicas=(1, 4),
        service_type="serving",
    )
    external_id = await adapter.start(desc)
    assert external_id == "deployment/atom-research/serving-iris-2"
    assert adapter.endpoint(desc, 18501) == "http://serving-iris-2.atom-research.svc:18501"
    deployment = kubelet.apps.read_namespaced_deployment("serving-iris-2", "atom-research")
    uid = deployment.metadata.uid
    assert deployment.spec.replicas == 1 and deployment.spec.template.spec.restart_policy == "Always"
    container = deployment.spec.template.spec.containers[0]
    assert container.args[-4:] == ["--host", "0.0.0.0", "--port", "18501"]
    assert container.readiness_probe.http_get.path == "/v2/health/ready"
    assert TOKEN not in json.dumps(kubelet.serialize(deployment))
    service = kubelet.core.read_namespaced_service("serving-iris-2", "atom-research")
    hpa = client.AutoscalingV2Api(kubelet.core.api_client).read_namespaced_horizontal_pod_autoscaler(
        "serving-iris-2", "atom-research"
    )
    secret = kubelet.core.read_namespaced_secret("serving-iris-2-token", "atom-research")
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 4)
    for obj in (service, hpa, secret):
        assert [r.uid for r in obj.metadata.owner_references] == [uid], obj.kind

    await adapter.stop(external_id, grace=1)  # the Deployment goes, and what it owns with it
    assert names(kubelet.core.list_namespaced_service("atom-research")) == []
    assert names(kubelet.core.list_namespaced_secret("atom-research")) == []
    assert names(kubelet.apps.list_namespaced_deployment("atom-research")) == []


async def test_a_fixed_size_service_has_no_hpa(adapter: KubernetesAdapter, kubelet: HandKubelet) -> None:
    desc = RunDescription(
        kind="service",
        ident=4,
        name="iris-3",
        command=["python"],
        args=("serve", "--service-id", "4", "--host", "127.0.0.1", "--port", "18502"),
        env={"ATOM_SERVICE_TOKEN": TOKEN, "ATOM_MODEL_NAME": "iris", "ATOM_MODEL_VERSION": "3"},
        log_path=Path("/tmp/unused.log"),
        resources=ResourceRequest(cpu=1, nodes=2),
    )
    await adapter.start(desc)
    scaling = client.AutoscalingV2Api(kubelet.core.api_client)
    assert names(scaling.list_namespaced_horizontal_pod_autoscaler("atom-default")) == []
    assert kubelet.apps.read_namespaced_deployment("serving-iris-3", "atom-default").spec.replicas == 2


# -- status as a kubelet reports it -------------------------------------------------------------


async def started_pod(adapter: KubernetesAdapter, kubelet: HandKubelet, ident: int = 12) -> tuple[str, str]:
    external_id = await adapter.start(run_desc(ident))
    job = kubelet.job("atom-research", f"train-iris-{ident}")
    return external_id, kubelet.pod_for("atom-research", job)


async def settled(adapter: KubernetesAdapter, external_id: str, check: Any) -> Any:
    """The adapter's view once the watch has delivered what the test changed."""

    async def look() -> Any:
        seen = await adapter.describe(external_id)
        return seen if check(seen) else None

    return await poll(look, f"{external_id} to read as expected", within=20)


async def test_succeeded_and_failed_jobs(adapter: KubernetesAdapter, kubelet: HandKubelet) -> None:
    ok_id, ok_pod = await started_pod(adapter, kubelet, 1)
    bad_id, bad_pod = await started_pod(adapter, kubelet, 2)
    kubelet.running("atom-research", ok_pod)
    assert (await settled(adapter, ok_id, lambda s: s.alive and not s.waiting)).exit_code is None
    kubelet.terminated("atom-research", ok_pod, 0, "Completed")
    kubelet.job_done("atom-research", "train-iris-1", ok=True)
    kubelet.terminated("atom-research", bad_pod, 3)
    kubelet.job_done("atom-research", "train-iris-2", ok=False, reason="BackoffLimitExceeded")
    done = await settled(adapter, ok_id, lambda s: not s.alive)
    failed = await settled(adapter, bad_id, lambda s: not s.alive)
    assert done.exit_code == 0 and "succeeded" in done.detail
    assert failed.exit_code == 3 and failed.detail == "the agent exited with code 3"


async def test_oom_killed_reads_as_the_local_adapter_words_it(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    external_id, pod = await started_pod(adapter, kubelet)
    kubelet.terminated("atom-research", pod, 137, "OOMKilled")
    kubelet.job_done("atom-research", "train-iris-12", ok=False, reason="BackoffLimitExceeded")
    seen = await settled(adapter, external_id, lambda s: not s.alive)
    assert seen.detail == "out of memory (limit 2048 MiB): the agent process was killed"
    assert seen.exit_code == 137


async def test_deadline_exceeded_names_the_setting(adapter: KubernetesAdapter, kubelet: HandKubelet) -> None:
    external_id, _ = await started_pod(adapter, kubelet)
    kubelet.job_done(
        "atom-research", "train-iris-12", ok=False, reason="DeadlineExceeded", message="too long"
    )
    seen = await settled(adapter, external_id, lambda s: not s.alive)
    assert seen.detail == "the run passed its deadline of 3600 s (environmentConf.timeoutSeconds)"


async def test_unschedulable_is_waiting_with_the_schedulers_words(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    external_id, pod = await started_pod(adapter, kubelet)
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    kubelet.unschedulable("atom-research", pod, message)
    seen = await settled(adapter, external_id, lambda s: s.waiting.startswith("waiting for a node"))
    assert seen.alive and seen.waiting == f"waiting for a node: {message}"
    kubelet.running("atom-research", pod)
    assert (await settled(adapter, external_id, lambda s: not s.waiting)).alive


async def test_a_pod_whose_container_is_being_made_waits(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    external_id, pod = await started_pod(adapter, kubelet)
    assert (await adapter.describe(external_id)).waiting in (
        "waiting for the Job's pod to be created",  # the watch has not brought the pod yet
        "waiting for the pod to be scheduled",
    )
    kubelet.waiting("atom-research", pod, "ContainerCreating", "")  # e.g. pulling a large image
    seen = await settled(adapter, external_id, lambda s: "ContainerCreating" in s.waiting)
    assert seen.alive and seen.waiting == "waiting for the pod to start (ContainerCreating)"


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
async def test_an_image_that_cannot_be_pulled_ends_the_run_and_its_job(
    adapter: KubernetesAdapter, kubelet: HandKubelet, reason: str
) -> None:
    external_id, pod = await started_pod(adapter, kubelet)
    why = 'rpc error: code = NotFound desc = failed to pull "registry.example/atom-agent:1.0": not found'
    kubelet.waiting("atom-research", pod, reason, why, image="registry.example/atom-agent:1.0")
    seen = await settled(adapter, external_id, lambda s: not s.alive)
    assert seen.detail.startswith("image registry.example/atom-agent:1.0 could not be pulled: rpc error")
    assert "\n" not in seen.detail
    assert names(kubelet.batch.list_namespaced_job("atom-research")) == []  # nothing keeps retrying
    assert names(kubelet.core.list_namespaced_secret("atom-research")) == []
    assert await adapter.describe(external_id) == seen


async def test_a_job_deleted_behind_controls_back_is_gone(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    external_id = await adapter.start(run_desc())
    kubelet.batch.delete_namespaced_job("train-iris-12", "atom-research", propagation_policy="Background")
    seen = await settled(adapter, external_id, lambda s: not s.alive)
    assert "is gone" in seen.detail and seen.exit_code is None


# -- logs and stop ----------------------------------------------------------------------------------


async def test_logs_come_from_the_pod_and_outlive_it(
    adapter: KubernetesAdapter, kubelet: HandKubelet, kube_api: KubeApi
) -> None:
    logs = Logs().install(kube_api)
    external_id, pod = await started_pod(adapter, kubelet)
    assert await adapter.logs(external_id) is None  # not started: nothing yet
    logs.text[("atom-research", pod)] = b"step 1\nstep 2\n"
    kubelet.terminated("atom-research", pod, 0, "Completed")
    assert await poll(lambda: adapter.logs(external_id), "the pod's log") == "step 1\nstep 2\n"
    await adapter.stop(external_id, grace=0)
    assert names(kubelet.core.list_namespaced_pod("atom-research")) == []
    assert await adapter.logs(external_id) == "step 1\nstep 2\n"


async def test_stop_deletes_job_secret_and_pods_and_twice_is_fine(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    external_id, pod = await started_pod(adapter, kubelet)
    kubelet.running("atom-research", pod)
    await adapter.stop(external_id, grace=2)
    assert not (await adapter.describe(external_id)).alive
    for listing in (
        kubelet.batch.list_namespaced_job("atom-research"),
        kubelet.core.list_namespaced_secret("atom-research"),
        kubelet.core.list_namespaced_pod("atom-research"),
    ):
        assert names(listing) == []
    await adapter.stop(external_id, grace=2)
    await adapter.stop("job/atom-research/never-was-1", grace=2)


# -- admission and resources --------------------------------------------------------------------


def add_node(kubelet: HandKubelet, name: str, cpu: str, memory: str, gpus: int = 0) -> None:
    alloc = {"cpu": cpu, "memory": memory, "pods": "110"} | ({"nvidia.com/gpu": str(gpus)} if gpus else {})
    kubelet.core.create_node({"metadata": {"name": name}})
    kubelet.core.patch_node_status(name, {"status": {"allocatable": alloc, "capacity": alloc}})


async def test_resources_and_a_request_no_node_can_hold(
    adapter: KubernetesAdapter, kubelet: HandKubelet
) -> None:
    add_node(kubelet, "cpu-1", "4", "16Gi")
    add_node(kubelet, "gpu-1", "8", "64Gi", gpus=2)
    seen = await adapter.describe_resources()
    assert seen["total"] == {"cpu": 12.0, "gpu": 2.0, "memoryMib": 80 * 1024} and seen["nodes"] == 2
    assert (await adapter.admit(run_desc(resources=ResourceRequest(cpu=2, gpu=2)))).wait == ""
    with pytest.raises(Infeasible, match="needs 4 GPU; the largest node of the Kubernetes cluster has 2"):
        await adapter.admit(run_desc(resources=ResourceRequest(cpu=1, gpu=4)))
