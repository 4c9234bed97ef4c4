"""The simulator's view of the cluster: an informer cache fed by watches and the writes it makes
itself, and the writes, all through the official `kubernetes` client (the adapter's own API)."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client, watch

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
#: the resources the simulator watches
WATCHED = ("pods", "jobs", "deployments", "replicasets")


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def owner_uid(obj: Obj) -> str | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


class Store:
    """Objects by resource, namespace and name; touched only by the simulator's loop thread. An
    object older than the one held (our own write came back first) is ignored."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {r: {} for r in (*WATCHED, "nodes")}

    def apply(self, resource: str, obj: Obj, deleted: bool = False) -> bool:
        key = (meta(obj).get("namespace") or "", meta(obj)["name"])
        held = self.objects[resource].get(key)
        if held is not None and int(meta(held).get("resourceVersion", 0)) > int(
            meta(obj).get("resourceVersion", 0)
        ):
            return False
        if deleted:
            if held is None or meta(held).get("uid") == meta(obj).get("uid"):
                self.objects[resource].pop(key, None)
        else:
            self.objects[resource][key] = obj
        return True

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        return self.objects[resource].get((namespace, name))

    def all(self, resource: str) -> list[Obj]:
        return list(self.objects[resource].values())

    def owned(self, resource: str, uid: str) -> list[Obj]:
        return [o for o in self.objects[resource].values() if owner_uid(o) == uid]


class Api:
    """Writes as plain dicts; what the server answers goes into the store at once."""

    def __init__(self, api_client: client.ApiClient, store: Store) -> None:
        self.client = api_client
        self.store = store
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)

    @staticmethod
    def _json(response: Any) -> Obj:
        return dict(json.loads(response.data))

    def _keep(self, resource: str, obj: Obj) -> Obj:
        if resource in self.store.objects and obj.get("kind") not in (None, "Status"):
            self.store.apply(resource, obj)
        return obj

    def create(self, resource: str, namespace: str, body: Obj) -> Obj:
        fn = {
            "pods": self.core.create_namespaced_pod,
            "replicasets": self.apps.create_namespaced_replica_set,
        }[resource]
        return self._keep(resource, self._json(fn(namespace, body, _preload_content=False)))

    def patch_status(self, resource: str, namespace: str, name: str, status: Obj) -> Obj | None:
        fn = {
            "pods": self.core.patch_namespaced_pod_status,
            "jobs": self.batch.patch_namespaced_job_status,
            "deployments": self.apps.patch_namespaced_deployment_status,
            "replicasets": self.apps.patch_namespaced_replica_set_status,
        }[resource]
        return self._quiet(resource, lambda: fn(name, namespace, {"status": status}, _preload_content=False))

    def patch(self, resource: str, namespace: str, name: str, body: Obj) -> Obj | None:
        fn = {
            "pods": self.core.patch_namespaced_pod,
            "replicasets": self.apps.patch_namespaced_replica_set,
        }[resource]
        return self._quiet(resource, lambda: fn(name, namespace, body, _preload_content=False))

    def delete(self, resource: str, namespace: str, name: str, grace: int | None = None) -> None:
        fn = {
            "pods": self.core.delete_namespaced_pod,
            "replicasets": self.apps.delete_namespaced_replica_set,
        }[resource]
        kwargs = {} if grace is None else {"grace_period_seconds": grace}
        self._quiet(resource, lambda: fn(name, namespace, _preload_content=False, **kwargs))

    def _quiet(self, resource: str, call: Callable[[], Any]) -> Obj | None:
        """A write to an object that is gone meanwhile is no error for a controller."""
        try:
            return self._keep(resource, self._json(call()))
        except client.ApiException as exc:
            if exc.status in (404, 409):
                logger.debug("simulator: %s write skipped: %s", resource, exc.reason)
                return None
            raise

    def read(self, kind: str, namespace: str, name: str) -> Obj | None:
        fn = self.core.read_namespaced_secret if kind == "Secret" else self.core.read_namespaced_config_map
        try:
            return self._json(fn(name, namespace, _preload_content=False))
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise


class Informer(threading.Thread):
    """Lists then watches one resource across namespaces, putting each event on the loop's queue."""

    def __init__(self, api: Api, resource: str, events: queue.Queue[Any], stopped: threading.Event) -> None:
        super().__init__(name=f"sim-informer-{resource}", daemon=True)
        self.api, self.resource, self.events, self.stopped = api, resource, events, stopped
        self.synced = threading.Event()

    def _list_fn(self) -> Callable[..., Any]:
        return {
            "pods": self.api.core.list_pod_for_all_namespaces,
            "jobs": self.api.batch.list_job_for_all_namespaces,
            "deployments": self.api.apps.list_deployment_for_all_namespaces,
            "replicasets": self.api.apps.list_replica_set_for_all_namespaces,
        }[self.resource]

    def _stream(self, since: str | None) -> Iterator[Obj]:
        kwargs: dict[str, Any] = {"timeout_seconds": 1, "deserialize": False, "_request_timeout": 10}
        if since:
            kwargs["resource_version"] = since
        yield from watch.Watch().stream(self._list_fn(), **kwargs)

    def run(self) -> None:
        since: str | None = None
        while not self.stopped.is_set():
            try:
                if since is None:
                    listed = self._json_list()
                    for obj in listed["items"]:
                        self.events.put(("obj", self.resource, "ADDED", obj))
                    since = listed["metadata"]["resourceVersion"]
                    self.synced.set()
                for event in self._stream(since):
                    obj = event["object"]
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        since = meta(obj).get("resourceVersion", since)
                        self.events.put(("obj", self.resource, event["type"], obj))
                    if self.stopped.is_set():
                        return
            except Exception as exc:  # noqa: BLE001 - the server went away or blinked: list again
                if self.stopped.wait(0.2):
                    return
                logger.debug("simulator: %s watch restarts: %s", self.resource, exc)
                since = None

    def _json_list(self) -> Obj:
        return dict(json.loads(self._list_fn()(_preload_content=False).data))
