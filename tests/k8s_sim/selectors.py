"""Label and field selectors as the Kubernetes API server reads them (`labelSelector`,
`fieldSelector` query parameters), and the name and label rules it enforces on create."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s,]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

Predicate = Callable[[Mapping[str, Any]], bool]


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b=c` is two terms)."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t for t in terms if t.strip()]


def label_selector(text: str | None) -> Predicate:
    """A predicate on an object for `labelSelector` (equality- and set-based terms, ANDed)."""
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    for term in _split_terms(text or ""):
        if m := _SET.match(term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                checks.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif m := _EQ.match(term):
            key, op, value = m.groups()
            if op == "!=":
                checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                checks.append(lambda lb, k=key, v=value: lb.get(k) == v)
        elif m := _EXISTS.match(term):
            negate, key = m.group(1) == "!", m.group(2)
            checks.append(lambda lb, k=key, n=negate: (k in lb) != n)
        else:
            raise ValueError(f"unable to parse requirement: {term!r}")

    def match(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return match


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def field_selector(text: str | None) -> Predicate:
    """A predicate for `fieldSelector` (`metadata.name=x,status.phase!=Running`)."""
    checks: list[Predicate] = []
    for term in _split_terms(text or ""):
        m = _EQ.match(term)
        if not m:
            raise ValueError(f"invalid field selector: {term!r}")
        path, op, value = m.groups()
        if op == "!=":
            checks.append(lambda o, p=path, v=value: _field(o, p) != v)
        else:
            checks.append(lambda o, p=path, v=value: _field(o, p) == v)
    return lambda obj: all(check(obj) for check in checks)


def name_errors(kind: str, name: str) -> list[str]:
    """What the API server would refuse in an object's name (the rule depends on the kind)."""
    if kind in {"Service", "Namespace"}:
        rule, what = (
            (DNS1035_LABEL, "RFC 1035 label") if kind == "Service" else (DNS1123_LABEL, "RFC 1123 label")
        )
        if len(name) > 63 or not rule.match(name):
            return [f"metadata.name: Invalid value: {name!r}: a lowercase {what} (at most 63 characters)"]
        return []
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain"]
    if kind == "Job" and len(name) > 63:  # its pods carry it as the job-name label
        return [f"metadata.name: Invalid value: {name!r}: must be no more than 63 characters"]
    return []


def label_errors(labels: Mapping[str, Any] | None, where: str = "metadata.labels") -> list[str]:
    errors = []
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if len(name) > 63 or not LABEL_NAME.match(name) or (prefix and not DNS1123_SUBDOMAIN.match(prefix)):
            errors.append(f"{where}: Invalid value: {key!r}: not a valid label key")
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            errors.append(f"{where}: Invalid value: {value!r}: a valid label value (at most 63 characters)")
    return errors


def admission_errors(kind: str, obj: Mapping[str, Any], schema_version: str) -> list[str]:
    """Names, labels and the official schema (kubernetes-validate, strict), as the API server's
    validation refuses them."""
    import kubernetes_validate

    meta = obj["metadata"]
    errors = name_errors(kind, meta["name"]) + label_errors(meta.get("labels"))
    template = (obj.get("spec") or {}).get("template") or {}
    errors += label_errors((template.get("metadata") or {}).get("labels"), "spec.template.metadata.labels")
    if not errors:
        try:
            kubernetes_validate.validate(dict(obj), schema_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{'.'.join(str(p) for p in exc.path)}: {exc.message}")
    return errors
