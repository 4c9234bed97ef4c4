"""The kubelet simulator on its own: hand-written Jobs and Deployments, created with the official
client on the API stand-in, really run (containers on the test Docker engine, or processes where no
engine can start) and report their status as a kubelet and the controllers do.

Stand-ins: kmock + tests/k8s_sim/apiserver.py for the API server; tests/k8s_sim for the scheduler,
kubelet and controllers; the Docker engine of tests/docker_support.py (or local processes) for
the container runtime.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from control.deploy import free_port

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(180)]
NS = "team-a"


def until(probe: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def job_manifest(name: str, image: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image, "command": ["python3", "-c", script]}
    container.update(spec.pop("container", {}))
    pod_spec = {"restartPolicy": "Never", "containers": [container], **spec.pop("pod", {})}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"test": name}},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}, **spec},
    }


class Cluster:
    """What a test talks to: the official client's APIs on the stand-in, and the simulator."""

    def __init__(self, kube_client: Any, sim: Any, image: str) -> None:
        self.core, self.batch, self.apps = (
            client.CoreV1Api(kube_client),
            client.BatchV1Api(kube_client),
            client.AppsV1Api(kube_client),
        )
        self.sim, self.image = sim, image
        self.core.create_namespace({"metadata": {"name": NS}})

    def job(self, name: str) -> Any:
        return self.batch.read_namespaced_job(name, NS)

    def finished(self, name: str) -> Any:
        job = self.job(name)
        done = [
            c
            for c in ((job.status and job.status.conditions) or [])
            if c.type in ("Complete", "Failed") and c.status == "True"
        ]
        return job if done else None

    def pods(self, job: str) -> list[Any]:
        return self.core.list_namespaced_pod(NS, label_selector=f"job-name={job}").items

    def log(self, pod: str) -> str:
        # kubernetes 36's read_namespaced_pod_log returns the repr of bytes (client issue #2596):
        # the raw response is decoded instead, as an adapter must
        return self.core.read_namespaced_pod_log(pod, NS, _preload_content=False).data.decode()

    def waiting(self, job: str) -> Any:
        pods = self.pods(job)
        statuses = pods[0].status.container_statuses if pods and pods[0].status else None
        return statuses[0].state.waiting if statuses and statuses[0].state.waiting else None


@pytest.fixture(params=["runtime", "process"])
def cluster(
    request: pytest.FixtureRequest, make_sim_cluster: Any, kube_client: Any, sim_base_image: str
) -> Cluster:
    """The simulator on the session's runtime (Docker where an engine runs), and again on processes."""
    if request.param == "process" and request.getfixturevalue("sim_engine") is None:
        pytest.skip("the runtime is already processes here")
    if request.param == "process":
        return Cluster(kube_client, make_sim_cluster(process=True), "sim-base:process")
    return Cluster(kube_client, make_sim_cluster(), sim_base_image)


@pytest.fixture
def on_runtime(make_sim_cluster: Any, kube_client: Any, sim_base_image: str) -> Cluster:
    """The simulator on the session's runtime only."""
    return Cluster(kube_client, make_sim_cluster(), sim_base_image)


