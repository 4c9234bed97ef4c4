"""What a run asks for, and how that request becomes training workers: shared by control and agent.

A service info's `siCpu`, `siGpu`, `siMemory` (MiB), `siDisplayMemory` (GPU MiB) and `siNodeNum`
are per node (a replica, a pod, a worker host) and `siNodeNum` is the node count, as in seed 000.
For training that becomes one worker per requested GPU (`siNodeNum * siGpu` workers, one GPU and an
equal share of the node's CPUs and memory each) or, without GPUs, `siNodeNum` CPU workers of `siCpu`
CPUs each. Control uses the same plan for a Ray job's entrypoint resources and for the local
adapter's limits; the agent uses it for Ray Train's `ScalingConfig`. environmentConf may override
the worker count (`numWorkers`), `useGpu` and `cpusPerWorker`, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class _ServiceInfoLike(Protocol):
    si_cpu: int
    si_gpu: int
    si_memory: int
    si_display_memory: int
    si_node_num: int


@dataclass(frozen=True)
class ResourceRequest:
    """The resources of one run (per node) and its node count.

    Attributes:
        cpu: CPUs per node (0: no limit asked).
        gpu: GPUs per node.
        memory_mib: memory per node in MiB (0: no limit asked).
        gpu_memory_mib: GPU memory per GPU in MiB (0: any).
        nodes: how many nodes (replicas, worker hosts).
    """

    cpu: float = 1.0
    gpu: int = 0
    memory_mib: int = 0
    gpu_memory_mib: int = 0
    nodes: int = 1

    @property
    def total_cpu(self) -> float:
        return self.cpu * self.nodes

    @property
    def total_gpu(self) -> int:
        return self.gpu * self.nodes

    @property
    def total_memory_mib(self) -> int:
        return self.memory_mib * self.nodes

    def describe(self) -> str:
        """`2 CPU, 1 GPU, 4096 MiB` (totals over every node)."""
        parts = [f"{self.total_cpu:g} CPU"]
        if self.total_gpu:
            parts.append(f"{self.total_gpu} GPU")
        if self.memory_mib:
            parts.append(f"{self.total_memory_mib} MiB")
        if self.nodes > 1:
            parts.append(f"over {self.nodes} nodes")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "cpu": self.cpu,
            "gpu": self.gpu,
            "memoryMib": self.memory_mib,
            "gpuMemoryMib": self.gpu_memory_mib,
            "nodes": self.nodes,
        }


def request_of(service_info: _ServiceInfoLike | None) -> ResourceRequest:
    """The request a service info makes (none: 1 CPU, no limits, one node)."""
    if service_info is None:
        return ResourceRequest()
    return ResourceRequest(
        cpu=float(service_info.si_cpu),
        gpu=int(service_info.si_gpu),
        memory_mib=int(service_info.si_memory),
        gpu_memory_mib=int(service_info.si_display_memory),
        nodes=max(1, int(service_info.si_node_num)),
    )


@dataclass(frozen=True)
class WorkerPlan:
    """How many training workers a run gets and what each one holds.

    Attributes:
        workers: the number of training workers (Ray Train's num_workers).
        use_gpu: each worker holds `gpus_per_worker` GPUs.
        cpus_per_worker: CPUs reserved per worker.
        gpus_per_worker: GPUs per worker (1 when use_gpu).
        memory_mib_per_worker: memory per worker in MiB (0: not reserved).
    """

    workers: int
    use_gpu: bool
    cpus_per_worker: float
    gpus_per_worker: float
    memory_mib_per_worker: int

    def resources_per_worker(self) -> dict[str, float]:
        """Ray Train's `resources_per_worker` (CPU, GPU, memory in bytes)."""
        out: dict[str, float] = {"CPU": self.cpus_per_worker}
        if self.use_gpu:
            out["GPU"] = self.gpus_per_worker
        if self.memory_mib_per_worker:
            out["memory"] = float(self.memory_mib_per_worker) * 1024 * 1024
        return out


def worker_plan(request: ResourceRequest, environment_conf: Mapping[str, Any] | None = None) -> WorkerPlan:
    """One worker per requested GPU, else one CPU worker per node; environmentConf may override.

    Args:
        request: the run's resource request.
        environment_conf: the operator's environmentConf (`numWorkers`, `useGpu`, `cpusPerWorker`).
    """
    conf = environment_conf or {}
    use_gpu = request.gpu > 0 and bool(conf.get("useGpu", True))
    if use_gpu:
        workers = request.gpu * request.nodes
        per_node = request.gpu
    else:
        workers = request.nodes
        per_node = 1
    if conf.get("numWorkers"):
        workers = max(1, int(conf["numWorkers"]))
    cpus = float(conf["cpusPerWorker"]) if conf.get("cpusPerWorker") else max(request.cpu / per_node, 0.0)
    if cpus <= 0:
        cpus = 1.0
    memory = request.memory_mib // per_node if request.memory_mib else 0
    return WorkerPlan(
        workers=max(1, workers),
        use_gpu=use_gpu,
        cpus_per_worker=cpus,
        gpus_per_worker=1.0 if use_gpu else 0.0,
        memory_mib_per_worker=memory,
    )


__all__ = ["ResourceRequest", "WorkerPlan", "request_of", "worker_plan"]
