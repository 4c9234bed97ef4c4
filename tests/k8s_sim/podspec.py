"""Reading a pod spec as a scheduler and a kubelet do: quantities, requests, QoS, env (with
secretKeyRef, configMapKeyRef and the downward API), `$(VAR)` expansion, volumes."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.k8s_sim.runtime import Mount

GPU = "nvidia.com/gpu"
_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "m": 10**-3, "": 1,
}  # fmt: skip
_QUANTITY = re.compile(r"^([0-9.]+(?:[eE][-+]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P|m)?$")
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """The container cannot be configured (the kubelet's CreateContainerConfigError)."""


def quantity(value: Any) -> float:
    """`500m` -> 0.5, `512Mi` -> 536870912, `2` -> 2."""
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2) or ""]


def container_requests(container: Mapping[str, Any]) -> dict[str, float]:
    """What the scheduler counts: requests, else limits (the API server defaults one to the other)."""
    res = container.get("resources") or {}
    out = {k: quantity(v) for k, v in (res.get("limits") or {}).items()}
    out.update({k: quantity(v) for k, v in (res.get("requests") or {}).items()})
    return out


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    total: dict[str, float] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        for k, v in container_requests(c).items():
            total[k] = total.get(k, 0) + v
    return total


def host_ports(pod: Mapping[str, Any]) -> set[int]:
    """The ports the pod's containers listen on: on the simulator's host network they are host ports."""
    return {
        int(p["containerPort"])
        for c in (pod.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
        if p.get("containerPort")
    }


def qos_class(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    limits = [(c.get("resources") or {}).get("limits") or {} for c in containers]
    requests = [(c.get("resources") or {}).get("requests") or {} for c in containers]
    if not any(limits) and not any(requests):
        return "BestEffort"
    guaranteed = all(
        lim.get(k) is not None and quantity(lim[k]) == quantity(req.get(k, lim[k]))
        for lim, req in zip(limits, requests, strict=True)
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _field(pod: Mapping[str, Any], path: str) -> str:
    if m := re.match(r"^metadata\.(labels|annotations)\['([^']+)'\]$", path):
        return str(((pod.get("metadata") or {}).get(m.group(1)) or {}).get(m.group(2), ""))
    value: Any = pod
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def container_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], read: Callable[[str, str], dict[str, Any] | None]
) -> dict[str, str]:
    """The container's environment; `read(kind, name)` fetches a Secret or ConfigMap of the pod's
    namespace (None when it does not exist)."""

    def source(kind: str, name: str, optional: bool) -> dict[str, str] | None:
        obj = read(kind, name)
        if obj is None:
            if optional:
                return None
            raise ConfigError(f'{kind.lower()} "{name}" not found')
        data = obj.get("data") or {}
        if kind == "Secret":
            return {k: base64.b64decode(v).decode() for k, v in data.items()}
        return dict(data)

    env: dict[str, str] = {}
    for ref in container.get("envFrom") or []:
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in ref:
                values = source(kind, ref[key]["name"], bool(ref[key].get("optional")))
                env.update({ref.get("prefix", "") + k: v for k, v in (values or {}).items()})
    for var in container.get("env") or []:
        name, value_from = var["name"], var.get("valueFrom")
        if value_from is None:
            env[name] = expand(var.get("value", ""), env)
            continue
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if key in value_from:
                ref = value_from[key]
                values = source(kind, ref["name"], bool(ref.get("optional")))
                if values is None:
                    break
                if ref["key"] not in values:
                    if ref.get("optional"):
                        break
                    ns = (pod.get("metadata") or {}).get("namespace")
                    raise ConfigError(f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}")
                env[name] = values[ref["key"]]
        if "fieldRef" in value_from:
            env[name] = _field(pod, value_from["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in value_from:
            ref = value_from["resourceFieldRef"]
            kind, _, res = ref["resource"].partition(".")
            amount = quantity(((container.get("resources") or {}).get(kind) or {}).get(res, 0))
            divisor = quantity(ref.get("divisor", "1"))
            env[name] = str(int(-(-amount // divisor)))
    return env


def expand(text: str, env: Mapping[str, str]) -> str:
    """`$(VAR)` from the container's env (unknown references stay as they are), `$$` -> `$`."""
    return _VAR.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def mounts(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    pod_dir: Path,
    read: Callable[[str, str], dict[str, Any] | None],
) -> list[Mount]:
    """Host directories for the container's volumeMounts: emptyDir and Secret / ConfigMap volumes
    under `pod_dir`, hostPath as it is (created for DirectoryOrCreate)."""
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    out = []
    for vm in container.get("volumeMounts") or []:
        vol = volumes.get(vm["name"])
        if vol is None:
            raise ConfigError(f'volume "{vm["name"]}" is not in the pod')
        if "hostPath" in vol:
            host = Path(vol["hostPath"]["path"])
            if vol["hostPath"].get("type") == "DirectoryOrCreate":
                host.mkdir(parents=True, exist_ok=True)
        elif "emptyDir" in vol or "secret" in vol or "configMap" in vol:
            host = pod_dir / "volumes" / vm["name"]
            if not host.exists():
                host.mkdir(parents=True)
                host.chmod(0o777)  # as the kubelet makes an emptyDir: any uid of the image may write
                kind, key = ("Secret", "secret") if "secret" in vol else ("ConfigMap", "configMap")
                if key in vol:
                    name = vol[key].get("secretName") or vol[key].get("name", "")
                    obj = read(kind, name)
                    if obj is None:
                        raise ConfigError(f'{kind.lower()} "{name}" not found')
                    for k, v in (obj.get("data") or {}).items():
                        (host / k).write_bytes(base64.b64decode(v) if kind == "Secret" else str(v).encode())
        else:
            raise ConfigError(
                f"volume {vm['name']!r}: the simulator mounts emptyDir, hostPath, secret, configMap"
            )
        if vm.get("subPath"):
            host = host / vm["subPath"]
        out.append(Mount(str(host), vm["mountPath"], bool(vm.get("readOnly"))))
    return out