def test_a_job_runs_its_container_until_complete(cluster: Cluster, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    cluster.core.create_namespaced_secret(
        NS, {"metadata": {"name": "tok"}, "stringData": {"token": "s3cr3t"}}
    )
    script = (
        "import os, pathlib; pathlib.Path(os.environ['OUT']).write_text(os.environ['TOKEN']);"
        "print('pod', os.environ['POD'], 'on', os.environ['NODE'], 'says', os.environ['GREETING'])"
    )
    env = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "WHO", "value": "world"},
        {"name": "OUT", "value": "/mnt/shared/out.txt"},
        {"name": "GREETING", "value": "hello $(WHO)"},
    ]
    mount = {"volumeMounts": [{"name": "shared", "mountPath": "/mnt/shared"}], "env": env}
    volume = {"volumes": [{"name": "shared", "hostPath": {"path": str(shared)}}]}
    limits = {"resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}
    cluster.batch.create_namespaced_job(
        NS, job_manifest("hello", cluster.image, script, container={**mount, **limits}, pod=volume)
    )

    job = until(lambda: cluster.finished("hello"), "the Job to finish")
    assert [(c.type, c.reason) for c in job.status.conditions] == [
        ("SuccessCriteriaMet", "CompletionsReached"),
        ("Complete", "CompletionsReached"),
    ]
    assert job.status.succeeded == 1 and not job.status.failed and not job.status.active
    (pod,) = cluster.pods("hello")
    state = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Succeeded" and (state.reason, state.exit_code) == ("Completed", 0)
    assert pod.status.qos_class == "Guaranteed" and pod.spec.node_name.startswith("sim-node-")
    assert (
        cluster.log(pod.metadata.name)
        == f"pod {pod.metadata.name} on {pod.spec.node_name} says hello world\n"
    )
    assert (shared / "out.txt").read_text() == "s3cr3t"


def test_an_image_that_is_not_there_is_err_image_pull_then_back_off(on_runtime: Cluster) -> None:
    cluster = on_runtime
    cluster.batch.create_namespaced_job(NS, job_manifest("nope", "registry.invalid/atom/none:1", "print(1)"))
    first = until(lambda: cluster.waiting("nope"), "a waiting reason")
    assert first.reason == "ErrImagePull" and "registry.invalid/atom/none:1" in first.message
    later = until(
        lambda: (w := cluster.waiting("nope")) and w.reason == "ImagePullBackOff" and w, "the back-off"
    )
    assert later.message == 'Back-off pulling image "registry.invalid/atom/none:1"'
    (pod,) = cluster.pods("nope")
    assert pod.status.phase == "Pending" and cluster.job("nope").status.active == 1
    with pytest.raises(client.ApiException) as no_log:
        cluster.log(pod.metadata.name)
    assert no_log.value.status == 400 and "trying and failing to pull image" in no_log.value.body


def test_a_container_over_its_memory_limit_is_oom_killed(cluster: Cluster) -> None:
    script = "import time; hog = bytearray(512 * 2**20); time.sleep(5)"
    limits = {"resources": {"limits": {"memory": "64Mi"}}}
    cluster.batch.create_namespaced_job(NS, job_manifest("hog", cluster.image, script, container=limits))
    job = until(lambda: cluster.finished("hog"), "the Job to fail")
    assert [(c.type, c.reason) for c in job.status.conditions] == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    (pod,) = cluster.pods("hog")
    state = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Failed" and (state.reason, state.exit_code) == ("OOMKilled", 137)


def test_backoff_limit_retries_a_failed_pod(on_runtime: Cluster, tmp_path: Path) -> None:
    cluster = on_runtime
    marks = tmp_path / "marks"
    marks.mkdir(mode=0o777)
    marks.chmod(0o777)
    script = (
        "import os, pathlib, sys; p = pathlib.Path(os.environ['MARKS'], 'tries');"
        "n = len(p.read_text()) if p.exists() else 0;"
        "p.write_text('x' * (n + 1)); sys.exit(0 if n >= int(sys.argv[1]) else 3)"
    )
    mount = {
        "volumeMounts": [{"name": "marks", "mountPath": "/marks"}],
        "env": [{"name": "MARKS", "value": "/marks"}],
    }
    volume = {"volumes": [{"name": "marks", "hostPath": {"path": str(marks)}}]}
    second = job_manifest(
        "flaky", cluster.image, script, container={**mount, "args": ["1"]}, pod=volume, backoffLimit=2
    )
    cluster.batch.create_namespaced_job(NS, second)
    job = until(lambda: cluster.finished("flaky"), "the flaky Job to finish")
    assert job.status.conditions[-1].type == "Complete" and (job.status.failed, job.status.succeeded) == (
        1,
        1,
    )
    assert sorted(p.status.phase for p in cluster.pods("flaky")) == ["Failed", "Succeeded"]

    (marks / "tries").unlink()
    never = job_manifest(
        "doomed", cluster.image, script, container={**mount, "args": ["9"]}, pod=volume, backoffLimit=1
    )
    cluster.batch.create_namespaced_job(NS, never)
    job = until(lambda: cluster.finished("doomed"), "the doomed Job to fail")
    assert (job.status.conditions[-1].type, job.status.conditions[-1].reason) == (
        "Failed",
        "BackoffLimitExceeded",
    )
    assert job.status.failed == 2 and len(cluster.pods("doomed")) == 2
    assert {p.status.container_statuses[0].state.terminated.exit_code for p in cluster.pods("doomed")} == {3}


def test_a_deployment_gets_ready_replicas_and_serves(on_runtime: Cluster) -> None:
    cluster = on_runtime
    port = free_port()
    container = {
        "name": "web",
        "image": cluster.image,
        "command": ["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    }
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
            },
        },
    }
    cluster.apps.create_namespaced_deployment(NS, deployment)
    dep = until(
        lambda: (
            (d := cluster.apps.read_namespaced_deployment("web", NS)).status
            and d.status.ready_replicas == 1
            and d
        ),
        "a ready replica",
    )
    assert (dep.status.replicas, dep.status.available_replicas, dep.status.updated_replicas) == (1, 1, 1)
    assert {c.type: c.status for c in dep.status.conditions} == {"Available": "True", "Progressing": "True"}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.status == 200
    (pod,) = cluster.core.list_namespaced_pod(NS, label_selector="app=web").items
    assert pod.metadata.owner_references[0].kind == "ReplicaSet" and pod.status.phase == "Running"

    # apps/v1: dependents go too (Background); http.server is PID 1 in a container and ignores
    # SIGTERM there, as it would on a kubelet, so the pod ends by SIGKILL after its 1 s grace
    cluster.apps.delete_namespaced_deployment("web", NS)
    until(lambda: not cluster.core.list_namespaced_pod(NS).items, "the pod to go")
    assert not cluster.apps.list_namespaced_replica_set(NS).items


