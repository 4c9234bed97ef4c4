"""What the Kubernetes adapter applies, as plain dicts: pure functions of a `RunDescription`.

A run is a `batch/v1` Job (one pod, `restartPolicy: Never`) plus a Secret holding its run token;
an inference service is a Deployment, a Service, a Secret for its service token, and an
`autoscaling/v2` HorizontalPodAutoscaler when its min and max replicas differ. Every object lives
in the space's namespace (`{prefix}{space}`) and carries the labels in `LABEL` (space, exam, node,
run or service, model), so a watch or `kubectl get -l atom.dev/run=12` finds it.

Tokens travel only in Secrets: the container gets them through `secretKeyRef`, never as a literal.
The adapter creates the Secret first, then its owner (Job or Deployment), then patches the Secret's
ownerReferences to that owner's uid (`owned_by`), so deleting the Job or Deployment takes the
Secret, and for a service its Service and HPA, with it.

The pod's environment is the run's built environment (`RunDescription.env`) less what only makes
sense on control's host (its PATH, HOME, virtualenv, CA bundle paths, run directories): the image
brings its own, the agent works in `WORK_DIR` (an emptyDir), and the pod's identity comes from the
downward API (`ATOM_POD_NAME`, `ATOM_POD_NAMESPACE`, `ATOM_POD_IP`, `ATOM_HOST_NAME`, `ATOM_HOST_IP`).
`render` gives the same objects as YAML (`atom render`), tokens replaced by `TOKEN_PLACEHOLDER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from control.dispatch import k8s_placement as placement
from control.dispatch.base import RunDescription
from control.dispatch.k8s_names import (
    LABEL,
    MANAGED_BY,
    dns_label,
    job_name,
    label_value,
    labels,
    namespace_of,
    object_name,
    secret_name,
    selector,
    service_name,
)

if TYPE_CHECKING:
    from control.settings import Settings

WORK_DIR = "/atom/work"
"""The agent's working directory in a pod (an emptyDir): its run directories live under it."""
TOKEN_KEY = "token"
TOKEN_PLACEHOLDER = "<the run or service token: control writes it when it starts the pod>"
CONTAINER = "agent"
#: control-host variables a pod must not inherit (the image and the pod bring their own)
HOST_ONLY = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "LD_LIBRARY_PATH",
        "TMPDIR",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "PIP_CERT",
        "GIT_SSL_CAINFO",
        "CUDA_VISIBLE_DEVICES",
        "ATOM_HOME",
        "ATOM_CACHE_DIR",
        "ATOM_CODE_CACHE",
        "ATOM_HOST_NAME",
        "ATOM_HOST_IP",
        "ATOM_POD_NAME",
        "ATOM_POD_NAMESPACE",
    }
)
TOKENS = ("ATOM_RUN_TOKEN", "ATOM_SERVICE_TOKEN")
#: the run directories, re-rooted under WORK_DIR in a pod
RUN_DIRS = {
    "ATOM_DATA_DIR": "data",
    "ATOM_MODEL_DIR": "model",
    "ATOM_MODEL_PATH": "model",
    "ATOM_LOG_DIR": "logs",
    "ATOM_SUMMARY_DIR": "summary",
    "ATOM_SHARE_DIR": "share",
}
DOWNWARD = {
    "ATOM_POD_NAME": "metadata.name",
    "ATOM_POD_NAMESPACE": "metadata.namespace",
    "ATOM_POD_IP": "status.podIP",
    "ATOM_HOST_NAME": "spec.nodeName",
    "ATOM_HOST_IP": "status.hostIP",
}


@dataclass(frozen=True)
class K8sOptions:
    """The settings the manifests depend on (`ATOM_K8S_*`)."""

    image: str = "atom-agent:latest"
    pull_policy: str = "IfNotPresent"
    namespace_prefix: str = ""
    control_url: str = "http://127.0.0.1:8470"
    service_account: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> K8sOptions:
        return cls(
            image=settings.k8s_image,
            pull_policy=settings.k8s_image_pull_policy,
            namespace_prefix=settings.k8s_namespace_prefix,
            control_url=settings.k8s_control_url or settings.callback_url,
            service_account=settings.k8s_service_account,
        )


