"""What the Kubernetes adapter sees of its Jobs, Deployments and pods: a watch-fed cache, and the
mapping from their status to `Observed` (pure functions of the objects as the API returns them).

One `Watcher` per namespace runs a watch on Jobs, Deployments and pods labelled
`app.kubernetes.io/managed-by=atom`, each in a thread, and feeds a `StatusCache` that `describe`
reads without calling the API. A watch that ends (its timeout) resumes from the last
resourceVersion; one that expired (410 Gone) or failed lists again and starts over. Objects are
matched by their labels here as well, so a server that ignored the selector could not mix runs.

How states read (each a line a person can act on):
- Job condition Complete -> ended, exit 0; Failed -> ended with the pod's exit code and why
  (`out of memory (limit N MiB)`, `the agent exited with code 3`, the deadline, the backoff limit).
- A pod that cannot pull its image (ErrImagePull, ImagePullBackOff, InvalidImageName) -> ended:
  `image X could not be pulled: ...` (the adapter then deletes the Job: nothing keeps retrying).
- A pod the control plane took away (its DisruptionTarget condition) -> how it ended names it:
  `node X was lost (DeletionByTaintManager): ...` (PodGC's DeletionByPodGC likewise), or
  `the pod was taken off node X (TerminationByKubelet): ...` for an eviction or a preemption.
- A pod the scheduler cannot place -> alive, waiting: `waiting for a node: 0/3 nodes ...` (the
  PodScheduled condition's message); one whose containers are being made (an image pull) ->
  alive, waiting: `waiting for the pod to start (ContainerCreating)`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from control.dispatch.base import Observed

logger = logging.getLogger(__name__)
MANAGED = "app.kubernetes.io/managed-by=atom"
PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_ERRORS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
Obj = dict[str, Any]


def _mib(quantity: str | None) -> int:
    if not quantity:
        return 0
    from kubernetes.utils import parse_quantity  # deferred: the client loads only where it is used

    return int(parse_quantity(quantity) / (1024 * 1024))


def _statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def _limit_mib(pod: Obj, container: str) -> int:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == container:
            return _mib(((c.get("resources") or {}).get("limits") or {}).get("memory"))
    return 0


def _image(pod: Obj, container: str) -> str:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == container:
            return str(c.get("image", "?"))
    return "?"


def _created(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def pull_failure(pod: Obj) -> str:
    """`image X could not be pulled: ...` when a container of `pod` cannot get its image, else ""."""
    for cs in _statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_ERRORS:
            image = cs.get("image") or _image(pod, str(cs.get("name")))
            why = " ".join(str(waiting.get("message") or waiting["reason"]).split())[:300]
            return f"image {image} could not be pulled: {why}"
    return ""


def config_failure(pod: Obj) -> str:
    for cs in _statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in CONFIG_ERRORS:
            why = " ".join(str(waiting.get("message") or "").split())[:300]
            return f"the container could not be created ({waiting['reason']}): {why}"
    return ""


def unschedulable(pod: Obj) -> str:
    """The scheduler's message for a pod it cannot place (`0/3 nodes are available: ...`), else ""."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (cond.get("type"), cond.get("status"), cond.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            return " ".join(str(cond.get("message") or "no node fits the pod").split())[:300]
    return ""


LOST = ("DeletionByTaintManager", "DeletionByPodGC")
"""DisruptionTarget reasons of a pod whose node went away: a NoExecute taint (unreachable, not
ready) had it deleted, or PodGC failed it because its node no longer exists."""