def test_a_pod_asking_for_gpus_the_nodes_lack_is_unschedulable(on_runtime: Cluster) -> None:
    cluster = on_runtime
    gpu = {"resources": {"limits": {"nvidia.com/gpu": "1"}}}
    cluster.batch.create_namespaced_job(NS, job_manifest("gpu", cluster.image, "print(1)", container=gpu))

    def unschedulable() -> Any:
        pods = cluster.pods("gpu")
        conditions = (pods[0].status.conditions or []) if pods and pods[0].status else []
        return next((c for c in conditions if c.type == "PodScheduled" and c.status == "False"), None)

    condition = until(unschedulable, "PodScheduled=False")
    assert condition.reason == "Unschedulable"
    assert condition.message.startswith("0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption:")
    assert cluster.job("gpu").status.active == 1 and cluster.pods("gpu")[0].spec.node_name is None


def test_deleting_a_job_stops_its_pod_with_sigterm_then_sigkill(on_runtime: Cluster, tmp_path: Path) -> None:
    cluster = on_runtime
    marks = tmp_path / "marks"
    marks.mkdir(mode=0o777)
    marks.chmod(0o777)
    polite = (
        "import os, pathlib, signal, sys, time\n"
        "def bye(*_):\n    pathlib.Path(os.environ['MARKS'], 'polite').write_text('TERM'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye); print('up', flush=True); time.sleep(300)"
    )
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True);"
        "time.sleep(300)"
    )
    mount = {
        "volumeMounts": [{"name": "marks", "mountPath": "/marks"}],
        "env": [{"name": "MARKS", "value": "/marks"}],
    }
    volume = {
        "volumes": [{"name": "marks", "hostPath": {"path": str(marks)}}],
        "terminationGracePeriodSeconds": 2,
    }
    for name, script in (("polite", polite), ("stubborn", stubborn)):
        cluster.batch.create_namespaced_job(
            NS, job_manifest(name, cluster.image, script, container=mount, pod=volume)
        )
    for name in ("polite", "stubborn"):
        until(
            lambda n=name: (
                (p := cluster.pods(n))
                and p[0].status
                and p[0].status.phase == "Running"
                and "up" in cluster.log(p[0].metadata.name)
            ),
            f"{name} to run",
        )
    for name in ("polite", "stubborn"):
        cluster.batch.delete_namespaced_job(name, NS, propagation_policy="Background")
    terminating = cluster.core.list_namespaced_pod(NS).items
    assert len(terminating) == 2 and all(p.metadata.deletion_timestamp for p in terminating)
    until(lambda: not cluster.core.list_namespaced_pod(NS).items, "both pods to be gone")
    assert (marks / "polite").read_text() == "TERM"


