"""What the Job controller and a kubelet would write, done by hand against the API stand-in
(tests/k8s_sim: kmock's server behind the official client): a Job's pod, then pod and Job
statuses as they report image pull errors, OOM kills, an unschedulable pod, success and failure.

The status tests use these instead of the kubelet simulator so that each state is exact; the
simulator (tests/k8s_sim) runs real containers for the conformance and end-to-end tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.k8s_sim.kubeapi import KubeApi


def stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HandKubelet:
    """Job controller and kubelet moves, one call each."""

    def __init__(self, api_client: Any) -> None:
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.serialize = api_client.sanitize_for_serialization

    def job(self, ns: str, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self.serialize(self.batch.read_namespaced_job(name, ns))
        return out

    def pod_for(self, ns: str, owner: dict[str, Any], suffix: str = "abcde") -> str:
        """Create the pod a Job or Deployment controller would (the template's labels and spec)."""
        template = owner["spec"]["template"]
        name = f"{owner['metadata']['name']}-{suffix}"
        labels = dict(template["metadata"]["labels"])
        if owner["kind"] == "Job":
            labels.update({"batch.kubernetes.io/job-name": owner["metadata"]["name"]})
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": owner["apiVersion"],
                        "kind": owner["kind"],
                        "name": owner["metadata"]["name"],
                        "uid": owner["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
        self.core.create_namespaced_pod(ns, pod)
        return name

    def pod_status(self, ns: str, pod: str, status: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(pod, ns, {"status": status})

    def job_status(self, ns: str, job: str, status: dict[str, Any]) -> None:
        self.batch.patch_namespaced_job_status(job, ns, {"status": status})

    # -- the states -------------------------------------------------------------------------------

    def running(self, ns: str, pod: str, image: str = "atom-agent:latest") -> None:
        self.pod_status(
            ns,
            pod,
            {
                "phase": "Running",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    {
                        "name": "agent",
                        "image": image,
                        "imageID": "",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": stamp()}},
                    }
                ],
            },
        )

    def waiting(self, ns: str, pod: str, reason: str, message: str, image: str = "atom-agent:latest") -> None:
        self.pod_status(
            ns,
            pod,
            {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    {
                        "name": "agent",
                        "image": image,
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": reason, "message": message}},
                    }
                ],
            },
        )

    def unschedulable(self, ns: str, pod: str, message: str) -> None:
        self.pod_status(
            ns,
            pod,
            {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
                ],
            },
        )

    def terminated(self, ns: str, pod: str, code: int, reason: str = "Error") -> None:
        self.pod_status(
            ns,
            pod,
            {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": "agent",
                        "image": "atom-agent:latest",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "terminated": {
                                "exitCode": code,
                                "reason": reason,
                                "startedAt": stamp(),
                                "finishedAt": stamp(),
                            }
                        },
                    }
                ],
            },
        )

    def job_done(self, ns: str, job: str, *, ok: bool, reason: str = "", message: str = "") -> None:
        cond = {"type": "Complete" if ok else "Failed", "status": "True", "lastTransitionTime": stamp()}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        self.job_status(ns, job, {"conditions": [cond], "succeeded" if ok else "failed": 1})


class Logs:
    """A log source for the stand-in's `pods/NAME/log` (what a kubelet serves)."""

    def __init__(self) -> None:
        self.text: dict[tuple[str, str], bytes] = {}

    def open_log(
        self, namespace: str, pod: str, container: str | None, previous: bool
    ) -> Callable[[], tuple[bytes, bool]]:
        return lambda: (self.text.get((namespace, pod), b""), True)

    def install(self, api: KubeApi) -> Logs:
        api.handler.log_source = self
        return self
