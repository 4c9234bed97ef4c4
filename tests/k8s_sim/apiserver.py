"""A Kubernetes API server stand-in: kmock's HTTP server, request parsing, routing, discovery
and error rendering, with the object store kept here so that it behaves like the real server
where an adapter can tell the difference.

What it does like kube-apiserver: uid, resourceVersion (one counter), creationTimestamp,
generation and generateName on create; kind/apiVersion filled from the URL; names, label keys and
values checked; every created or replaced object validated against the official schema
(kubernetes-validate, strict: unknown fields are refused, 422 Invalid); namespaced objects refused
in a namespace that does not exist; Secret `stringData` folded into base64 `data`; the status
subresource (a patch there changes only `status`, a patch of the object never changes it); merge
and JSON patches (lists are replaced, not merged by key as a strategic merge patch would);
label and field selectors on list and watch; watches that start from a resourceVersion, end
after `timeoutSeconds` and accept the client's `watch=True`; graceful pod deletion (a bound,
running pod gets deletionTimestamp and stays until its kubelet deletes it with grace 0); the
garbage collector's cascade on delete (Background and Foreground delete dependents by
ownerReference uid, Orphan strips the reference; a batch/v1 Job is orphaning by default, as the
real server does); deleting a namespace deletes what is in it; `pods/NAME/log` served by a log
source (the kubelet simulator), follow included. Errors carry the real reasons (NotFound,
AlreadyExists, Invalid). Not done: admission, RBAC (inject a refusal with a kmock reaction,
`api.handler["create v1/namespaces"] << 403`), strategic-merge list semantics, 410 Gone.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import attrs
from kmock import KubernetesError, KubernetesScaffold, ResourceInfo, Response, action, method
from kmock._internal.dicts import patch_dict
from kmock._internal.rendering import Request

from tests.k8s_sim.selectors import admission_errors, field_selector, label_selector

SCHEMA_VERSION = "1.33"


#: resource path -> (kind, namespaced)
RESOURCES: dict[str, tuple[str, bool]] = {
    "v1/namespaces": ("Namespace", False),
    "v1/nodes": ("Node", False),
    "v1/pods": ("Pod", True),
    "v1/secrets": ("Secret", True),
    "v1/configmaps": ("ConfigMap", True),
    "v1/services": ("Service", True),
    "v1/serviceaccounts": ("ServiceAccount", True),
    "v1/events": ("Event", True),
    "batch/v1/jobs": ("Job", True),
    "apps/v1/deployments": ("Deployment", True),
    "apps/v1/replicasets": ("ReplicaSet", True),
    "autoscaling/v2/horizontalpodautoscalers": ("HorizontalPodAutoscaler", True),
}
_WITH_STATUS = {
    "Pod",
    "Namespace",
    "Node",
    "Service",
    "Job",
    "Deployment",
    "ReplicaSet",
    "HorizontalPodAutoscaler",
}


class LogSource(Protocol):
    """Where `pods/NAME/log` comes from (on a cluster: the pod's kubelet)."""

    def open_log(
        self, namespace: str, pod: str, container: str | None, previous: bool
    ) -> Callable[[], tuple[bytes, bool]]:
        """A reader of the container's output: each call gives all of it so far and whether the
        container has ended; it keeps working after the pod is deleted, as a kubelet's log stream
        does. Raises KubernetesError (400) when the container has not started."""
        ...


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, reason: str, message: str, **details: Any) -> KubernetesError:
    return KubernetesError(status=status, reason=reason, message=message, details=details or {})


def _key(request: Request) -> str:
    res = request.resource
    assert res is not None
    return f"{res.group}/{res.version}/{res.plural}" if res.group else f"{res.version}/{res.plural}"


def _qualified(key: str) -> str:
    group, plural = key.split("/")[0] if key.count("/") == 2 else "", key.rsplit("/", 1)[1]
    return f"{plural}.{group}" if group else plural


