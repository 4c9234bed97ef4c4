"""Names and labels of what the Kubernetes adapter creates (pure functions).

A run's Job is `{node}-{run id}`; a service's Deployment, Service and HPA are named as Cube Studio
names services (seed 001: `{type}-{model}-{version digits}`); each space is namespace
`{prefix}{space}`; a token's Secret is `{owner}-token`. Labels carry space, exam, node, run or
service, and model under `atom.dev/`, so `kubectl get -l atom.dev/run=12` finds a run.
"""

from __future__ import annotations

import re

from control.dispatch.base import RunDescription

LABEL = "atom.dev"
"""The prefix of Atom's labels: atom.dev/space, /exam, /node, /run, /service, /model, /kind."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "atom"}


# -- names ----------------------------------------------------------------------------------------


def dns_label(text: str, limit: int = 63, *, letter_first: bool = False) -> str:
    """`text` as a DNS-1123 label (lowercase alphanumerics and '-', at most `limit` characters)."""
    out = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:limit].strip("-")
    if letter_first and not out[:1].isalpha():
        out = ("x-" + out)[:limit].strip("-")
    return out or "x"


def label_value(text: str) -> str:
    """`text` as a label value (at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends)."""
    out = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", out)


def namespace_of(space: str, prefix: str = "") -> str:
    return dns_label(f"{prefix}{space}")


def job_name(desc: RunDescription) -> str:
    """`{node}-{run id}` (the node name shortened when needed)."""
    suffix = f"-{desc.ident}"
    return dns_label(desc.name, 63 - len(suffix)) + suffix


def service_name(service_type: str, model: str, version: str) -> str:
    """Seed 001: `{type}-{model}-{version digits}` (type `serving` when the service info has none)."""
    digits = "".join(c for c in version if c.isdigit()) or "0"
    return dns_label(f"{service_type or 'serving'}-{model}-{digits}", letter_first=True)


def object_name(desc: RunDescription) -> str:
    """The name of the Job (a run) or of the Deployment, Service and HPA (a service)."""
    if desc.kind == "service":
        return service_name(
            desc.service_type,
            desc.env.get("ATOM_MODEL_NAME", desc.name),
            desc.env.get("ATOM_MODEL_VERSION", ""),
        )
    return job_name(desc)


def secret_name(owner: str) -> str:
    return f"{owner[:57].rstrip('-')}-token"


def labels(desc: RunDescription, name: str) -> dict[str, str]:
    env = desc.env
    out = {
        **MANAGED_BY,
        f"{LABEL}/kind": desc.kind,
        f"{LABEL}/space": label_value(desc.space),
    }
    if desc.kind == "service":
        out[f"{LABEL}/service"] = label_value(name)
        out[f"{LABEL}/service-id"] = str(desc.ident)
    else:
        out[f"{LABEL}/run"] = str(desc.ident)
        out[f"{LABEL}/node"] = label_value(desc.name)
    for key, var in (("exam", "ATOM_EXAM_NAME"), ("model", "ATOM_MODEL_NAME")):
        if env.get(var):
            out[f"{LABEL}/{key}"] = label_value(env[var])
    return {k: v for k, v in out.items() if v}


def selector(desc: RunDescription, name: str) -> dict[str, str]:
    """The labels that pick the pods of this run or service."""
    if desc.kind == "service":
        return {f"{LABEL}/service": label_value(name)}
    return {f"{LABEL}/run": str(desc.ident)}
