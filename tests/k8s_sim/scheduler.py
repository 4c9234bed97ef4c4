"""The simulated nodes and the scheduler that binds pods to them (by requests, nodeSelector,
taints and host ports), saying why when it cannot, in the scheduler's own words."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tests.k8s_sim.client import Api, Obj, Store, meta
from tests.k8s_sim.podspec import GPU, host_ports, pod_requests
from tests.k8s_sim.runtime import stamp

UNREACHABLE = "node.kubernetes.io/unreachable"


@dataclass
class Node:
    name: str
    cpu: float = 4
    memory: int = 8 * 2**30
    gpus: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    lost: bool = False

    def manifest(self) -> Obj:
        capacity = {"cpu": f"{self.cpu:g}", "memory": f"{self.memory // 2**10}Ki", "pods": "110"}
        if self.gpus:
            capacity[GPU] = str(self.gpus)
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", **self.labels}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "status": {
                "capacity": capacity,
                "allocatable": dict(capacity),
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.name},
                ],
                "conditions": [self.ready_condition()],
            },
        }

    def ready_condition(self) -> Obj:
        if self.lost:
            return {
                "type": "Ready",
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastTransitionTime": stamp(),
            }
        return {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastTransitionTime": stamp(),
        }


def terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Scheduler:
    def __init__(self, nodes: list[Node], store: Store, api: Api) -> None:
        self.nodes = nodes
        self.store = store
        self.api = api

    def _why_not(self, pod: Obj, node: Node, held: dict[str, dict[str, float]], ports: set[int]) -> list[str]:
        spec = pod.get("spec") or {}
        labels = node.manifest()["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            return ["node(s) didn't match Pod's node affinity/selector"]
        if node.lost and not any(
            t.get("key") == UNREACHABLE or (t.get("operator") == "Exists" and not t.get("key"))
            for t in spec.get("tolerations") or []
        ):
            return [f"node(s) had untolerated taint {{{UNREACHABLE}: }}"]
        for claim in (
            v["persistentVolumeClaim"]["claimName"]
            for v in spec.get("volumes") or []
            if "persistentVolumeClaim" in v
        ):
            return [f'persistentvolumeclaim "{claim}" not found']
        want, used = pod_requests(pod), held.get(node.name, {})
        out = []
        for res, total in (("cpu", node.cpu), ("memory", node.memory), (GPU, node.gpus)):
            if want.get(res, 0) > total - used.get(res, 0) + 1e-9:
                out.append(f"Insufficient {res}")
        if host_ports(pod) & ports:
            out.append("node(s) didn't have free ports for the requested pod ports")
        return out

    def schedule(self, pod: Obj) -> None:
        """Bind `pod` to the first node that can hold it, or say why none can (PodScheduled=False)."""
        held: dict[str, dict[str, float]] = {}
        ports: set[int] = set()
        for other in self.store.all("pods"):
            node = (other.get("spec") or {}).get("nodeName")
            if node and not terminal(other) and meta(other)["uid"] != meta(pod)["uid"]:
                for res, amount in pod_requests(other).items():
                    held.setdefault(node, {})[res] = held.get(node, {}).get(res, 0) + amount
                ports |= host_ports(other)  # one host network under every simulated node
        reasons: Counter[str] = Counter()
        for node in self.nodes:
            why = self._why_not(pod, node, held, ports)
            if not why:
                self._bind(pod, node)
                return
            reasons.update(why)
        total = len(self.nodes)
        detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        helpful = all(r.startswith("Insufficient") for r in reasons)
        verdict = (
            "No preemption victims found for incoming pod"
            if helpful
            else "Preemption is not helpful for scheduling"
        )
        preemption = f"preemption: 0/{total} nodes are available: {total} {verdict}."
        message = f"0/{total} nodes are available: {detail}. {preemption}"
        status = pod.get("status") or {}
        current = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if current and current.get("message") == message:
            return
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": stamp(),
        }
        self.api.patch_status(
            "pods", meta(pod)["namespace"], meta(pod)["name"], {"phase": "Pending", "conditions": [condition]}
        )

    def _bind(self, pod: Obj, node: Node) -> None:
        # a real scheduler POSTs pods/NAME/binding; the stand-in API server takes the same change as a patch
        self.api.patch("pods", meta(pod)["namespace"], meta(pod)["name"], {"spec": {"nodeName": node.name}})
        condition = {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": stamp(),
        }
        self.api.patch_status(
            "pods", meta(pod)["namespace"], meta(pod)["name"], {"phase": "Pending", "conditions": [condition]}
        )

    def node(self, name: str | None) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def pending(self) -> list[Obj]:
        return [
            p
            for p in self.store.all("pods")
            if not (p.get("spec") or {}).get("nodeName")
            and not meta(p).get("deletionTimestamp")
            and not terminal(p)
        ]