@attrs.define(kw_only=True)
class ApiServer(KubernetesScaffold):
    """The handler: all state lives on the server's event loop thread (one handler at a time
    between awaits), so each request's change is atomic."""

    store: dict[tuple[str, str | None, str], dict[str, Any]] = attrs.field(factory=dict, init=False)
    events: list[tuple[int, str, dict[str, Any]]] = attrs.field(factory=list, init=False)
    rv: int = attrs.field(default=1, init=False)
    log_source: LogSource | None = attrs.field(default=None, init=False)
    closing: bool = attrs.field(default=False, init=False)
    _changed: asyncio.Event | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for path, (kind, namespaced) in RESOURCES.items():
            subs = {"status"} | ({"log"} if kind == "Pod" else set())
            self.resources[path] = ResourceInfo(
                kind=kind, namespaced=namespaced, subresources=subs if kind in _WITH_STATUS else set()
            )
        for ns in ("default", "kube-system"):
            self._put(
                "v1/namespaces", None, {"metadata": {"name": ns}, "status": {"phase": "Active"}}, "ADDED"
            )
        self.fallback[action.LIST] << self._serve_list
        self.fallback[action.WATCH] << self._serve_watch
        self.fallback[action.FETCH] << self._serve_fetch
        self.fallback[action.CREATE] << self._serve_create
        self.fallback[action.UPDATE] << self._serve_patch
        self.fallback[action.DELETE] << self._serve_delete
        self.fallback[method.PUT] << self._serve_replace
        self.fallback[method.DELETE] << self._serve_delete_collection

    # -- store and event log ---------------------------------------------------------------------

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _put(self, key: str, ns: str | None, obj: dict[str, Any], kind_of_event: str) -> dict[str, Any]:
        """Store (or remove, for DELETED) an object with a new resourceVersion and log the event."""
        obj["metadata"]["resourceVersion"] = self._next_rv()
        name = obj["metadata"]["name"]
        if kind_of_event == "DELETED":
            self.store.pop((key, ns, name), None)
        else:
            self.store[(key, ns, name)] = obj
        self.events.append((self.rv, key, {"type": kind_of_event, "object": copy.deepcopy(obj)}))
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()
        return obj

    def _get(self, key: str, ns: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get((key, ns, name))
        if obj is None:
            raise _error(404, "NotFound", f'{_qualified(key)} "{name}" not found', name=name)
        return obj

    def _known(self, request: Request) -> tuple[str, str, bool]:
        key = _key(request)
        if key not in RESOURCES:
            raise _error(404, "NotFound", f"the server could not find the requested resource ({key})")
        kind, namespaced = RESOURCES[key]
        return key, kind, namespaced

    # -- reads -----------------------------------------------------------------------------------

    def _selected(self, request: Request) -> Callable[[dict[str, Any]], bool]:
        try:
            by_label = label_selector(request.params.get("labelSelector"))
            by_field = field_selector(request.params.get("fieldSelector"))
        except ValueError as exc:
            raise _error(400, "BadRequest", str(exc)) from exc
        ns = request.namespace
        return lambda o: (ns is None or o["metadata"].get("namespace") == ns) and by_label(o) and by_field(o)

    async def _serve_list(self, request: Request) -> Any:
        if request.params.get("watch", "").lower() in ("true", "1"):
            return await self._serve_watch(request)
        key, kind, _ = self._known(request)
        wanted = self._selected(request)
        items = [copy.deepcopy(o) for (k, _, _), o in sorted(self.store.items()) if k == key and wanted(o)]
        group_version = key.rsplit("/", 1)[0]
        return {
            "apiVersion": group_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(self.rv)},
            "items": items,
        }

    async def _serve_watch(self, request: Request) -> AsyncIterator[bytes]:
        key, _, _ = self._known(request)
        wanted = self._selected(request)
        if request.name:
            named, inner = request.name, wanted
            wanted = lambda o: o["metadata"]["name"] == named and inner(o)  # noqa: E731
        since = request.params.get("resourceVersion", "")
        timeout = float(request.params.get("timeoutSeconds") or 0) or None
        return self._stream(key, wanted, int(since) if since not in ("", "0") else None, timeout)

    async def _stream(
        self, key: str, wanted: Callable[[dict[str, Any]], bool], since: int | None, seconds: float | None
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds if seconds else None
        yield b""  # send the headers now, as a real watch does
        if since is None:  # a fresh watch: every current object as ADDED, then what changes
            cursor = len(self.events)
            for (k, _, _), obj in sorted(self.store.items()):
                if k == key and wanted(obj):
                    yield json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n"
        else:
            cursor = next((i for i, (rv, _, _) in enumerate(self.events) if rv > since), len(self.events))
        while not self.closing:
            while cursor < len(self.events):
                _, k, event = self.events[cursor]
                cursor += 1
                if k == key and wanted(event["object"]):
                    yield json.dumps(event).encode() + b"\n"
            if self._changed is None:
                self._changed = asyncio.Event()
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=left)
            except TimeoutError:
                return

    async def _serve_fetch(self, request: Request) -> Any:
        if request.params.get("watch", "").lower() in ("true", "1"):
            return await self._serve_watch(request)
        key, _, _ = self._known(request)
        obj = self._get(key, request.namespace, request.name or "")
        if request.subresource == "log" and key == "v1/pods":
            return await self._serve_log(request)
        if request.subresource not in (None, "status"):
            raise _error(
                404, "NotFound", f"the server could not find the requested resource ({request.subresource})"
            )
        return copy.deepcopy(obj)

    async def _serve_log(self, request: Request) -> Any:
        ns, pod = request.namespace or "", request.name or ""
        container = request.params.get("container")
        previous = request.params.get("previous", "").lower() in ("true", "1")
        source = self.log_source
        if source is None:
            name = container or "?"
            raise _error(
                400, "BadRequest", f'container "{name}" in pod "{pod}" is waiting to start: ContainerCreating'
            )
        loop = asyncio.get_running_loop()
        reader = await loop.run_in_executor(None, source.open_log, ns, pod, container, previous)
        full, ended = await loop.run_in_executor(None, reader)
        data, tail = full, request.params.get("tailLines")
        if tail is not None:
            data = b"".join(full.splitlines(keepends=True)[-int(tail) :]) if int(tail) else b""
        if request.params.get("follow", "").lower() not in ("true", "1") or ended:
            return Response(payload=data, headers={"Content-Type": "text/plain"})

        async def follow(sent: int) -> AsyncIterator[bytes]:
            yield data
            done = False
            while not done and not self.closing:
                await asyncio.sleep(0.1)
                now_data, done = await loop.run_in_executor(None, reader)
                if len(now_data) > sent:
                    yield now_data[sent:]
                    sent = len(now_data)

        return Response(payload=follow(len(full)), headers={"Content-Type": "text/plain"})

    # -- writes ----------------------------------------------------------------------------------

    def _admit(self, key: str, kind: str, obj: dict[str, Any]) -> None:
        errors = admission_errors(kind, obj, SCHEMA_VERSION)
        if errors:
            group = key.split("/")[0] if key.count("/") == 2 else ""
            name = obj["metadata"]["name"]
            message = f'{kind}{"." + group if group else ""} "{name}" is invalid: {"; ".join(errors)}'
            raise _error(422, "Invalid", message, name=name, kind=kind)

    async def _serve_create(self, request: Request) -> Any:
        key, kind, namespaced = self._known(request)
        obj = copy.deepcopy(request.data) if isinstance(request.data, dict) else {}
        meta = obj.setdefault("metadata", {})
        ns = (request.namespace or meta.get("namespace") or "default") if namespaced else None
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
            )
        if not meta.get("name"):
            raise _error(
                422,
                "Invalid",
                f"{kind} is invalid: metadata.name: Required value: name or generateName is required",
            )
        if namespaced and ("v1/namespaces", None, ns) not in self.store:
            raise _error(404, "NotFound", f'namespaces "{ns}" not found', name=ns, kind="namespaces")
        if (key, ns, meta["name"]) in self.store:
            raise _error(
                409, "AlreadyExists", f'{_qualified(key)} "{meta["name"]}" already exists', name=meta["name"]
            )
        obj["apiVersion"], obj["kind"] = key.rsplit("/", 1)[0], kind
        if ns is not None:
            meta["namespace"] = ns
        if kind == "Secret" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        self._admit(key, kind, obj)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        if kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        self._put(key, ns, obj, "ADDED")
        answer = copy.deepcopy(obj)
        refs = meta.get("ownerReferences") or []
        uids = {o["metadata"].get("uid") for o in self.store.values()}
        if refs and not any(ref.get("uid") in uids for ref in refs):
            self._delete(
                key, obj, None, "Background"
            )  # the garbage collector takes a dependent of gone owners
        return Response(status=201, payload=answer)

    def _apply(
        self, key: str, kind: str, old: dict[str, Any], new: dict[str, Any], sub: str | None
    ) -> dict[str, Any]:
        if sub == "status":  # the status subresource changes only the status
            new = dict(old, status=new.get("status"))
        elif kind in _WITH_STATUS:  # the object's own endpoint never changes its status
            new = {k: v for k, v in new.items() if k != "status"}
            if "status" in old:
                new["status"] = old["status"]
        meta = new["metadata"] = dict(new.get("metadata") or {})
        for field in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
        meta["generation"] = old["metadata"].get("generation", 1) + (new.get("spec") != old.get("spec"))
        new["apiVersion"], new["kind"] = old["apiVersion"], kind
        if sub is None and new.get("spec") != old.get("spec"):
            self._admit(key, kind, new)
        ns = old["metadata"].get("namespace")
        if new == old:
            return old  # nothing changed: no new version, no event
        if meta.get("deletionTimestamp") and old["metadata"].get("finalizers") and not meta.get("finalizers"):
            self._put(key, ns, new, "DELETED")  # the last finalizer is gone: the object goes
            return new
        return self._put(key, ns, new, "MODIFIED")

    async def _serve_patch(self, request: Request) -> Any:
        key, kind, _ = self._known(request)
        old = self._get(key, request.namespace, request.name or "")
        try:
            new = dict(patch_dict(copy.deepcopy(old), request.data))
        except Exception as exc:  # noqa: BLE001 - a patch that does not apply is the client's error
            raise _error(422, "Invalid", f"the patch does not apply: {exc}") from exc
        return copy.deepcopy(self._apply(key, kind, old, new, request.subresource))

    async def _serve_replace(self, request: Request) -> Any:
        if request.resource is None or request.name is None:
            raise _error(405, "MethodNotAllowed", "PUT needs an object's URL")
        key, kind, _ = self._known(request)
        old = self._get(key, request.namespace, request.name)
        new = copy.deepcopy(request.data) if isinstance(request.data, dict) else {}
        return copy.deepcopy(self._apply(key, kind, old, new, request.subresource))

    async def _serve_delete(self, request: Request) -> Any:
        key, kind, _ = self._known(request)
        obj = self._get(key, request.namespace, request.name or "")
        options = request.data if isinstance(request.data, dict) else {}
        grace = request.params.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        policy = request.params.get("propagationPolicy", options.get("propagationPolicy"))
        if (
            policy is None
            and str(request.params.get("orphanDependents", options.get("orphanDependents"))).lower() == "true"
        ):
            policy = "Orphan"
        self._delete(key, obj, None if grace is None else int(grace), policy)
        gone = (key, obj["metadata"].get("namespace"), obj["metadata"]["name"]) not in self.store
        if kind == "Pod" or not gone:
            return copy.deepcopy(obj)
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Success",
            "details": {
                "name": obj["metadata"]["name"],
                "kind": _qualified(key).split(".")[0],
                "uid": obj["metadata"]["uid"],
            },
        }

    async def _serve_delete_collection(self, request: Request) -> Any:
        if request.resource is None or request.name is not None:
            raise _error(405, "MethodNotAllowed", "DELETE of this URL is not served")
        key, _, _ = self._known(request)
        wanted = self._selected(request)
        doomed = [o for (k, _, _), o in list(self.store.items()) if k == key and wanted(o)]
        for obj in doomed:
            self._delete(key, obj, None, request.params.get("propagationPolicy"))
        return {"apiVersion": "v1", "kind": "Status", "status": "Success"}

    def _delete(self, key: str, obj: dict[str, Any], grace: int | None, policy: str | None) -> None:
        meta, ns = obj["metadata"], obj["metadata"].get("namespace")
        if key == "v1/pods" and grace is None:
            grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        bound = key == "v1/pods" and (obj.get("spec") or {}).get("nodeName")
        running = (obj.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        if meta.get("finalizers") or (bound and running and grace):
            if not meta.get("deletionTimestamp"):
                marked = copy.deepcopy(obj)
                at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace or 0)
                marked["metadata"].update(
                    deletionTimestamp=at.strftime("%Y-%m-%dT%H:%M:%SZ"), deletionGracePeriodSeconds=grace or 0
                )
                self._put(key, ns, marked, "MODIFIED")
            return
        self._put(key, ns, copy.deepcopy(obj), "DELETED")
        if policy is None:
            policy = "Orphan" if key == "batch/v1/jobs" else "Background"
        uid = meta.get("uid")
        for (k, dns, _), dependent in list(self.store.items()):
            inside = key == "v1/namespaces" and dns == meta["name"]
            refs = dependent["metadata"].get("ownerReferences") or []
            owned = any(ref.get("uid") == uid for ref in refs)
            if inside or (owned and policy != "Orphan"):
                self._delete(k, dependent, None, None)
            elif owned:
                kept = copy.deepcopy(dependent)
                kept["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                self._put(k, dns, kept, "MODIFIED")

    async def close_streams(self) -> None:
        self.closing = True
        if self._changed is not None:
            self._changed.set()
