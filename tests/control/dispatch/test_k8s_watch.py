"""The Kubernetes adapter's watch (k8s_status.Watcher) against the API stand-in (tests/k8s_sim):
it resumes when a watch request ends, lists again when the server says the version expired
(410 Gone, injected with a kmock reaction: the stand-in never expires versions), and keeps to
Atom's objects."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from control.dispatch.k8s_status import StatusCache, Watcher
from tests.k8s_sim.kubeapi import KubeApi

pytestmark = pytest.mark.k8s
NS = "atom-research"
MANAGED = {"app.kubernetes.io/managed-by": "atom"}


def job(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "agent", "image": "atom-agent:latest"}],
                }
            }
        },
    }


def until(check: Callable[[], Any], what: str, within: float = 20) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def batch(kube_client: Any) -> client.BatchV1Api:
    client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": NS}})
    return client.BatchV1Api(kube_client)


@pytest.fixture
def watched(kube_client: Any, batch: client.BatchV1Api) -> Iterator[tuple[Watcher, StatusCache]]:
    cache = StatusCache()
    watcher = Watcher(
        NS, cache, {"jobs": batch.list_namespaced_job}, kube_client.sanitize_for_serialization, timeout=1
    ).start()
    assert watcher.synced.wait(10)
    yield watcher, cache
    watcher.stop()


def watches(api: KubeApi) -> int:
    return sum(1 for r in list(api.handler) if r.params.get("watch", "").lower() in ("true", "1"))


def test_changes_arrive_and_the_watch_resumes_after_its_timeout(
    watched: tuple[Watcher, StatusCache], batch: client.BatchV1Api, kube_api: KubeApi
) -> None:
    _, cache = watched
    batch.create_namespaced_job(NS, job("one", MANAGED))
    assert until(lambda: cache.get("jobs", NS, "one")[0], "job one in the cache")
    until(lambda: watches(kube_api) >= 2, "a second watch request after the first timed out")
    batch.create_namespaced_job(NS, job("two", MANAGED))
    batch.delete_namespaced_job("one", NS)
    assert until(lambda: cache.get("jobs", NS, "two")[0], "job two, seen by the resumed watch")
    assert until(lambda: cache.get("jobs", NS, "one") == (None, True), "job one known deleted")


def test_objects_not_managed_by_atom_are_not_watched(
    watched: tuple[Watcher, StatusCache], batch: client.BatchV1Api
) -> None:
    _, cache = watched
    batch.create_namespaced_job(NS, job("theirs", {"app": "other"}))
    batch.create_namespaced_job(NS, job("ours", MANAGED))
    until(lambda: cache.get("jobs", NS, "ours")[0], "our job")
    assert cache.get("jobs", NS, "theirs") == (None, False)


def test_an_expired_version_lists_again(
    kube_client: Any, batch: client.BatchV1Api, kube_api: KubeApi
) -> None:
    decided: dict[int, bool] = {}

    def first_resumed_watch(request: Any) -> bool:  # the first watch that resumes from a version
        if id(request) not in decided:
            resumes = request.params.get("watch", "").lower() in ("true", "1") and request.params.get(
                "resourceVersion"
            )
            decided[id(request)] = bool(resumes) and not any(decided.values())
        return decided[id(request)]

    gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired"}
    event = {"type": "ERROR", "object": gone | {"message": "too old resource version"}}
    (
        kube_api.handler[first_resumed_watch] << json.dumps(event).encode() + b"\n"
    )  # one line, as a watch streams
    cache = StatusCache()
    watcher = Watcher(
        NS, cache, {"jobs": batch.list_namespaced_job}, kube_client.sanitize_for_serialization, timeout=1
    )
    lists = lambda: sum(  # noqa: E731
        1
        for r in list(kube_api.handler)
        if r.method == "GET" and not r.params.get("watch") and "jobs" in r.url.path
    )
    watcher.start()
    try:
        assert watcher.synced.wait(10)
        until(lambda: any(decided.values()), "the expired watch")
        until(lambda: lists() >= 2, "a second list after 410 Gone")
        batch.create_namespaced_job(NS, job("after", MANAGED))
        assert until(lambda: cache.get("jobs", NS, "after")[0], "a job created after the relist")
    finally:
        watcher.stop()
