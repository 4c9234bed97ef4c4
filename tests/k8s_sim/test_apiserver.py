"""The Kubernetes API stand-in (kmock's server with apiserver.py's store) behind the official
`kubernetes` client: what an adapter relies on behaves as on a real API server."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client, watch

pytestmark = pytest.mark.k8s


def _job(name: str, **labels: str) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, labels=labels or None),
        spec=client.V1JobSpec(
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never", containers=[client.V1Container(name="main", image="busybox")]
                )
            )
        ),
    )


def _ns(core: client.CoreV1Api, name: str) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def test_create_assigns_identity_and_refuses_what_a_server_refuses(kube_client: Any) -> None:
    core, batch = client.CoreV1Api(kube_client), client.BatchV1Api(kube_client)
    with pytest.raises(client.ApiException) as missing:
        batch.create_namespaced_job("team-a", _job("train"))
    assert missing.value.status == 404 and 'namespaces \\"team-a\\" not found' in missing.value.body
    _ns(core, "team-a")
    made = batch.create_namespaced_job("team-a", _job("train", run="7"))
    assert made.kind == "Job" and made.metadata.uid and made.metadata.namespace == "team-a"
    with pytest.raises(client.ApiException) as twice:
        batch.create_namespaced_job("team-a", _job("train"))
    assert twice.value.status == 409 and "AlreadyExists" in twice.value.body
    bad = _job("Train_1")
    with pytest.raises(client.ApiException) as named:
        batch.create_namespaced_job("team-a", bad)
    assert named.value.status == 422 and "RFC 1123" in named.value.body
    unknown = kube_client.sanitize_for_serialization(_job("other"))
    unknown["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(client.ApiException) as schema:
        batch.create_namespaced_job("team-a", unknown)
    assert schema.value.status == 422 and "'gpus' was unexpected" in schema.value.body
    secret = core.create_namespaced_secret(
        "team-a", client.V1Secret(metadata=client.V1ObjectMeta(name="tok"), string_data={"token": "s3"})
    )
    assert secret.data == {"token": "czM="} and secret.string_data is None


def test_selectors_status_subresource_and_watch_from_a_version(kube_client: Any) -> None:
    core, batch = client.CoreV1Api(kube_client), client.BatchV1Api(kube_client)
    _ns(core, "team-a")
    batch.create_namespaced_job("team-a", _job("one", run="1", space="a"))
    batch.create_namespaced_job("team-a", _job("two", run="2", space="a"))
    assert [j.metadata.name for j in batch.list_namespaced_job("team-a", label_selector="run=2").items] == [
        "two"
    ]
    assert len(batch.list_namespaced_job("team-a", label_selector="space=a,run in (1,2)").items) == 2
    assert [j.metadata.name for j in batch.list_namespaced_job("team-a", label_selector="run!=1").items] == [
        "two"
    ]
    assert (
        batch.list_namespaced_job("team-a", field_selector="metadata.name=one")
        .items[0]
        .metadata.labels["run"]
        == "1"
    )

    listed = batch.list_namespaced_job("team-a")
    batch.patch_namespaced_job("one", "team-a", {"status": {"active": 5}})  # ignored: not /status
    batch.patch_namespaced_job_status("two", "team-a", {"status": {"active": 1}})
    assert batch.read_namespaced_job("one", "team-a").status is None
    seen = [
        (e["type"], e["object"].metadata.name, e["object"].status.active if e["object"].status else None)
        for e in watch.Watch().stream(
            batch.list_namespaced_job,
            "team-a",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        )
    ]
    assert seen == [("MODIFIED", "two", 1)]  # the ignored status patch changed nothing


def test_a_watch_sees_changes_as_they_happen(kube_client: Any) -> None:
    core, batch = client.CoreV1Api(kube_client), client.BatchV1Api(kube_client)
    _ns(core, "team-a")
    batch.create_namespaced_job("team-a", _job("one"))
    seen: list[tuple[str, str]] = []
    first = threading.Event()
    stream = watch.Watch()

    def follow() -> None:
        for event in stream.stream(batch.list_job_for_all_namespaces, timeout_seconds=20):
            seen.append((event["type"], event["object"].metadata.name))
            first.set()
            if event["type"] == "DELETED":
                stream.stop()

    thread = threading.Thread(target=follow)
    thread.start()
    assert first.wait(10)
    batch.create_namespaced_job("team-a", _job("two"))
    batch.delete_namespaced_job("two", "team-a")
    thread.join(20)
    assert seen == [("ADDED", "one"), ("ADDED", "two"), ("DELETED", "two")]


def test_deletion_cascades_as_the_garbage_collector_does(kube_client: Any) -> None:
    core, batch = client.CoreV1Api(kube_client), client.BatchV1Api(kube_client)
    _ns(core, "team-a")

    def owned_pod(job: client.V1Job, name: str, node: str | None) -> None:
        owner = client.V1OwnerReference(
            api_version="batch/v1", kind="Job", name=job.metadata.name, uid=job.metadata.uid
        )
        core.create_namespaced_pod(
            "team-a",
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=name, owner_references=[owner]),
                spec=client.V1PodSpec(
                    node_name=node, containers=[client.V1Container(name="main", image="busybox")]
                ),
            ),
        )

    kept = batch.create_namespaced_job("team-a", _job("kept"))
    owned_pod(kept, "kept-pod", None)
    batch.delete_namespaced_job("kept", "team-a")  # a batch/v1 Job orphans its pods by default
    assert core.read_namespaced_pod("kept-pod", "team-a").metadata.owner_references == []

    gone = batch.create_namespaced_job("team-a", _job("gone"))
    owned_pod(gone, "gone-pod", None)
    owned_pod(gone, "bound-pod", "node-1")
    batch.delete_namespaced_job("gone", "team-a", propagation_policy="Background")
    names = {p.metadata.name for p in core.list_namespaced_pod("team-a").items}
    assert names == {
        "kept-pod",
        "bound-pod",
    }  # the bound, running pod is terminating until its kubelet ends it
    terminating = core.read_namespaced_pod("bound-pod", "team-a")
    assert (
        terminating.metadata.deletion_timestamp and terminating.metadata.deletion_grace_period_seconds == 30
    )
    core.delete_namespaced_pod("bound-pod", "team-a", grace_period_seconds=0)
    core.delete_namespace("team-a")
    assert core.list_pod_for_all_namespaces().items == [] and batch.list_job_for_all_namespaces().items == []


def test_a_refusal_injected_with_a_kmock_reaction_wins(kube_api: Any, kube_client: Any) -> None:
    kube_api.handler["create v1/namespaces"] << 403 << {"kind": "Status", "reason": "Forbidden", "code": 403}
    with pytest.raises(client.ApiException) as refused:
        _ns(client.CoreV1Api(kube_client), "team-b")
    assert refused.value.status == 403
    assert [n.metadata.name for n in client.CoreV1Api(kube_client).list_namespace().items] == [
        "default",
        "kube-system",
    ]
