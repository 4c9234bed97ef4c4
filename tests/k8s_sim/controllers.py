"""The Job, ReplicaSet and Deployment controllers, as kube-controller-manager runs them (1.31+):

- Job: one pod at a time up to `completions` (parallelism honoured), `backoffLimit` retries with
  an exponential delay (`backoff` seconds doubled per failure; the real controller starts at 10 s),
  `activeDeadlineSeconds`, a pod that vanishes unfinished counted as failed; status active /
  ready / succeeded / failed / terminating / startTime / completionTime and the conditions
  SuccessCriteriaMet + Complete (CompletionsReached) or FailureTarget + Failed (BackoffLimitExceeded,
  DeadlineExceeded), the terminal one once no pod of the Job is still terminating;
  `ttlSecondsAfterFinished` (the TTL controller) deletes a finished Job with its pods.
- Deployment: a ReplicaSet per pod template (`{name}-{pod-template-hash}`), older ones scaled to
  0; status replicas / updatedReplicas / readyReplicas / availableReplicas / unavailableReplicas
  and the conditions Available and Progressing.
- ReplicaSet: keeps `replicas` live pods (a failed pod is replaced), status counts.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import time
from typing import Any

from tests.k8s_sim.client import Api, Obj, Store, meta
from tests.k8s_sim.runtime import stamp
from tests.k8s_sim.scheduler import terminal

_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _seconds_since(when: str) -> float:
    return time.time() - calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ"))


def _condition(kind: str, reason: str, message: str, status: str = "True") -> Obj:
    at = stamp()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": at,
        "lastTransitionTime": at,
    }


def _owner(obj: Obj, controller: bool = True) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta(obj)["name"],
        "uid": meta(obj)["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def _template_pod(owner: Obj, template: Obj, labels: dict[str, str]) -> Obj:
    tmeta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{meta(owner)['name']}-",
            "namespace": meta(owner)["namespace"],
            "labels": {**(tmeta.get("labels") or {}), **labels},
            **({"annotations": tmeta["annotations"]} if tmeta.get("annotations") else {}),
            "ownerReferences": [_owner(owner)],
        },
        "spec": template.get("spec") or {},
    }


class JobController:
    FINISHED = ("Complete", "Failed")

    def __init__(self, store: Store, api: Api, backoff: float = 0.5) -> None:
        self.store, self.api, self.backoff = store, api, backoff
        self.seen: dict[str, set[str]] = {}  # job uid -> pod uids ever seen
        self.ended: dict[str, dict[str, str]] = {}  # job uid -> {pod uid: Succeeded | Failed}
        self.failed_at: dict[str, float] = {}

    def sync(self, job: Obj) -> None:
        uid, ns, name = meta(job)["uid"], meta(job)["namespace"], meta(job)["name"]
        spec, status = job.get("spec") or {}, dict(job.get("status") or {})
        conditions = list(status.get("conditions") or [])
        pods = self.store.owned("pods", uid)
        seen, ended = self.seen.setdefault(uid, set()), self.ended.setdefault(uid, {})
        for pod in pods:
            seen.add(meta(pod)["uid"])
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") and meta(pod)["uid"] not in ended:
                ended[meta(pod)["uid"]] = phase
                if phase == "Failed":
                    self.failed_at[uid] = time.monotonic()
        present = {meta(p)["uid"] for p in pods}
        for gone in seen - present - set(ended):  # deleted before it finished: a failure
            ended[gone] = "Failed"
            self.failed_at[uid] = time.monotonic()
        active = [p for p in pods if not terminal(p) and not meta(p).get("deletionTimestamp")]
        terminating = [p for p in pods if not terminal(p) and meta(p).get("deletionTimestamp")]
        succeeded = sum(1 for v in ended.values() if v == "Succeeded")
        failed = sum(1 for v in ended.values() if v == "Failed")
        finished = next((c for c in conditions if c["type"] in self.FINISHED and c["status"] == "True"), None)
        target = next((c for c in conditions if c["type"] in ("FailureTarget", "SuccessCriteriaMet")), None)
        if finished is None and target is None:
            completions = spec.get("completions", 1)
            started = status.get("startTime") or stamp()
            deadline = spec.get("activeDeadlineSeconds")
            if succeeded >= completions:
                target = _condition(
                    "SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"
                )
            elif failed > spec.get("backoffLimit", 6):
                target = _condition(
                    "FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                )
            elif deadline is not None and _seconds_since(started) >= deadline:
                target = _condition(
                    "FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"
                )
            if target is not None:
                conditions.append(target)
            else:
                self._create_pods(job, len(active), succeeded, failed)
                status["startTime"] = started
        if target is not None:
            for pod in active:  # the Job has ended: its remaining pods are stopped
                self.api.delete("pods", ns, meta(pod)["name"])
            if finished is None and not active and not terminating:
                kind = "Complete" if target["type"] == "SuccessCriteriaMet" else "Failed"
                conditions.append({**target, "type": kind, "lastTransitionTime": stamp()})
                if kind == "Complete":
                    status["completionTime"] = stamp()
        status.update(
            conditions=conditions or None,
            active=len(active) or None,
            ready=sum(1 for p in active if _ready(p)),
            succeeded=succeeded or None,
            failed=failed or None,
            terminating=len(terminating),
            uncountedTerminatedPods={},
        )
        held = job.get("status") or {}
        desired = {k: v for k, v in status.items() if v is not None}
        if desired != held:  # a key the Job should no longer have is sent as null (removed)
            self.api.patch_status(
                "jobs", ns, name, {**{k: None for k in held if k not in desired}, **desired}
            )
        ttl = spec.get("ttlSecondsAfterFinished")
        if finished is not None and ttl is not None and _seconds_since(finished["lastTransitionTime"]) >= ttl:
            self.api.batch.delete_namespaced_job(name, ns, propagation_policy="Background")

    def _create_pods(self, job: Obj, active: int, succeeded: int, failed: int) -> None:
        spec = job.get("spec") or {}
        want = min(spec.get("parallelism", 1), spec.get("completions", 1) - succeeded) - active
        if want <= 0:
            return
        if failed and time.monotonic() < self.failed_at.get(meta(job)["uid"], 0) + self.backoff * 2 ** (
            failed - 1
        ):
            return
        labels = {
            "batch.kubernetes.io/controller-uid": meta(job)["uid"],
            "batch.kubernetes.io/job-name": meta(job)["name"],
            "controller-uid": meta(job)["uid"],
            "job-name": meta(job)["name"],
        }
        for _ in range(want):
            self.api.create(
                "pods", meta(job)["namespace"], _template_pod(job, spec.get("template") or {}, labels)
            )

    def forget(self, uid: str) -> None:
        self.seen.pop(uid, None)
        self.ended.pop(uid, None)
        self.failed_at.pop(uid, None)


def template_hash(template: Obj) -> str:
    digest = int(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest(), 16)
    return "".join(_SAFE[(digest >> (5 * i)) % len(_SAFE)] for i in range(10))


class ReplicaSetController:
    def __init__(self, store: Store, api: Api) -> None:
        self.store, self.api = store, api

    def sync(self, rs: Obj) -> None:
        spec = rs.get("spec") or {}
        ns = meta(rs)["namespace"]
        pods = self.store.owned("pods", meta(rs)["uid"])
        live = [p for p in pods if not terminal(p) and not meta(p).get("deletionTimestamp")]
        want = spec.get("replicas", 1)
        if len(live) < want:
            labels = ((spec.get("selector") or {}).get("matchLabels")) or {}
            for _ in range(want - len(live)):
                self.api.create("pods", ns, _template_pod(rs, spec.get("template") or {}, labels))
        for pod in sorted(live, key=_ready)[: max(len(live) - want, 0)]:
            self.api.delete("pods", ns, meta(pod)["name"])
        ready = sum(1 for p in live if _ready(p))
        status = {
            "replicas": len(live),
            "fullyLabeledReplicas": len(live),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta(rs).get("generation", 1),
        }
        if {k: (rs.get("status") or {}).get(k) for k in status} != status:
            self.api.patch_status("replicasets", ns, meta(rs)["name"], status)


class DeploymentController:
    def __init__(self, store: Store, api: Api) -> None:
        self.store, self.api = store, api
        self.progress: dict[str, float] = {}

    def sync(self, dep: Obj) -> None:
        spec, ns, name = dep.get("spec") or {}, meta(dep)["namespace"], meta(dep)["name"]
        replicas = spec.get("replicas", 1)
        template = spec.get("template") or {}
        pth = template_hash(template)
        rs_name = f"{name}-{pth}"
        owned = self.store.owned("replicasets", meta(dep)["uid"])
        current = next((r for r in owned if meta(r)["name"] == rs_name), None)
        if current is None:
            labels = {**((template.get("metadata") or {}).get("labels") or {}), "pod-template-hash": pth}
            match = {**((spec.get("selector") or {}).get("matchLabels") or {}), "pod-template-hash": pth}
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [_owner(dep)],
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": match},
                    "template": {
                        **template,
                        "metadata": {**(template.get("metadata") or {}), "labels": labels},
                    },
                },
            }
            current = self.api.create("replicasets", ns, rs)
            self.progress[meta(dep)["uid"]] = time.monotonic()
        elif (current.get("spec") or {}).get("replicas") != replicas:
            self.api.patch("replicasets", ns, rs_name, {"spec": {"replicas": replicas}})
        for old in owned:
            if meta(old)["name"] != rs_name and (old.get("spec") or {}).get("replicas", 1) != 0:
                self.api.patch("replicasets", ns, meta(old)["name"], {"spec": {"replicas": 0}})
        self._status(dep, owned, current)

    def _status(self, dep: Obj, owned: list[Obj], current: Obj) -> None:
        spec = dep.get("spec") or {}
        want = spec.get("replicas", 1)
        sets = [r for r in owned if meta(r)["name"] != meta(current)["name"]] + [current]
        total = sum((r.get("status") or {}).get("replicas", 0) for r in sets)
        ready = sum((r.get("status") or {}).get("readyReplicas", 0) for r in sets)
        updated = (current.get("status") or {}).get("replicas", 0)
        old = dict((c["type"], c) for c in (dep.get("status") or {}).get("conditions") or [])
        rs = meta(current)["name"]
        available = ready >= want
        conditions = [
            _condition("Available", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if available
            else _condition(
                "Available",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                "False",
            ),
        ]
        uid = meta(dep)["uid"]
        if available and updated == want:
            conditions.append(
                _condition(
                    "Progressing", "NewReplicaSetAvailable", f'ReplicaSet "{rs}" has successfully progressed.'
                )
            )
            self.progress[uid] = time.monotonic()
        elif time.monotonic() - self.progress.setdefault(uid, time.monotonic()) > spec.get(
            "progressDeadlineSeconds", 600
        ):
            conditions.append(
                _condition(
                    "Progressing",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rs}" has timed out progressing.',
                    "False",
                )
            )
        else:
            conditions.append(
                _condition("Progressing", "ReplicaSetUpdated", f'ReplicaSet "{rs}" is progressing.')
            )
        for c in conditions:  # a condition keeps its times while it says the same
            held = old.get(c["type"])
            if held and (held.get("status"), held.get("reason")) == (c["status"], c["reason"]):
                c.update(
                    lastTransitionTime=held.get("lastTransitionTime"), lastProbeTime=held.get("lastProbeTime")
                )
        status: dict[str, Any] = {
            "observedGeneration": meta(dep).get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(want - ready, 0),
            "conditions": conditions,
        }
        if status != (dep.get("status") or {}):
            self.api.patch_status("deployments", meta(dep)["namespace"], meta(dep)["name"], status)
