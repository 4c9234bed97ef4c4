"""The kubelet of every simulated node: runs a bound pod's container on the runtime and reports
the pod's status as a kubelet does (phase, conditions, containerStatuses with waiting reasons
ErrImagePull / ImagePullBackOff / CreateContainerConfigError / CrashLoopBackOff and terminated
reasons Completed / Error / OOMKilled / StartError), honours restartPolicy, readiness and liveness
probes (httpGet, tcpSocket) and graceful deletion (SIGTERM, SIGKILL after the grace period, then
the pod's terminal status and its removal), and serves `pods/NAME/log`.

One container per pod (the first); init containers and sidecars are not run.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kmock import KubernetesError

from tests.k8s_sim import podspec
from tests.k8s_sim.client import Api, Obj, Store, meta
from tests.k8s_sim.podstatus import PodRun, check_probe, first_container, pod_status
from tests.k8s_sim.runtime import Container, ContainerSpec, Exit, Runtime, StartFailed, stamp
from tests.k8s_sim.scheduler import Scheduler, terminal

logger = logging.getLogger(__name__)


class Kubelet:
    def __init__(
        self,
        runtime: Runtime,
        store: Store,
        api: Api,
        scheduler: Scheduler,
        events: queue.Queue[Any],
        root: Path,
        *,
        crash_backoff: float = 0.5,
        pull_backoff: float = 0.5,
        probe_period_cap: float = 1.0,
    ) -> None:
        self.runtime, self.store, self.api, self.scheduler, self.events = (
            runtime,
            store,
            api,
            scheduler,
            events,
        )
        self.root = root
        self.crash_backoff, self.pull_backoff, self.probe_period_cap = (
            crash_backoff,
            pull_backoff,
            probe_period_cap,
        )
        self.runs: dict[tuple[str, str], PodRun] = {}
        self.lock = threading.Lock()
        self.reapers: list[threading.Thread] = []

    # -- the loop's entry points -------------------------------------------------------------------

    def sync(self, namespace: str, name: str) -> None:
        pod = self.store.get("pods", namespace, name)
        run = self.runs.get((namespace, name))
        if run is not None and (pod is None or meta(pod)["uid"] != run.uid):
            self._forget(run, grace=2)  # removed from the API (force-deleted, or its node was lost)
            run = None
        if pod is None:
            return
        node = self.scheduler.node((pod.get("spec") or {}).get("nodeName"))
        if node is None or node.lost:
            return
        if run is None:
            if terminal(pod):
                if meta(pod).get("deletionTimestamp"):
                    self.api.delete("pods", namespace, name, grace=0)
                return
            run = PodRun(
                meta(pod)["uid"],
                namespace,
                name,
                node.name,
                self.root / f"{namespace}_{name}_{meta(pod)['uid'][:8]}",
            )
            with self.lock:
                self.runs[(namespace, name)] = run
        if run.lost:
            return
        if meta(pod).get("deletionTimestamp"):
            self._terminate(pod, run)
            return
        self._advance(pod, run)
        self._report(pod, run)

    def exited(self, uid: str, container: Container, how: Exit) -> None:
        run = next((r for r in self.runs.values() if r.uid == uid), None)
        if run is None or run.running is not container:
            return
        run.running, run.exit, run.ready = None, how, False
        run.next_try = time.monotonic() + self.crash_backoff * 2 ** min(run.restarts, 5)
        self.sync(run.namespace, run.name)

    def tick(self) -> None:
        for run in list(self.runs.values()):
            if not run.lost and (run.running is not None or run.next_try):
                self.sync(run.namespace, run.name)

    # -- a pod's life ------------------------------------------------------------------------------

    def _advance(self, pod: Obj, run: PodRun) -> None:
        now = time.monotonic()
        policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
        container = first_container(pod)
        if run.running is not None:
            self._probe(pod, run, container)
            return
        if run.exit is not None:
            if policy == "Never" or (policy == "OnFailure" and run.exit.code == 0):
                run.next_try = 0.0
                return
            if now < run.next_try:
                delay = self.crash_backoff * 2 ** min(run.restarts, 5)
                run.waiting = (
                    "CrashLoopBackOff",
                    f"back-off {delay:g}s restarting failed container={container['name']} "
                    f"pod={run.name}_{run.namespace}({run.uid})",
                )
                return
        if now < run.next_try:
            return
        image = container.get("image", "")
        if not self.runtime.has_image(image):
            self._pull_failed(
                run,
                image,
                container.get("imagePullPolicy")
                or (
                    "Always"
                    if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
                    else "IfNotPresent"
                ),
            )
            return
        try:
            spec = self._container_spec(pod, run, container)
        except (podspec.ConfigError, OSError) as exc:
            run.waiting, run.next_try = ("CreateContainerConfigError", str(exc)), now + 1
            return
        if run.exit is not None:  # a restart: the ended attempt becomes lastState
            run.last_exit, run.exit = run.exit, None
            run.restarts += 1
        try:
            started = self.runtime.start(spec)
        except StartFailed as exc:
            at = stamp()
            run.exit = Exit(128, "StartError", at, at, str(exc))
            run.next_try = now + self.crash_backoff * 2 ** min(run.restarts, 5)
            return
        run.containers.append(started)
        run.running, run.waiting, run.pulls, run.next_try, run.probes = started, ("", ""), 0, 0.0, {}
        run.ready = "readinessProbe" not in container
        uid, events = run.uid, self.events
        threading.Thread(
            target=lambda: events.put(("exit", uid, started, started.wait())), daemon=True
        ).start()

    def _pull_failed(self, run: PodRun, image: str, pull_policy: str) -> None:
        now = time.monotonic()
        run.pulls += 1
        if pull_policy == "Never":
            run.waiting = (
                "ErrImageNeverPull",
                f'Container image "{image}" is not present with pull policy of Never',
            )
        elif run.waiting[0] == "ErrImagePull":
            run.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
        else:
            run.waiting = (
                "ErrImagePull",
                f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
                "pull access denied, repository does not exist or may require authorization (the "
                "simulated nodes reach no "
                f"registry: only images on their {self.runtime.kind} runtime run)",
            )
        run.next_try = now + self.pull_backoff * 2 ** min(run.pulls // 2, 4)

    def _container_spec(self, pod: Obj, run: PodRun, container: Obj) -> ContainerSpec:
        ns = run.namespace

        def read(kind: str, name: str) -> Obj | None:
            return self.api.read(kind, ns, name)

        env = podspec.container_env(pod, container, read)
        mounts = podspec.mounts(pod, container, run.pod_dir, read)
        limits = (container.get("resources") or {}).get("limits") or {}
        memory = int(podspec.quantity(limits["memory"])) if "memory" in limits else None
        cpu = int(podspec.quantity(limits["cpu"]) * 1e9) if "cpu" in limits else None
        gpus = int(podspec.quantity(limits.get(podspec.GPU, 0)))
        security = {
            **((pod.get("spec") or {}).get("securityContext") or {}),
            **(container.get("securityContext") or {}),
        }
        user = str(security["runAsUser"]) if "runAsUser" in security else None
        if user and "runAsGroup" in security:
            user += f":{security['runAsGroup']}"
        return ContainerSpec(
            name=f"k8s_{container['name']}_{run.name}_{ns}_{run.uid[:8]}_{len(run.containers)}",
            image=container["image"],
            command=[podspec.expand(a, env) for a in container.get("command") or []],
            args=[podspec.expand(a, env) for a in container.get("args") or []],
            env=env,
            working_dir=container.get("workingDir"),
            mounts=mounts,
            memory_bytes=memory,
            nano_cpus=cpu,
            gpus=gpus,
            user=user,
            labels={
                "io.kubernetes.pod.name": run.name,
                "io.kubernetes.pod.namespace": ns,
                "io.kubernetes.pod.uid": run.uid,
            },
        )

    def _probe(self, pod: Obj, run: PodRun, container: Obj) -> None:
        now = time.monotonic()
        for kind in ("readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if not probe:
                continue
            state = run.probes.setdefault(
                kind, {"next": now + probe.get("initialDelaySeconds", 0), "ok": 0, "fail": 0}
            )
            if now < state["next"]:
                continue
            state["next"] = now + min(probe.get("periodSeconds", 10), self.probe_period_cap)
            ok = check_probe(probe, container)
            state["ok"], state["fail"] = (state["ok"] + 1, 0) if ok else (0, state["fail"] + 1)
            if kind == "readinessProbe":
                if ok and state["ok"] >= probe.get("successThreshold", 1):
                    run.ready = True
                elif not ok and state["fail"] >= probe.get("failureThreshold", 3):
                    run.ready = False
            elif not ok and state["fail"] >= probe.get("failureThreshold", 3) and run.running is not None:
                doomed, grace = run.running, (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
                state["fail"] = -(10**9)  # once: the kill is under way
                threading.Thread(target=doomed.stop, args=(grace,), daemon=True).start()

    def _terminate(self, pod: Obj, run: PodRun) -> None:
        if run.running is not None:
            if not run.stopping:
                run.stopping = True
                grace = meta(pod).get("deletionGracePeriodSeconds")
                grace = (
                    (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
                    if grace is None
                    else grace
                )
                doomed = run.running
                threading.Thread(target=lambda: doomed.stop(grace), daemon=True).start()
            self._report(pod, run)
            return
        run.next_try = 0.0
        if run.exit is None:
            at = stamp()
            run.exit = Exit(
                137,
                "ContainerStatusUnknown",
                at,
                at,
                "The container could not be located when the pod was terminated",
            )
        self._report(pod, run, final=True)
        self.api.delete("pods", run.namespace, run.name, grace=0)
        self._forget(run, grace=0)

    # -- status ----------------------------------------------------------------------------------

    def _report(self, pod: Obj, run: PodRun, final: bool = False) -> None:
        status = pod_status(pod, run, final)
        if status != run.reported:
            self.api.patch_status("pods", run.namespace, run.name, status)
            run.reported = status

    # -- logs and clean-up -----------------------------------------------------------------------

    def open_log(
        self, namespace: str, pod: str, container: str | None, previous: bool
    ) -> Callable[[], tuple[bytes, bool]]:
        with self.lock:
            run = self.runs.get((namespace, pod))
        obj = self.store.get("pods", namespace, pod) or {}
        name = first_container(obj).get("name", container or "")
        if container and obj and container != name:
            raise KubernetesError(
                status=400, reason="BadRequest", message=f"container {container} is not valid for pod {pod}"
            )
        if run is None or not run.containers:
            waiting = run.waiting[0] if run else "ContainerCreating"
            said = (
                "trying and failing to pull image"
                if waiting in ("ErrImagePull", "ImagePullBackOff")
                else waiting
            )
            raise KubernetesError(
                status=400,
                reason="BadRequest",
                message=f'container "{name}" in pod "{pod}" is waiting to start: {said}',
            )
        if previous and len(run.containers) < 2:
            raise KubernetesError(
                status=400,
                reason="BadRequest",
                message=f'previous terminated container "{name}" in pod "{pod}" not found',
            )
        chosen = run.containers[-2] if previous else run.containers[-1]
        return lambda: (chosen.logs(), chosen.exited())

    def lose(self, node: str) -> None:
        """The node's machine is gone: its containers die at once and nobody reports for them."""
        for run in list(self.runs.values()):
            if run.node == node:
                run.lost = True
                for c in run.containers:
                    threading.Thread(target=lambda c=c: c.stop(0), daemon=True).start()

    def _forget(self, run: PodRun, grace: float) -> None:
        with self.lock:
            if self.runs.get((run.namespace, run.name)) is run:
                del self.runs[(run.namespace, run.name)]
        containers, running, pod_dir = list(run.containers), run.running, run.pod_dir

        def reap() -> None:
            if running is not None:
                running.stop(grace)
            for c in containers:
                c.remove()
            shutil.rmtree(pod_dir, ignore_errors=True)

        thread = threading.Thread(target=reap, name=f"sim-reap-{run.name}", daemon=True)
        thread.start()
        self.reapers.append(thread)

    def close(self) -> None:
        for run in list(self.runs.values()):
            self._forget(run, grace=0)
        for thread in self.reapers:
            thread.join(timeout=30)
        with contextlib.suppress(Exception):
            self.runtime.close()
