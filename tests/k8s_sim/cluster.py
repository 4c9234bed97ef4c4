"""A simulated cluster behind the stand-in API server: nodes, the scheduler, their kubelets and the
Job / ReplicaSet / Deployment controllers, driven by watches through the official client.

One loop thread does all the work (as each controller's single worker would), fed by an informer
thread per watched resource, the container waiters and a 0.2 s tick (deadlines, backoffs,
probes, unschedulable pods). `lose_node` plays what the control plane does when a node's machine
goes away (see its docstring).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import config

from tests.k8s_sim.client import WATCHED, Api, Informer, Obj, Store, meta, owner_uid
from tests.k8s_sim.controllers import DeploymentController, JobController, ReplicaSetController
from tests.k8s_sim.kubeapi import KubeApi
from tests.k8s_sim.kubelet import Kubelet
from tests.k8s_sim.runtime import Runtime, stamp
from tests.k8s_sim.scheduler import UNREACHABLE, Node, Scheduler

logger = logging.getLogger(__name__)
TICK = 0.2


def default_nodes(count: int = 3, gpus: int = 0) -> list[Node]:
    return [Node(f"sim-node-{i + 1}", gpus=gpus) for i in range(count)]


class SimCluster:
    def __init__(
        self,
        kube_api: KubeApi,
        kubeconfig: Path,
        runtime: Runtime,
        *,
        nodes: list[Node] | None = None,
        backoff: float = 0.5,
        crash_backoff: float = 0.5,
        pull_backoff: float = 0.5,
    ) -> None:
        self.kube_api = kube_api
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.store = Store()
        self.api = Api(self.api_client, self.store)
        self.runtime = runtime
        self.nodes = nodes or default_nodes()
        self.root = Path(tempfile.mkdtemp(prefix="k8s-sim-"))
        self.events: queue.Queue[Any] = queue.Queue()
        self.stopped = threading.Event()
        self.scheduler = Scheduler(self.nodes, self.store, self.api)
        self.kubelet = Kubelet(
            runtime, self.store, self.api, self.scheduler, self.events, self.root,
            crash_backoff=crash_backoff, pull_backoff=pull_backoff,
        )  # fmt: skip
        self.jobs = JobController(self.store, self.api, backoff=backoff)
        self.replicasets = ReplicaSetController(self.store, self.api)
        self.deployments = DeploymentController(self.store, self.api)
        self.informers = [Informer(self.api, r, self.events, self.stopped) for r in WATCHED]
        self.loop = threading.Thread(target=self._run, name="sim-loop", daemon=True)
        self.errors: list[str] = []

    # -- life ----------------------------------------------------------------------------------------

    def start(self) -> SimCluster:
        for node in self.nodes:
            self.api.core.create_node(node.manifest())
        self.kube_api.handler.log_source = self.kubelet
        for informer in self.informers:
            informer.start()
        for informer in self.informers:
            informer.synced.wait(10)
        self.loop.start()
        return self

    def close(self) -> None:
        self.stopped.set()
        self.events.put(None)
        self.loop.join(timeout=30)
        for informer in self.informers:
            informer.join(timeout=10)
        self.kubelet.close()
        if self.kube_api.handler.log_source is self.kubelet:
            self.kube_api.handler.log_source = None
        self.api_client.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SimCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, fn: Callable[[], Any], timeout: float = 30) -> Any:
        """Run `fn` on the loop thread (where the simulator's state lives) and return its result."""
        done: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self.events.put(("call", fn, done))
        ok, value = done.get(timeout=timeout)
        if not ok:
            raise value
        return value

    # -- the loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        last_tick = time.monotonic()
        while not self.stopped.is_set():
            try:
                item = self.events.get(timeout=TICK)
            except queue.Empty:
                item = ("tick",)
            if item is None:
                return
            try:
                self._handle(item)
                if time.monotonic() - last_tick >= TICK:
                    last_tick = time.monotonic()
                    self._tick()
            except Exception:  # noqa: BLE001 - a controller's error is logged and the loop goes on
                self.errors.append(traceback.format_exc())
                logger.exception("simulator: sync failed")

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "obj":
            _, resource, event, obj = item
            if self.store.apply(resource, obj, deleted=event == "DELETED"):
                self._react(resource, obj, event)
        elif kind == "exit":
            _, uid, container, how = item
            self.kubelet.exited(uid, container, how)
        elif kind == "call":
            _, fn, done = item
            try:
                done.put((True, fn()))
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                done.put((False, exc))

    def _react(self, resource: str, obj: Obj, event: str) -> None:
        ns, name = meta(obj).get("namespace", ""), meta(obj)["name"]
        if resource == "pods":
            if (
                not (obj.get("spec") or {}).get("nodeName")
                and event != "DELETED"
                and not meta(obj).get("deletionTimestamp")
            ):
                self.scheduler.schedule(self.store.get("pods", ns, name) or obj)
            self.kubelet.sync(ns, name)
            self._sync_owner(obj)
        elif resource == "jobs":
            if event == "DELETED":
                self.jobs.forget(meta(obj)["uid"])
            elif (job := self.store.get("jobs", ns, name)) is not None:
                self.jobs.sync(job)
        elif resource == "replicasets":
            if (rs := self.store.get("replicasets", ns, name)) is not None:
                self.replicasets.sync(rs)
            self._sync_owner(obj)
        elif resource == "deployments" and (dep := self.store.get("deployments", ns, name)) is not None:
            self.deployments.sync(dep)

    def _sync_owner(self, obj: Obj) -> None:
        uid = owner_uid(obj)
        if uid is None:
            return
        for resource, controller in (
            ("jobs", self.jobs),
            ("replicasets", self.replicasets),
            ("deployments", self.deployments),
        ):
            owner = next((o for o in self.store.all(resource) if meta(o)["uid"] == uid), None)
            if owner is not None:
                controller.sync(owner)  # type: ignore[attr-defined]

    def _tick(self) -> None:
        for pod in self.scheduler.pending():
            self.scheduler.schedule(pod)
        self.kubelet.tick()
        for job in self.store.all("jobs"):
            self.jobs.sync(job)
        for dep in self.store.all("deployments"):
            self.deployments.sync(dep)

    # -- the control plane's side of a lost node ------------------------------------------------------

    def lose_node(self, name: str) -> None:
        """The machine under node `name` is gone, as Kubernetes 1.31 handles it, without its waits:
        the containers die with it and its kubelet reports nothing more; the node lifecycle
        controller sets the Node's Ready condition to Unknown (NodeStatusUnknown), taints it
        `node.kubernetes.io/unreachable:NoExecute` and marks its pods not Ready; the taint eviction
        controller (at once, not after the default 300 s toleration) adds the DisruptionTarget
        condition (DeletionByTaintManager) and deletes each pod, which stays Terminating with no
        kubelet to end it; the cloud node controller deletes the Node; PodGC then sets each such pod
        Failed with DisruptionTarget DeletionByPodGC and force-deletes it. The pods' owners see a
        failed pod (a Job counts it against backoffLimit; a ReplicaSet replaces it elsewhere)."""
        self.call(lambda: self._lose(name))

    def _lose(self, name: str) -> None:
        node = self.scheduler.node(name)
        assert node is not None, name
        node.lost = True
        self.kubelet.lose(name)
        taints = [
            {"key": UNREACHABLE, "effect": effect, "timeAdded": stamp()}
            for effect in ("NoSchedule", "NoExecute")
        ]
        self.api.core.patch_node(name, {"spec": {"taints": taints}})
        self.api.core.patch_node_status(name, {"status": {"conditions": [node.ready_condition()]}})
        pods = [p for p in self.store.all("pods") if (p.get("spec") or {}).get("nodeName") == name]
        for pod in pods:
            ns, pod_name = meta(pod)["namespace"], meta(pod)["name"]
            conditions = [
                c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "Ready"
            ]
            conditions.append({"type": "Ready", "status": "False", "lastTransitionTime": stamp()})
            evicted = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": stamp(),
            }
            self.api.patch_status("pods", ns, pod_name, {"conditions": [*conditions, evicted]})
            self.api.delete("pods", ns, pod_name)
        self.api.core.delete_node(name)
        for pod in pods:
            ns, pod_name = meta(pod)["namespace"], meta(pod)["name"]
            held = self.store.get("pods", ns, pod_name)
            if held is None or meta(held)["uid"] != meta(pod)["uid"]:
                continue
            conditions = [
                c
                for c in (held.get("status") or {}).get("conditions") or []
                if c.get("type") != "DisruptionTarget"
            ]
            gc = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": stamp(),
            }
            if (held.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                self.api.patch_status(
                    "pods", ns, pod_name, {"phase": "Failed", "conditions": [*conditions, gc]}
                )
            self.api.delete("pods", ns, pod_name, grace=0)
        with contextlib.suppress(ValueError):
            self.nodes.remove(node)