# -- the pod ----------------------------------------------------------------------------------------


def pod_env(desc: RunDescription, opts: K8sOptions, secret: str) -> list[dict[str, Any]]:
    """The container's env: the run's variables for a pod, the token from its Secret."""
    env: list[dict[str, Any]] = []
    for key, value in sorted(desc.env.items()):
        if key in HOST_ONLY or key in TOKENS:
            continue
        if key in RUN_DIRS:
            value = f"{WORK_DIR}/{RUN_DIRS[key]}"
        elif key == "ATOM_CONTROL_URL":
            value = opts.control_url
        env.append({"name": key, "value": value})
    token_var = "ATOM_SERVICE_TOKEN" if desc.kind == "service" else "ATOM_RUN_TOKEN"
    env.append({"name": token_var, "valueFrom": {"secretKeyRef": {"name": secret, "key": TOKEN_KEY}}})
    for key, path in DOWNWARD.items():
        env.append({"name": key, "valueFrom": {"fieldRef": {"fieldPath": path}}})
    return env


def resources(desc: RunDescription) -> dict[str, dict[str, str]]:
    """requests = limits (one node's share of the service info): cpu, memory (Mi), nvidia.com/gpu."""
    req = desc.resources
    amounts: dict[str, str] = {}
    if req.cpu > 0:
        amounts["cpu"] = f"{req.cpu:g}"
    if req.memory_mib > 0:
        amounts["memory"] = f"{req.memory_mib}Mi"
    if req.gpu > 0:
        amounts["nvidia.com/gpu"] = str(req.gpu)
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def container_args(desc: RunDescription, port: int | None = None) -> dict[str, Any]:
    """`args` after the image's `atom-runtime` entrypoint; a description without args runs its command."""
    if not desc.args:
        return {"command": list(desc.command)}
    args = list(desc.args)
    if "--host" in args:  # a service listens on the pod's address, not on loopback
        args[args.index("--host") + 1] = "0.0.0.0"
    if port is not None and "--port" in args:
        args[args.index("--port") + 1] = str(port)
    return {"args": args}


def pod_spec(
    desc: RunDescription, opts: K8sOptions, secret: str, *, port: int | None = None
) -> dict[str, Any]:
    conf = desc.environment_conf
    vols, mounts = placement.volumes(conf)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": desc.image or opts.image,
        "imagePullPolicy": opts.pull_policy,
        **container_args(desc, port),
        "workingDir": WORK_DIR,
        "env": pod_env(desc, opts, secret),
        "volumeMounts": [{"name": "atom-work", "mountPath": WORK_DIR}, *mounts],
    }
    res = resources(desc)
    if res:
        container["resources"] = res
    if port is not None:
        container["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        container["readinessProbe"] = {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 3,
        }
        container["livenessProbe"] = {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
        }
    spec: dict[str, Any] = {
        "restartPolicy": "Always" if desc.kind == "service" else "Never",
        "terminationGracePeriodSeconds": placement.grace(conf),
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": [{"name": "atom-work", "emptyDir": {}}, *vols],
    }
    if opts.service_account:
        spec["serviceAccountName"] = opts.service_account
    selector_ = placement.node_selector(conf)
    if selector_:
        spec["nodeSelector"] = selector_
    tols = placement.tolerations(conf)
    if tols:
        spec["tolerations"] = tols
    return spec


# -- the objects ------------------------------------------------------------------------------------


def metadata(name: str, namespace: str, lbls: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(lbls)}


def namespace_manifest(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": dict(MANAGED_BY)},
    }


def secret_manifest(name: str, namespace: str, lbls: dict[str, str], token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, namespace, lbls),
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }


def owned_by(owner: dict[str, Any], uid: str) -> list[dict[str, Any]]:
    """ownerReferences naming `owner` (a manifest) by the uid the API server gave it."""
    return [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": uid,
            "controller": False,
            "blockOwnerDeletion": True,
        }
    ]


def token_of(desc: RunDescription) -> str:
    return desc.env.get("ATOM_SERVICE_TOKEN" if desc.kind == "service" else "ATOM_RUN_TOKEN", "")


