"""The Kubernetes adapter (KUBERNETES pattern): a run is a Job, a service a Deployment + Service.

Built lazily (`k8s_config`): nothing talks to the cluster until a run or service needs it. Then:

- start: the space's namespace (created when missing), the token's Secret, the Job (or the
  Deployment, then its Service and HPA), the Secret's ownerReferences patched to its owner's uid;
  a start that fails deletes what it had created, so no orphan Secret or Job is left.
- describe: read from a watch-fed cache (`k8s_status`), with a direct read for an object the watch
  has not delivered yet; a pod that cannot pull its image ends the run and its Job is deleted.
- logs: from the pod (`read_namespaced_pod_log`), followed while it runs so that what it printed
  last survives its deletion.
- stop: the Job (or Deployment) deleted with propagationPolicy Background, then its pods with the
  caller's grace; stopping what is gone is fine.

External ids: `job/{namespace}/{name}` and `deployment/{namespace}/{name}`. Manifests:
`k8s_manifests`; API calls run in worker threads (the official client is synchronous).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from control.dispatch import k8s_config
from control.dispatch import k8s_manifests as km
from control.dispatch.base import Adapter, Admission, Infeasible, Observed, RunDescription, shortfall
from control.dispatch.k8s_api import KubeObjects, api_error
from control.dispatch.k8s_logs import PodLogs
from control.dispatch.k8s_status import StatusCache, Watcher, observe_run, observe_service
from control.errors import DispatchFailed

if TYPE_CHECKING:
    from control.settings import Settings

logger = logging.getLogger(__name__)


def parse_id(external_id: str) -> tuple[str, str, str]:
    kind, _, rest = external_id.partition("/")
    ns, _, name = rest.partition("/")
    if kind not in ("job", "deployment") or not ns or not name:
        raise DispatchFailed(
            f"{external_id!r} is not a Kubernetes adapter id (job/NS/NAME or deployment/NS/NAME)"
        )
    return kind, ns, name


class KubernetesAdapter(Adapter):
    """Agents as Kubernetes Jobs, services as Deployments.

    Args:
        settings: control's settings (`k8s_*`; the kubeconfig is loaded at first use).
        environ: the environment to find a kubeconfig or the in-cluster account in (default os.environ).
        watch_timeout: seconds each watch request lasts before it resumes.
    """

    name = "kubernetes"

    def __init__(
        self, settings: Settings, *, environ: Mapping[str, str] | None = None, watch_timeout: int = 60
    ) -> None:
        self.settings = settings
        self.environ = environ
        self.options = km.K8sOptions.from_settings(settings)
        self.watch_timeout = watch_timeout
        self.cache = StatusCache()
        self._client: Any = None
        self._lock = threading.RLock()
        self.objects = KubeObjects(self.apis)
        self._watchers: dict[str, Watcher] = {}
        self._verdicts: dict[str, Observed] = {}
        self._pod_logs: PodLogs | None = None

    # -- the client -----------------------------------------------------------------------------

    def client(self) -> Any:
        """The ApiClient, loaded the first time (raises DispatchFailed naming the kubeconfig)."""
        with self._lock:
            if self._client is None:
                try:
                    self._client = k8s_config.load(self.settings, self.environ)
                except DispatchFailed as exc:
                    raise DispatchFailed(f"{self.name} adapter: {exc}") from None
                self._pod_logs = PodLogs(self._core())
            return self._client

    def _core(self) -> Any:
        from kubernetes.client import CoreV1Api

        return CoreV1Api(self._client)

    def apis(self) -> tuple[Any, Any, Any, Any]:
        """(core/v1, batch/v1, apps/v1, autoscaling/v2) on the loaded client."""
        from kubernetes import client

        api = self.client()
        return (
            client.CoreV1Api(api),
            client.BatchV1Api(api),
            client.AppsV1Api(api),
            client.AutoscalingV2Api(api),
        )

    def serialize(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.client().sanitize_for_serialization(obj)
        return out

    def watch(self, namespace: str) -> Watcher:
        """The namespace's watcher, started (and synced once) the first time."""
        with self._lock:
            watcher = self._watchers.get(namespace)
            if watcher is None:
                core, batch, apps, _ = self.apis()
                watcher = Watcher(
                    namespace,
                    self.cache,
                    {
                        "jobs": batch.list_namespaced_job,
                        "deployments": apps.list_namespaced_deployment,
                        "pods": core.list_namespaced_pod,
                    },
                    self.serialize,
                    timeout=self.watch_timeout,
                ).start()
                self._watchers[namespace] = watcher
        watcher.synced.wait(10)
        return watcher

    # -- admission and resources ----------------------------------------------------------------

    async def _admit(self, desc: RunDescription) -> Admission:
        nodes = await asyncio.to_thread(self.objects.nodes)
        if not nodes:  # not allowed to look, or nodes come on demand: the scheduler decides
            return Admission()
        req = desc.resources
        where = "the largest node of the Kubernetes cluster"
        for key, label, wanted in (
            ("gpu", "GPU", req.gpu),
            ("cpu", "CPU", req.cpu),
            ("memory", "MiB", req.memory_mib),
        ):
            largest = max(n[key] for n in nodes)
            if wanted > largest:
                raise Infeasible(shortfall(label, wanted, largest, where))
        return Admission()

    async def _describe_resources(self) -> dict[str, Any]:
        nodes = await asyncio.to_thread(self.objects.nodes)
        out: dict[str, Any] = {
            "adapter": self.name,
            "cluster": k8s_config.where(self.settings, self.environ),
            "namespacePrefix": self.options.namespace_prefix,
            "image": self.options.image,
        }
        if nodes is None:
            return {**out, "total": {}, "note": "the account may not list nodes"}
        return {
            **out,
            "total": {
                "cpu": sum(n["cpu"] for n in nodes),
                "gpu": sum(n["gpu"] for n in nodes),
                "memoryMib": int(sum(n["memory"] for n in nodes)),
            },
            "nodes": len(nodes),
        }

    # -- start ----------------------------------------------------------------------------------

    async def _start(self, desc: RunDescription, admission: Admission) -> str:
        return await asyncio.to_thread(self._start_sync, desc)

    def _start_sync(self, desc: RunDescription) -> str:
        self.client()
        objects = km.objects(desc, self.options)  # a bad environmentConf fails before any call
        namespace = objects[0]["metadata"]["name"]
        self.objects.ensure_namespace(namespace)
        self.watch(namespace)
        created: list[dict[str, Any]] = []
        step = "create"
        manifest = objects[1]
        try:
            owner: tuple[dict[str, Any], str] | None = None
            for manifest in objects[1:]:
                if owner is not None and manifest["kind"] in ("Service", "HorizontalPodAutoscaler"):
                    manifest = {
                        **manifest,
                        "metadata": {**manifest["metadata"], "ownerReferences": km.owned_by(*owner)},
                    }
                step = "create"
                made = self.objects.create(manifest)
                created.append(manifest)
                if manifest["kind"] in ("Job", "Deployment"):
                    owner = (manifest, made.metadata.uid)
                    step = "give the token's Secret to"
                    self.objects.own_secret(objects[1], manifest, made.metadata.uid)
                    self.cache.apply(
                        "jobs" if manifest["kind"] == "Job" else "deployments", "ADDED", self.serialize(made)
                    )
        except BaseException as exc:
            if getattr(exc, "status", None) == 404:  # the namespace went since: make it next time
                self.objects.namespaces.discard(namespace)
            self.objects.undo(created)
            if isinstance(exc, DispatchFailed):
                raise
            detail = api_error(exc) if hasattr(exc, "status") else " ".join(str(exc).split())[:400]
            what = f"{manifest['kind']} {namespace}/{manifest['metadata']['name']}"
            raise DispatchFailed(
                f"{self.name} adapter could not {step} {what} for {desc.kind} {desc.ident}: {detail}"
            ) from None
        main = next(m for m in objects if m["kind"] in ("Job", "Deployment"))
        kind = "job" if main["kind"] == "Job" else "deployment"
        logger.info(
            "started %s %s as %s %s/%s",
            desc.kind,
            desc.ident,
            main["kind"],
            namespace,
            main["metadata"]["name"],
        )
        return f"{kind}/{namespace}/{main['metadata']['name']}"

    def endpoint(self, desc: RunDescription, port: int) -> str:
        """Where control reaches a service's pods: `http://{ATOM_K8S_SERVICE_HOST}:{port}`."""
        ns = km.namespace_of(desc.space, self.options.namespace_prefix)
        host = self.settings.k8s_service_host.format(service=km.object_name(desc), namespace=ns)
        return f"http://{host}:{port}"

    # -- describe, logs -------------------------------------------------------------------------

    def _read(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client import ApiException

        _, batch, apps, _ = self.apis()
        try:
            got = (batch.read_namespaced_job if kind == "jobs" else apps.read_namespaced_deployment)(name, ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise DispatchFailed(
                f"{self.name} adapter could not read {kind[:-1]} {ns}/{name}: {api_error(exc)}"
            ) from None
        obj = self.serialize(got)
        self.cache.apply(kind, "ADDED", obj)
        return obj

    def _state(self, external_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str, str, str]:
        kind, ns, name = parse_id(external_id)
        self.watch(ns)
        plural = "jobs" if kind == "job" else "deployments"
        obj, gone = self.cache.get(plural, ns, name)
        if obj is None and not gone:
            obj = self._read(plural, ns, name)
        selector = (
            {f"{km.LABEL}/run": name.rsplit("-", 1)[-1]} if kind == "job" else {f"{km.LABEL}/service": name}
        )
        pods = {p["metadata"]["name"]: p for p in self.cache.select("pods", ns, selector, gone=True)}
        pods.update({p["metadata"]["name"]: p for p in self.cache.select("pods", ns, selector)})
        return obj, list(pods.values()), kind, ns, name

    async def _describe(self, external_id: str) -> Observed:
        if external_id in self._verdicts:
            return self._verdicts[external_id]
        return await asyncio.to_thread(self._describe_sync, external_id)

    def _describe_sync(self, external_id: str) -> Observed:
        obj, pods, kind, ns, name = self._state(external_id)
        if kind == "job":
            seen = observe_run(obj, pods, container=km.CONTAINER, name=name)
        else:  # a service's pods come and go (restarts, scaling): only those there now count
            live = self.cache.select("pods", ns, {f"{km.LABEL}/service": name})
            seen = observe_service(obj, live, container=km.CONTAINER, name=name)
        if not seen.alive:
            finished = obj is None or any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in (obj.get("status") or {}).get("conditions") or []
            )
            if not finished:  # it can never run (its image, its config): take it away
                logger.warning("%s: %s; deleting it", external_id, seen.detail)
                self.objects.delete(kind, ns, name)
            self._verdicts[external_id] = seen
            while len(self._verdicts) > 10_000:
                self._verdicts.pop(next(iter(self._verdicts)))
        return seen

    async def _logs(self, external_id: str) -> str | None:
        return await asyncio.to_thread(self._logs_sync, external_id)

    def _logs_sync(self, external_id: str) -> str | None:
        _, pods, _, ns, _ = self._state(external_id)
        assert self._pod_logs is not None
        return self._pod_logs.text(ns, pods, km.CONTAINER)

    async def _settled(self, external_id: str) -> bool:
        return await asyncio.to_thread(self._settled_sync, external_id)

    def _settled_sync(self, external_id: str) -> bool:
        """No pod of it runs any more (a deleted pod runs its SIGTERM handler until it ends) and
        every log follower has read its pod's last lines."""
        _, pods, kind, ns, name = self._state(external_id)
        live = self.cache.select("pods", ns, self._selector(kind, name))
        if any((p.get("status") or {}).get("phase") not in ("Succeeded", "Failed") for p in live):
            return False
        return self._pod_logs is None or not self._pod_logs.following(ns, pods)

    @staticmethod
    def _selector(kind: str, name: str) -> dict[str, str]:
        if kind == "job":
            return {f"{km.LABEL}/run": name.rsplit("-", 1)[-1]}
        return {f"{km.LABEL}/service": name}

    # -- stop -----------------------------------------------------------------------------------

    async def _stop(self, external_id: str, *, grace: float) -> None:
        await asyncio.to_thread(self._stop_sync, external_id, grace)

    def _stop_sync(self, external_id: str, grace: float) -> None:
        from kubernetes.client import ApiException

        kind, ns, name = parse_id(external_id)
        self.watch(ns)
        if not self.objects.delete(kind, ns, name):
            return
        plural = "jobs" if kind == "job" else "deployments"
        obj, _ = self.cache.get(plural, ns, name)
        if obj is not None:  # describe says so at once, whenever the watch delivers it
            self.cache.apply(plural, "DELETED", obj)
        core, _, _, _ = self.apis()
        selector = (
            {f"{km.LABEL}/run": name.rsplit("-", 1)[-1]} if kind == "job" else {f"{km.LABEL}/service": name}
        )
        label = ",".join(f"{k}={v}" for k, v in selector.items())
        pods = core.list_namespaced_pod(ns, label_selector=label).items or []
        longest = 0
        for pod in pods:
            longest = max(longest, pod.spec.termination_grace_period_seconds or 0)
            try:  # the caller's grace, shorter than the pod's own if it asks
                core.delete_namespaced_pod(
                    pod.metadata.name, ns, grace_period_seconds=max(0, math.ceil(grace))
                )
            except ApiException as exc:
                if exc.status != 404:
                    logger.warning("could not delete pod %s/%s: %s", ns, pod.metadata.name, api_error(exc))
        deadline = time.monotonic() + min(grace, longest or grace) + 15
        while time.monotonic() < deadline and self.cache.select("pods", ns, selector):
            with self.cache.changed:
                self.cache.changed.wait(0.2)
        if self._pod_logs is not None:
            self._pod_logs.settle(ns, self.cache.select("pods", ns, selector, gone=True))

    async def _release(self, external_id: str) -> None:
        if self._pod_logs is not None:
            _, ns, _ = parse_id(external_id)
            obj, pods, _, _, _ = await asyncio.to_thread(self._state, external_id)
            self._pod_logs.forget(ns, pods)

    async def aclose(self) -> None:
        watchers, self._watchers = list(self._watchers.values()), {}
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in watchers))
        if self._pod_logs is not None:
            await asyncio.to_thread(self._pod_logs.close)
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None