def test_a_job_past_its_deadline_fails_and_its_pod_is_stopped(on_runtime: Cluster) -> None:
    cluster = on_runtime
    script = "import time; time.sleep(300)"
    cluster.batch.create_namespaced_job(
        NS,
        job_manifest(
            "slow", cluster.image, script, activeDeadlineSeconds=2, pod={"terminationGracePeriodSeconds": 1}
        ),
    )
    job = until(lambda: cluster.finished("slow"), "the deadline")
    assert (job.status.conditions[-1].type, job.status.conditions[-1].reason) == (
        "Failed",
        "DeadlineExceeded",
    )
    assert job.status.conditions[-1].message == "Job was active longer than specified deadline"
    until(lambda: all(p.status.phase == "Failed" for p in cluster.pods("slow")), "the pod to end")


def test_a_lost_node_fails_its_pod_and_the_job_retries_elsewhere(on_runtime: Cluster, tmp_path: Path) -> None:
    cluster = on_runtime
    marks = tmp_path / "marks"
    marks.mkdir(mode=0o777)
    marks.chmod(0o777)
    since = cluster.core.list_namespaced_pod(NS).metadata.resource_version
    script = (
        "import os, pathlib, time; p = pathlib.Path(os.environ['MARKS'], 'first'); again = p.exists();"
        "p.write_text('1');"
        "print('up', flush=True); time.sleep(0 if again else 300)"
    )
    mount = {
        "volumeMounts": [{"name": "marks", "mountPath": "/marks"}],
        "env": [{"name": "MARKS", "value": "/marks"}],
    }
    volume = {"volumes": [{"name": "marks", "hostPath": {"path": str(marks)}}]}
    lost = job_manifest("lost", cluster.image, script, container=mount, pod=volume, backoffLimit=1)
    cluster.batch.create_namespaced_job(NS, lost)
    first = until(
        lambda: (
            (p := cluster.pods("lost"))
            and p[0].status
            and p[0].status.phase == "Running"
            and "up" in cluster.log(p[0].metadata.name)
            and p[0]
        ),
        "the first pod to run",
    )
    cluster.sim.lose_node(first.spec.node_name)

    job = until(lambda: cluster.finished("lost"), "the Job to end")
    assert (
        job.status.failed == 1 and job.status.succeeded == 1 and job.status.conditions[-1].type == "Complete"
    )
    (second,) = cluster.pods("lost")
    assert second.spec.node_name != first.spec.node_name
    history = [
        e["object"]
        for e in watch.Watch().stream(
            cluster.core.list_namespaced_pod, NS, resource_version=since, timeout_seconds=1
        )
        if e["object"].metadata.name == first.metadata.name
    ]
    reasons = [
        c.reason
        for o in history
        if o.status
        for c in o.status.conditions or []
        if c.type == "DisruptionTarget"
    ]
    assert "DeletionByTaintManager" in reasons and "DeletionByPodGC" in reasons
    assert history[-1].status.phase == "Failed"
    nodes = [n.metadata.name for n in cluster.core.list_node().items]
    assert first.spec.node_name not in nodes and len(nodes) == 2