@dataclass(frozen=True)
class RunObjects:
    namespace: str
    secret: dict[str, Any]
    job: dict[str, Any]


def run_objects(desc: RunDescription, opts: K8sOptions) -> RunObjects:
    """The Secret and the Job of a run."""
    ns = namespace_of(desc.space, opts.namespace_prefix)
    name = job_name(desc)
    lbls = labels(desc, name)
    secret = secret_name(name)
    job_spec: dict[str, Any] = {"backoffLimit": max(desc.retries, 0)}
    deadline = placement.deadline(desc.environment_conf)
    if deadline:
        job_spec["activeDeadlineSeconds"] = deadline
    job_spec["template"] = {"metadata": {"labels": dict(lbls)}, "spec": pod_spec(desc, opts, secret)}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata(name, ns, lbls), "spec": job_spec}
    return RunObjects(ns, secret_manifest(secret, ns, lbls, token_of(desc)), job)


@dataclass(frozen=True)
class ServiceObjects:
    namespace: str
    secret: dict[str, Any]
    deployment: dict[str, Any]
    service: dict[str, Any]
    hpa: dict[str, Any] | None


def service_port(desc: RunDescription) -> int:
    args = list(desc.args)
    return int(args[args.index("--port") + 1]) if "--port" in args else 8080


def service_objects(desc: RunDescription, opts: K8sOptions) -> ServiceObjects:
    """The Secret, Deployment, Service and (min != max replicas) HPA of an inference service."""
    ns = namespace_of(desc.space, opts.namespace_prefix)
    name = object_name(desc)
    lbls = labels(desc, name)
    secret = secret_name(name)
    port = service_port(desc)
    low, high = desc.replicas or (desc.resources.nodes, desc.resources.nodes)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, ns, lbls),
        "spec": {
            "replicas": low,
            "selector": {"matchLabels": selector(desc, name)},
            "template": {
                "metadata": {"labels": dict(lbls)},
                "spec": pod_spec(desc, opts, secret, port=port),
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, ns, lbls),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(desc, name),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    hpa = None
    if high != low:
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(name, ns, lbls),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": low,
                "maxReplicas": high,
                "metrics": placement.autoscale_metrics(desc.environment_conf),
            },
        }
    return ServiceObjects(ns, secret_manifest(secret, ns, lbls, token_of(desc)), deployment, service, hpa)


def objects(desc: RunDescription, opts: K8sOptions) -> list[dict[str, Any]]:
    """Every object the adapter creates for `desc`, in creation order (namespace first)."""
    if desc.kind == "service":
        svc = service_objects(desc, opts)
        out = [namespace_manifest(svc.namespace), svc.secret, svc.deployment, svc.service]
        return out + ([svc.hpa] if svc.hpa else [])
    run = run_objects(desc, opts)
    return [namespace_manifest(run.namespace), run.secret, run.job]


def redacted(manifest: dict[str, Any]) -> dict[str, Any]:
    """A Secret with its token replaced by `TOKEN_PLACEHOLDER`; any other object as it is."""
    if manifest.get("kind") != "Secret":
        return manifest
    return {**manifest, "stringData": {key: TOKEN_PLACEHOLDER for key in manifest.get("stringData", {})}}


def render(desc: RunDescription, opts: K8sOptions, *, header: str = "") -> str:
    """The YAML `kubectl apply -f` takes: every object of `desc`, tokens replaced by a placeholder."""
    docs = [redacted(m) for m in objects(desc, opts)]
    body = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=100)
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    return ("\n".join(lines) + "\n" if lines else "") + body


__all__ = [
    "LABEL",
    "MANAGED_BY",
    "K8sOptions",
    "RunObjects",
    "ServiceObjects",
    "dns_label",
    "job_name",
    "label_value",
    "labels",
    "namespace_of",
    "object_name",
    "objects",
    "owned_by",
    "pod_env",
    "redacted",
    "render",
    "resources",
    "run_objects",
    "secret_name",
    "selector",
    "service_name",
    "service_objects",
]
