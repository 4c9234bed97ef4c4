"""Where a pod goes and what it mounts, from the operator's environmentConf (pure functions).

Keys read (all optional):

- `nodeSelector`: `{label: value}`.
- `tolerations`: a list of Kubernetes tolerations (`{key, operator, value, effect, tolerationSeconds}`).
- `volumes`: a list of `{name, mountPath, readOnly?, subPath?, <one volume source>}`, the source as
  Kubernetes spells it (`persistentVolumeClaim: {claimName}`, `hostPath: {path}`, `configMap`,
  `secret`, `emptyDir`, `nfs`), or Cube Studio's string `"claim(pvc):/mnt,/data(hostpath):/data"`
  (kinds pvc, hostpath, configmap, secret, memory).
- `timeoutSeconds`: the run's deadline (a Job's activeDeadlineSeconds).
- `terminationGracePeriodSeconds`: seconds between SIGTERM and SIGKILL when a pod is stopped.
- `autoscale`: a service's HPA targets, Cube Studio style `"cpu:50%,mem:60%"` (default cpu 80%).

A value of the wrong shape is refused with one line naming the key (`BadPlacement`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from control.errors import DispatchFailed

SOURCES = ("persistentVolumeClaim", "hostPath", "configMap", "secret", "emptyDir", "nfs", "projected")
MOUNT_KEYS = ("mountPath", "readOnly", "subPath")
DEFAULT_GRACE = 10
"""terminationGracePeriodSeconds when environmentConf names none (the seam's default stop grace)."""


class BadPlacement(DispatchFailed):
    """environmentConf asks for a placement Kubernetes cannot take (the message names the key)."""

    status_code = 422


def node_selector(conf: Mapping[str, Any]) -> dict[str, str]:
    value = conf.get("nodeSelector") or {}
    if not isinstance(value, Mapping):
        raise BadPlacement(f"environmentConf.nodeSelector must be a mapping of label: value, not {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def tolerations(conf: Mapping[str, Any]) -> list[dict[str, Any]]:
    value = conf.get("tolerations") or []
    if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
        raise BadPlacement(f"environmentConf.tolerations must be a list of tolerations, not {value!r}")
    allowed = {"key", "operator", "value", "effect", "tolerationSeconds"}
    out = []
    for i, tol in enumerate(value):
        unknown = set(tol) - allowed
        if unknown:
            raise BadPlacement(
                f"environmentConf.tolerations[{i}] has unknown keys {sorted(unknown)} "
                f"(a toleration has {', '.join(sorted(allowed))})"
            )
        out.append(dict(tol))
    return out


def _cube_volumes(text: str) -> list[dict[str, Any]]:
    """Cube Studio's `source(kind):mountPath` entries, comma separated."""
    out: list[dict[str, Any]] = []
    for i, item in enumerate(p.strip() for p in text.split(",") if p.strip()):
        match = re.fullmatch(r"(?P<src>[^()]+)\((?P<kind>[a-zA-Z]+)\):(?P<mount>/\S*)", item)
        if match is None:
            raise BadPlacement(
                f"environmentConf.volumes entry {item!r} is not `source(kind):/mount/path` "
                "(kind pvc, hostpath, configmap, secret or memory)"
            )
        src, kind, mount = match["src"].strip(), match["kind"].lower(), match["mount"]
        name = f"vol-{i}"
        if kind == "pvc":
            out.append({"name": name, "mountPath": mount, "persistentVolumeClaim": {"claimName": src}})
        elif kind == "hostpath":
            out.append({"name": name, "mountPath": mount, "hostPath": {"path": src}})
        elif kind == "configmap":
            out.append({"name": name, "mountPath": mount, "configMap": {"name": src}})
        elif kind == "secret":
            out.append({"name": name, "mountPath": mount, "secret": {"secretName": src}})
        elif kind == "memory":
            out.append({"name": name, "mountPath": mount, "emptyDir": {"medium": "Memory", "sizeLimit": src}})
        else:
            raise BadPlacement(
                f"environmentConf.volumes entry {item!r}: unknown kind {kind!r} "
                "(pvc, hostpath, configmap, secret or memory)"
            )
    return out


def volumes(conf: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the pod's volumes, the container's volumeMounts) that environmentConf asks for."""
    value = conf.get("volumes") or []
    entries = _cube_volumes(value) if isinstance(value, str) else value
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise BadPlacement(f"environmentConf.volumes must be a list of volumes or a string, not {value!r}")
    vols: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for i, entry in enumerate(entries):
        name, mount = entry.get("name"), entry.get("mountPath")
        sources = [k for k in SOURCES if k in entry]
        if not name or not mount or len(sources) != 1:
            raise BadPlacement(
                f"environmentConf.volumes[{i}] needs a name, a mountPath and one source "
                f"({', '.join(SOURCES)}): {dict(entry)!r}"
            )
        unknown = set(entry) - {"name", *MOUNT_KEYS, *SOURCES}
        if unknown:
            raise BadPlacement(f"environmentConf.volumes[{i}] has unknown keys {sorted(unknown)}")
        vols.append({"name": str(name), sources[0]: entry[sources[0]]})
        mounts.append({"name": str(name), **{k: entry[k] for k in MOUNT_KEYS if k in entry}})
    return vols, mounts


def _seconds(conf: Mapping[str, Any], key: str) -> int | None:
    value = conf.get(key)
    if value in (None, "", 0):
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise BadPlacement(
            f"environmentConf.{key} must be a whole number of seconds, not {value!r}"
        ) from None
    if seconds <= 0:
        raise BadPlacement(f"environmentConf.{key} must be positive, not {seconds}")
    return seconds


def deadline(conf: Mapping[str, Any]) -> int | None:
    """A run's deadline in seconds (Job activeDeadlineSeconds); None: none."""
    return _seconds(conf, "timeoutSeconds")


def grace(conf: Mapping[str, Any]) -> int:
    """The pod's terminationGracePeriodSeconds."""
    return _seconds(conf, "terminationGracePeriodSeconds") or DEFAULT_GRACE


def autoscale_metrics(conf: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The HPA's metrics: average utilization targets of cpu and memory (default cpu 80%)."""
    text = str(conf.get("autoscale") or "cpu:80%")
    names = {"cpu": "cpu", "mem": "memory", "memory": "memory"}
    out = []
    for item in (p.strip() for p in text.split(",") if p.strip()):
        match = re.fullmatch(r"(?P<what>[a-z]+):(?P<pct>\d+)%?", item.lower())
        if match is None or match["what"] not in names or not 0 < int(match["pct"]) <= 100:
            raise BadPlacement(
                f"environmentConf.autoscale entry {item!r} is not `cpu:N%` or `mem:N%` "
                "(GPU utilization needs a custom metrics adapter Atom does not configure)"
            )
        out.append(
            {
                "type": "Resource",
                "resource": {
                    "name": names[match["what"]],
                    "target": {"type": "Utilization", "averageUtilization": int(match["pct"])},
                },
            }
        )
    return out
