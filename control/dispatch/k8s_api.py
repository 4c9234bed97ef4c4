"""The Kubernetes adapter's calls on objects: the namespace, creating what a start makes (and
taking it back when a start fails), deleting a Job or Deployment, the nodes' allocatable resources.

Each call is one or two requests of the official client; failures become one `DispatchFailed`
line naming the object and the API server's reason (`api_error`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from control.dispatch import k8s_manifests as km
from control.errors import DispatchFailed

logger = logging.getLogger(__name__)


def api_error(exc: BaseException) -> str:
    """One line from an ApiException: `403 Forbidden: namespaces is forbidden: ...`."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    message, reason = "", str(getattr(exc, "reason", "") or "")
    if body:
        try:
            data = json.loads(body)
            message, reason = str(data.get("message") or ""), str(data.get("reason") or reason)
        except (ValueError, AttributeError):
            message = str(body)
    text = " ".join(f"{status or ''} {reason}: {message or type(exc).__name__}".split())
    return text[:400]


class KubeObjects:
    """Object operations on the client that `apis` returns (core/v1, batch/v1, apps/v1, autoscaling/v2)."""

    def __init__(self, apis: Callable[[], tuple[Any, Any, Any, Any]]) -> None:
        self.apis = apis
        self.namespaces: set[str] = set()
        """Namespaces known to exist (made or seen)."""

    def nodes(self) -> list[dict[str, float]] | None:
        """Each node's allocatable cpu, gpu and memory (MiB); None when the account may not list them."""
        from kubernetes.client import ApiException
        from kubernetes.utils import parse_quantity

        core, _, _, _ = self.apis()
        try:
            nodes = core.list_node().items or []
        except ApiException as exc:
            if exc.status in (401, 403):
                return None
            raise DispatchFailed(
                f"kubernetes adapter could not list the cluster's nodes: {api_error(exc)}"
            ) from None
        out = []
        for node in nodes:
            alloc = (node.status.allocatable if node.status else None) or {}
            out.append(
                {
                    "cpu": float(parse_quantity(alloc.get("cpu", "0"))),
                    "gpu": float(parse_quantity(alloc.get("nvidia.com/gpu", "0"))),
                    "memory": float(parse_quantity(alloc.get("memory", "0")) / (1024 * 1024)),
                }
            )
        return out

    def ensure_namespace(self, namespace: str) -> None:
        from kubernetes.client import ApiException

        if namespace in self.namespaces:
            return
        core, _, _, _ = self.apis()
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status not in (403, 404):
                raise DispatchFailed(
                    f"kubernetes adapter could not read namespace {namespace}: {api_error(exc)}"
                ) from None
            try:
                core.create_namespace(km.namespace_manifest(namespace))
            except ApiException as made:
                if made.status == 403:
                    raise DispatchFailed(
                        f"kubernetes adapter: the account may not create namespace {namespace} "
                        f"({api_error(made)}): create it (kubectl create namespace {namespace}) or let "
                        "the account create namespaces; ATOM_K8S_NAMESPACE_PREFIX sets the names"
                    ) from None
                if made.status != 409:
                    raise DispatchFailed(
                        f"kubernetes adapter could not create namespace {namespace}: {api_error(made)}"
                    ) from None
        self.namespaces.add(namespace)

    def create(self, manifest: dict[str, Any]) -> Any:
        core, batch, apps, scaling = self.apis()
        ns = manifest["metadata"]["namespace"]
        create = {
            "Secret": core.create_namespaced_secret,
            "Job": batch.create_namespaced_job,
            "Deployment": apps.create_namespaced_deployment,
            "Service": core.create_namespaced_service,
            "HorizontalPodAutoscaler": scaling.create_namespaced_horizontal_pod_autoscaler,
        }[manifest["kind"]]
        return create(ns, manifest)

    def own_secret(self, secret: dict[str, Any], owner: dict[str, Any], uid: str) -> None:
        core, _, _, _ = self.apis()
        meta = secret["metadata"]
        core.patch_namespaced_secret(
            meta["name"], meta["namespace"], {"metadata": {"ownerReferences": km.owned_by(owner, uid)}}
        )

    def undo(self, created: list[dict[str, Any]]) -> None:
        """Delete what a failed start created, newest first (404 is fine)."""
        from kubernetes.client import ApiException

        core, batch, apps, scaling = self.apis()
        for manifest in reversed(created):
            meta = manifest["metadata"]
            delete = {
                "Secret": core.delete_namespaced_secret,
                "Job": batch.delete_namespaced_job,
                "Deployment": apps.delete_namespaced_deployment,
                "Service": core.delete_namespaced_service,
                "HorizontalPodAutoscaler": scaling.delete_namespaced_horizontal_pod_autoscaler,
            }[manifest["kind"]]
            try:
                delete(meta["name"], meta["namespace"], propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    logger.warning(
                        "could not delete %s %s/%s: %s",
                        manifest["kind"],
                        meta["namespace"],
                        meta["name"],
                        api_error(exc),
                    )
            except Exception as exc:  # noqa: BLE001 - the API server went away: say what may be left
                logger.warning(
                    "could not delete %s %s/%s after a failed start (%s): delete it by hand",
                    manifest["kind"],
                    meta["namespace"],
                    meta["name"],
                    exc,
                )

    def delete(self, kind: str, ns: str, name: str) -> bool:
        """Delete the Job or Deployment and what it owns; False when it was already gone."""
        from kubernetes.client import ApiException

        _, batch, apps, _ = self.apis()
        delete = batch.delete_namespaced_job if kind == "job" else apps.delete_namespaced_deployment
        try:
            delete(name, ns, propagation_policy="Background")
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise DispatchFailed(
                f"kubernetes adapter could not delete {kind} {ns}/{name}: {api_error(exc)}"
            ) from None
        return True
