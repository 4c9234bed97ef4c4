"""A simulated pod's state on its kubelet (PodRun) and what the kubelet makes of it: the pod's
status (phase, conditions, containerStatuses) and the result of a probe."""

from __future__ import annotations

import socket
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.k8s_sim import podspec
from tests.k8s_sim.client import Obj
from tests.k8s_sim.runtime import Container, Exit, stamp


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    node: str
    pod_dir: Path
    containers: list[Container] = field(default_factory=list)  # every attempt, newest last
    running: Container | None = None
    waiting: tuple[str, str] = ("ContainerCreating", "")
    exit: Exit | None = None  # how the newest attempt ended
    last_exit: Exit | None = None  # how the one before ended (lastState)
    restarts: int = 0
    pulls: int = 0
    next_try: float = 0.0
    ready: bool = False
    stopping: bool = False
    lost: bool = False
    probes: dict[str, dict[str, float]] = field(default_factory=dict)
    since: dict[str, tuple[str, str]] = field(default_factory=dict)
    started: str = field(default_factory=stamp)
    reported: Obj | None = None


def first_container(pod: Obj) -> Obj:
    return dict(((pod.get("spec") or {}).get("containers") or [{}])[0])


def container_state(run: PodRun) -> Obj:
    if run.running is not None:
        return {"running": {"startedAt": run.running.started_at}}
    if run.exit is not None and run.waiting[0] != "CrashLoopBackOff":
        return {"terminated": terminated_state(run.exit, run.containers[-1] if run.containers else None)}
    reason, message = run.waiting
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def terminated_state(how: Exit, container: Container | None) -> Obj:
    out: Obj = {
        "exitCode": how.code,
        "reason": how.reason,
        "startedAt": how.started_at,
        "finishedAt": how.finished_at,
    }
    if how.message:
        out["message"] = how.message
    if container is not None:
        out["containerID"] = container.id
    return out


def pod_status(pod: Obj, run: PodRun, final: bool = False) -> Obj:
    """The pod's status as its kubelet reports it now."""
    policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
    container = first_container(pod)
    done = (
        run.exit is not None
        and run.running is None
        and (final or policy == "Never" or (policy == "OnFailure" and run.exit.code == 0))
    )
    if done:
        assert run.exit is not None
        phase = "Succeeded" if run.exit.code == 0 else "Failed"
    elif run.running is not None or run.restarts or run.exit is not None:
        phase = "Running"
    else:
        phase = "Pending"
    ready = run.ready and run.running is not None and not done
    why: Obj = {"reason": "PodCompleted"} if done else {} if ready else {
        "reason": "ContainersNotReady",
        "message": f"containers with unready status: [{container.get('name')}]",
    }  # fmt: skip
    conditions = [
        condition(run, "PodReadyToStartContainers", "True"),
        condition(run, "Initialized", "True"),
        condition(run, "Ready", "True" if ready else "False", why),
        condition(run, "ContainersReady", "True" if ready else "False", why),
        condition(run, "PodScheduled", "True"),
    ]
    last = {"terminated": terminated_state(run.last_exit, None)} if run.last_exit and run.running else {}
    if run.waiting[0] == "CrashLoopBackOff" and run.exit is not None:
        last = {"terminated": terminated_state(run.exit, run.containers[-1] if run.containers else None)}
    status = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": run.started,
        "qosClass": podspec.qos_class(pod),
        "containerStatuses": [
            {
                "name": container.get("name"),
                "image": container.get("image"),
                "imageID": "",
                "containerID": run.containers[-1].id if run.containers else None,
                "ready": ready,
                "started": run.running is not None,
                "restartCount": run.restarts,
                "state": container_state(run),
                "lastState": last,
            }
        ],
    }
    return status


def condition(run: PodRun, kind: str, value: str, why: Obj | None = None) -> Obj:
    held = run.since.get(kind)
    if held is None or held[0] != value:
        run.since[kind] = held = (value, stamp())
    return {
        "type": kind,
        "status": value,
        "lastProbeTime": None,
        "lastTransitionTime": held[1],
        **(why or {}),
    }


def check_probe(probe: Obj, container: Obj) -> bool:
    def port_of(value: Any) -> int:
        if isinstance(value, int) or str(value).isdigit():
            return int(value)
        return int(next(p["containerPort"] for p in container.get("ports") or [] if p.get("name") == value))

    timeout = probe.get("timeoutSeconds", 1)
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            host = f"{get.get('host') or '127.0.0.1'}:{port_of(get['port'])}"
            url = f"{get.get('scheme', 'HTTP').lower()}://{host}{get.get('path', '/')}"
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a probe
                return 200 <= response.status < 400
        if "tcpSocket" in probe:
            with socket.create_connection(
                ("127.0.0.1", port_of(probe["tcpSocket"]["port"])), timeout=timeout
            ):
                return True
    except (OSError, StopIteration, ValueError):
        return False
    return True  # exec and gRPC probes are not run: counted as passing
