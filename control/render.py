"""`atom render`: the YAML the Kubernetes adapter would apply for a node's next run or for a service.

The run or service is described exactly as a start describes it (`describe_run`, `describe_service`
with this control's settings and environment), then turned into manifests by the same functions
the adapter uses (`k8s_manifests`), so what an administrator reads, or `kubectl apply`s, is what
Atom creates. Tokens are never shown: the Secret carries a placeholder. Nothing is stored and no
directory is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control import launch
from control import schemas as s
from control.deploy import service_context
from control.dispatch import k8s_manifests as km
from control.dispatch.base import RunDescription
from control.dispatch.describe import RunNames, describe_run, describe_service, needs_ray
from control.errors import NotFound
from control.settings import Settings
from control.store import models as m
from control.store import repo

RENDER_PORT = 8080
"""The port shown for a service that has none yet (control picks a free one when it starts it)."""


@dataclass(frozen=True)
class Rendered:
    kind: str
    name: str
    namespace: str
    yaml: str


def _render(desc: RunDescription, settings: Settings, header: str) -> Rendered:
    opts = km.K8sOptions.from_settings(settings)
    text = km.render(desc, opts, header=header)
    return Rendered(desc.kind, km.object_name(desc), km.namespace_of(desc.space, opts.namespace_prefix), text)


def describe_next_run(
    ses: Session, settings: Settings, *, space: str, name: str, environ: Mapping[str, str] | None = None
) -> tuple[RunDescription, str]:
    """The description of node `name`'s next run, and a note of what differs from a real start."""
    sp = repo.get_space(session=ses, space=space)
    node = ses.scalar(select(m.Node).where(m.Node.space_id == sp.id, m.Node.node_name == name))
    if node is None:
        raise NotFound(f"node {name!r} does not exist in space {space!r}")
    spec = launch.build_task_spec(session=ses, node=node, event=s.TaskEvent(task_id=node.id))
    spec.run_id = (ses.scalar(select(func.max(m.Runtime.id))) or 0) + 1
    last = ses.scalar(select(func.max(m.Runtime.attempt)).where(m.Runtime.node_id == node.id))
    spec.attempt = (last or 0) + 1
    exam = ses.get(m.Exam, node.exam_id) if node.exam_id is not None else None
    names = RunNames(
        space=sp.space_name,
        exam=exam.exam_name if exam else "",
        model_version=_next_version(ses, spec),
        retries=node.max_retries,
    )
    desc = describe_run(
        settings,
        spec,
        token=km.TOKEN_PLACEHOLDER,
        names=names,
        ray_address=settings.ray_address if needs_ray(spec) else None,
        environ=os.environ if environ is None else environ,
        create_dirs=False,
    )
    pattern = spec.service_info.si_runtime_pattern.value if spec.service_info else "(none)"
    note = (
        ""
        if pattern == s.RuntimePattern.KUBERNETES.value
        else f"\nnode {name} runs with siRuntimePattern {pattern}: this is what it would be on Kubernetes."
    )
    return desc, note


def _next_version(ses: Session, spec: s.TaskSpec) -> str:
    """The version the next run would register (one past the model's highest; a run starting
    meanwhile may take it first)."""
    if spec.model is None or spec.model.model_id is None:
        return ""
    versions = ses.scalars(
        select(m.ModelVersion.model_version).where(m.ModelVersion.model_id == spec.model.model_id)
    )
    return str(max((int(v) for v in versions if str(v).isdigit()), default=0) + 1)


def render_node(
    ses: Session, settings: Settings, *, space: str, name: str, environ: Mapping[str, str] | None = None
) -> Rendered:
    desc, note = describe_next_run(ses, settings, space=space, name=name, environ=environ)
    header = (
        f"`atom render node {name}` (space {space}): what the kubernetes adapter applies for the\n"
        f"node's next run (run id {desc.ident} unless another run starts first), in this order; it\n"
        "then sets the Secret's ownerReferences to the Job's uid. The token is a placeholder." + note
    )
    return _render(desc, settings, header)


def render_service(
    ses: Session, settings: Settings, *, service_id: int, environ: Mapping[str, str] | None = None
) -> Rendered:
    svc = ses.get(m.Service, service_id)
    if svc is None:
        raise NotFound(f"service {service_id} does not exist")
    context = service_context(ses, svc)
    desc = describe_service(
        settings,
        service_id=svc.id,
        name=svc.service_name,
        token=km.TOKEN_PLACEHOLDER,
        port=svc.port or RENDER_PORT,
        log_path=Path(settings.services_dir / str(svc.id) / "serve.log"),
        environ=environ,
        **context,
    )
    header = (
        f"`atom render service {svc.service_name}` (service {svc.id}, "
        f"{km.object_name(desc)} on Kubernetes):\n"
        "what the kubernetes adapter applies for it, in this order; it then sets the Secret's\n"
        "ownerReferences to the Deployment's uid. The token is a placeholder."
    )
    return _render(desc, settings, header)