def disruption(pod: Obj) -> str:
    """Why the control plane took `pod` away (its DisruptionTarget condition), else "".

    Current Kubernetes leaves `status.reason` empty for such pods (a lost node's pods are deleted
    by the taint manager, then failed by PodGC): `node X was lost (DeletionByTaintManager): ...`;
    an eviction by the kubelet or a preemption names the node and Kubernetes' reason."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") != "DisruptionTarget" or cond.get("status") != "True":
            continue
        reason = str(cond.get("reason") or "unknown")
        node = str((pod.get("spec") or {}).get("nodeName") or "?")
        why = " ".join(str(cond.get("message") or "").split())[:300]
        if reason in LOST:
            head = f"node {node} was lost ({reason})"
        else:
            head = f"the pod was taken off node {node} ({reason})"
        return head + (f": {why}" if why else "")
    return ""


def termination(pod: Obj, container: str) -> tuple[int | None, str]:
    """(exit code, how it ended) of `container` in `pod`, from its terminated (or last) state;
    for a pod the control plane took away before its container reported an end, why it did."""
    for cs in _statuses(pod):
        if cs.get("name") != container:
            continue
        done = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if not done:
            return None, disruption(pod)
        code = done.get("exitCode")
        code = int(code) if code is not None else None
        if done.get("reason") == "OOMKilled":
            limit = _limit_mib(pod, container)
            return code, f"out of memory (limit {limit} MiB): the agent process was killed"
        if code is not None and code >= 128 and code - 128 in (9, 15):
            return code, f"the agent process was ended by {'SIGKILL (killed)' if code == 137 else 'SIGTERM'}"
        return code, f"the agent exited with code {code}"
    if disruption(pod):
        return None, disruption(pod)
    status = pod.get("status") or {}
    if status.get("reason"):  # the pod itself failed: Evicted, NodeLost, DeadlineExceeded ...
        why = " ".join(str(status.get("message") or "").split())[:300]
        return None, f"the pod {status['reason']}" + (f": {why}" if why else "")
    return None, ""


def last_pod(pods: Iterable[Obj]) -> Obj | None:
    """The newest pod that a kubelet has reported on (else the newest): a pod a controller made
    while its Job was being deleted, and that never ran, says nothing of how the run ended."""
    ordered = sorted(pods, key=lambda p: (bool(_statuses(p)), _created(p)))
    return ordered[-1] if ordered else None


def observe_run(job: Obj | None, pods: list[Obj], *, container: str = "agent", name: str = "") -> Observed:
    """A run's state from its Job and the Job's pods."""
    if job is None:
        pod = last_pod(pods)
        if pod is not None:
            code, how = termination(pod, container)
            if how:
                return Observed(alive=False, exit_code=code, detail=f"the Job {name} is gone; {how}")
        return Observed(alive=False, detail=f"the Job {name} is gone from the cluster")
    name = job["metadata"]["name"]
    conds = {
        c.get("type"): c
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }
    pod = last_pod(pods)
    if "Complete" in conds or "SuccessCriteriaMet" in conds:
        return Observed(alive=False, exit_code=0, detail=f"the Job {name} succeeded")
    failed = conds.get("Failed") or conds.get("FailureTarget")
    if failed is not None:
        code, how = termination(pod, container) if pod is not None else (None, "")
        reason = failed.get("reason") or ""
        if reason == "DeadlineExceeded":
            deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
            how = f"the run passed its deadline of {deadline} s (environmentConf.timeoutSeconds)"
        elif not how:
            how = " ".join(str(failed.get("message") or reason or "failed").split())[:300]
        return Observed(alive=False, exit_code=code if code is not None else 1, detail=how)
    if pod is None:
        return Observed(alive=True, waiting="waiting for the Job's pod to be created")
    pulled = pull_failure(pod) or config_failure(pod)
    if pulled:  # the kubelet's own verdict: the agent never ran, and never will
        return Observed(alive=False, exit_code=None, detail=pulled, certain=True)
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    if phase == "Pending":
        return Observed(alive=True, waiting=pending_reason(pod))
    return Observed(alive=True)


def pending_reason(pod: Obj) -> str:
    """Why a pending pod has not started: no node fits it, or its containers are being made
    (an image pull can take minutes: the run waits, it is not silent)."""
    why = unschedulable(pod)
    if why:
        return f"waiting for a node: {why}"
    scheduled = any(
        c.get("type") == "PodScheduled" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )
    if not scheduled:
        return "waiting for the pod to be scheduled"
    reasons = [((cs.get("state") or {}).get("waiting") or {}).get("reason") for cs in _statuses(pod)]
    reason = next((r for r in reasons if r), "")
    return "waiting for the pod to start" + (f" ({reason})" if reason else "")


def observe_service(
    deployment: Obj | None, pods: list[Obj], *, container: str = "agent", name: str = ""
) -> Observed:
    """An inference service's state from its Deployment and pods."""
    if deployment is None:
        return Observed(alive=False, detail=f"the Deployment {name} is gone from the cluster")
    for pod in sorted(pods, key=_created):
        pulled = pull_failure(pod) or config_failure(pod)
        if pulled:
            return Observed(alive=False, detail=pulled, certain=True)
        for cs in _statuses(pod):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff":
                code, how = termination(pod, container)
                return Observed(alive=False, exit_code=code, detail=f"the service keeps crashing: {how}")
    waits = [unschedulable(p) for p in pods if (p.get("status") or {}).get("phase", "Pending") == "Pending"]
    waits = [w for w in waits if w]
    return Observed(alive=True, waiting=f"waiting for a node: {waits[0]}" if waits else "")


def matches(obj: Obj, selector: Mapping[str, str]) -> bool:
    got = (obj.get("metadata") or {}).get("labels") or {}
    return all(got.get(k) == v for k, v in selector.items())


class StatusCache:
    """The latest version of every watched object, and the last one of those deleted."""

    KINDS = ("jobs", "deployments", "pods")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[tuple[str, str, str], Obj] = {}
        self._gone: dict[tuple[str, str, str], Obj] = {}
        self.changed = threading.Condition(self._lock)

    def apply(self, kind: str, event: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        with self._lock:
            if event == "DELETED":
                self._live.pop(key, None)
                self._gone[key] = obj
                while len(self._gone) > 10_000:
                    self._gone.pop(next(iter(self._gone)))
            else:
                old = self._live.get(key)
                if old is not None and _rv(old) > _rv(obj):
                    return  # an older version arriving late (a relist racing a watch)
                self._live[key] = obj
                self._gone.pop(key, None)
            self.changed.notify_all()

    def replace(self, kind: str, namespace: str, objs: list[Obj], version: str = "") -> None:
        """A fresh list of `kind` in `namespace` (at resourceVersion `version`): what it lacks was
        deleted meanwhile, unless it is newer than the list (created since, seen by a direct read)."""
        names = {str(o["metadata"]["name"]) for o in objs}
        listed = _rv({"metadata": {"resourceVersion": version}})
        with self._lock:
            for key in [k for k in self._live if k[0] == kind and k[1] == namespace and k[2] not in names]:
                if not listed or _rv(self._live[key]) <= listed:
                    self._gone[key] = self._live.pop(key)
        for obj in objs:
            self.apply(kind, "ADDED", obj)

    def get(self, kind: str, namespace: str, name: str) -> tuple[Obj | None, bool]:
        """(the object, whether it is known to be deleted)."""
        with self._lock:
            key = (kind, namespace, name)
            if key in self._live:
                return self._live[key], False
            return None, key in self._gone

    def select(
        self, kind: str, namespace: str, selector: Mapping[str, str], *, gone: bool = False
    ) -> list[Obj]:
        with self._lock:
            pool = self._gone if gone else self._live
            return [
                o for (k, ns, _), o in pool.items() if k == kind and ns == namespace and matches(o, selector)
            ]


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:  # opaque versions (a real server's are strings): keep the newest seen
        return 0


Lister = Callable[..., Any]


class Watcher:
    """Watches one namespace's Jobs, Deployments and pods (managed by Atom) into a `StatusCache`.

    Args:
        listers: `{"jobs": batch.list_namespaced_job, ...}` (the official client's list functions).
        serialize: turns a client model into the API's dict (`ApiClient.sanitize_for_serialization`).
        timeout: seconds each watch request lasts before it resumes (server side).
    """

    def __init__(
        self,
        namespace: str,
        cache: StatusCache,
        listers: Mapping[str, Lister],
        serialize: Callable[[Any], Obj],
        *,
        timeout: int = 60,
    ) -> None:
        self.namespace = namespace
        self.cache = cache
        self.listers = dict(listers)
        self.serialize = serialize
        self.timeout = timeout
        self.synced = threading.Event()
        self._synced: set[str] = set()
        self._stop = threading.Event()
        self._watches: list[Any] = []
        self._threads = [
            threading.Thread(
                target=self._run, args=(kind,), name=f"k8s-watch-{namespace}-{kind}", daemon=True
            )
            for kind in self.listers
        ]

    def start(self) -> Watcher:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for w in list(self._watches):
            w.stop()
            resp = getattr(w, "_resp", None)
            if resp is not None:
                try:
                    resp.shutdown()  # wakes a read blocked on the socket
                except Exception:  # noqa: BLE001 - it may be closing by itself
                    logger.debug("closing a watch of %s failed", self.namespace, exc_info=True)
        for thread in self._threads:
            thread.join(timeout=5)

    def _relist(self, kind: str) -> str:
        listed = self.listers[kind](self.namespace, label_selector=MANAGED)
        version = str(listed.metadata.resource_version or "")
        self.cache.replace(kind, self.namespace, [self.serialize(o) for o in listed.items or []], version)
        self._synced.add(kind)
        if self._synced >= set(self.listers):
            self.synced.set()
        return version

    def _run(self, kind: str) -> None:
        from kubernetes import watch  # deferred: the client loads only where it is used
        from kubernetes.client import ApiException

        version = ""
        delay = 0.2
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist(kind)
                w = watch.Watch()
                self._watches.append(w)
                try:
                    for event in w.stream(
                        self.listers[kind],
                        self.namespace,
                        label_selector=MANAGED,
                        resource_version=version,
                        timeout_seconds=self.timeout,
                        allow_watch_bookmarks=True,
                        _request_timeout=(5.0, self.timeout + 30.0),
                    ):
                        raw = event["raw_object"]
                        version = str((raw.get("metadata") or {}).get("resourceVersion") or version)
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            self.cache.apply(kind, event["type"], raw)
                        if self._stop.is_set():
                            break
                finally:
                    self._watches.remove(w)
                delay = 0.2
            except ApiException as exc:
                if exc.status == 410:  # expired: list again, then watch from there
                    version = ""
                    continue
                if self._stop.is_set():
                    return
                logger.warning("watch of %s in %s failed (%s); retrying", kind, self.namespace, exc.status)
                version = ""
                self._stop.wait(delay)
                delay = min(delay * 2, 10)
            except Exception as exc:  # noqa: BLE001 - a dropped connection: start over
                if self._stop.is_set():
                    return
                logger.debug("watch of %s in %s ended: %s", kind, self.namespace, exc)
                version = ""
                self._stop.wait(delay)
                delay = min(delay * 2, 10)
