"""From a stored run to a `RunDescription`: the agent's command, directories and built environment.

Pure functions of the settings and the run's frozen spec; the orchestrator adds what only the
store knows (names, the reserved model version) and hands the result to the chosen adapter.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from control import schemas as s
from control.dispatch.agent_env import declared, inherited
from control.dispatch.base import CodeRef, RunDescription
from control.schemas.resources import ResourceRequest, request_of, worker_plan
from control.settings import Settings


@dataclass(frozen=True)
class RunNames:
    """What the store knows of a run beyond its spec (for the injected ATOM_* variables)."""

    space: str = "default"
    exam: str = ""
    model_version: str = ""
    retries: int = 0
    """The node's maxRetries (a target that restarts agents itself, such as a Kubernetes Job)."""


def run_dirs(settings: Settings, run_id: int, *, create: bool = True) -> dict[str, Path]:
    """The per-run directories, created unless `create` is False (ATOM_DATA_DIR, ATOM_MODEL_DIR, ...)."""
    base = settings.runs_dir / str(run_id)
    dirs = {
        "ATOM_DATA_DIR": base / "data",
        "ATOM_MODEL_DIR": base / "model",
        "ATOM_LOG_DIR": base / "logs",
        "ATOM_SUMMARY_DIR": base / "summary",
        "ATOM_SHARE_DIR": settings.home / "share",
    }
    for path in dirs.values() if create else ():
        path.mkdir(parents=True, exist_ok=True)
    return dirs


def needs_ray(spec: s.TaskSpec) -> bool:
    """Whether a run's agent trains on Ray (several workers, or trainExecutor `ray`)."""
    conf = spec.operator.environment_conf
    executor = str(conf.get("trainExecutor") or "auto").lower()
    if spec.operator.operator_runtime_type != s.OperatorRuntimeType.TRAIN or executor in ("direct", "local"):
        return False
    return executor == "ray" or worker_plan(request_of(spec.service_info), conf).workers > 1


def host_identity() -> dict[str, str]:
    """ATOM_HOST_NAME / ATOM_HOST_IP of this host (Cube Studio's K8S_NODE_NAME / K8S_HOST_IP)."""
    name = socket.gethostname()
    try:
        ip = socket.gethostbyname(name)
    except OSError:
        ip = "127.0.0.1"
    return {"ATOM_HOST_NAME": name, "ATOM_HOST_IP": ip}


def base_env(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What every agent and service gets: the inherited basics plus control's URL."""
    env = inherited(os.environ if environ is None else environ, pass_env=settings.agent_pass_env)
    env["ATOM_CONTROL_URL"] = settings.callback_url
    env["ATOM_HOME"] = str(settings.home)
    if settings.env_name:
        env["ATOM_ENV"] = settings.env_name
    if settings.area:
        env["ATOM_AREA"] = settings.area
    return env


def describe_run(
    settings: Settings,
    spec: s.TaskSpec,
    *,
    token: str,
    names: RunNames,
    ray_address: str | None = None,
    environ: Mapping[str, str] | None = None,
    create_dirs: bool = True,
) -> RunDescription:
    """The description of one run of `spec` (its run id set), ready for an adapter.

    Args:
        create_dirs: make the run's directories (False: only describe it, e.g. to render it).
    """
    environ = os.environ if environ is None else environ
    run_id = spec.run_id
    dirs = run_dirs(settings, run_id, create=create_dirs)
    request = request_of(spec.service_info)
    plan = worker_plan(request, spec.operator.environment_conf)
    env = base_env(settings, environ)
    env.update({k: str(v) for k, v in dirs.items()})
    env.update(
        {
            "ATOM_RUN_ID": str(run_id),
            "ATOM_RUN_TOKEN": token,
            "ATOM_RUN_ATTEMPT": str(spec.attempt),
            "ATOM_NODE_NAME": spec.node_name,
            "ATOM_SPACE": names.space,
            "ATOM_POD_NAMESPACE": names.space,
            "ATOM_POD_NAME": f"atom-run-{run_id}",
            "ATOM_MODEL_PATH": str(dirs["ATOM_MODEL_DIR"]),
            "ATOM_RESOURCE_CPU": f"{request.cpu:g}",
            "ATOM_RESOURCE_GPU": str(request.gpu),
            "ATOM_RESOURCE_MEMORY": str(request.memory_mib),
            "ATOM_RESOURCE_NODES": str(request.nodes),
            "ATOM_TRAIN_WORKERS": str(plan.workers),
            # a third of control's timeout: two heartbeats may be lost before the run is failed
            "ATOM_HEARTBEAT_INTERVAL": f"{min(5.0, settings.heartbeat_timeout / 3):g}",
            **host_identity(),
        }
    )
    if names.exam:
        env["ATOM_EXAM_NAME"] = names.exam
    if spec.logical_date:
        env["ATOM_LOGICAL_DATE"] = spec.logical_date  # the moment a scheduled exam run stands for
    if spec.model is not None:
        env["ATOM_MODEL_NAME"] = spec.model.model_name
        if names.model_version:
            env["ATOM_MODEL_VERSION"] = names.model_version
    executor = spec.operator.environment_conf.get("trainExecutor")
    if executor:
        env["ATOM_TRAIN_EXECUTOR"] = str(executor)
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    env.update(declared(spec.operator.environment_conf, environ))
    env.update({str(k): str(v) for k, v in spec.envs.items()})
    env["ATOM_RUN_TOKEN"] = token  # never overridden by a declared variable
    op = spec.operator
    si = spec.service_info
    return RunDescription(
        kind="run",
        ident=run_id,
        name=spec.node_name,
        command=[settings.python or sys.executable, "-m", "runtime_agent", "run", "--run-id", str(run_id)],
        args=("run", "--run-id", str(run_id)),
        env=env,
        log_path=dirs["ATOM_LOG_DIR"] / "agent.log",
        resources=request,
        plan=plan,
        space=names.space,
        workdir=Path.cwd(),
        image=si.si_image_name if si is not None else "",
        code=CodeRef(mode=str(op.code_mode), address=op.code_address, version=op.code_version),
        attempt=spec.attempt,
        retries=names.retries,
        environment_conf=dict(op.environment_conf),
    )


def describe_service(
    settings: Settings,
    *,
    service_id: int,
    name: str,
    token: str,
    port: int,
    log_path: Path,
    run_spec: s.TaskSpec | None = None,
    space: str = "default",
    model_version: str = "",
    replicas: tuple[int, int] | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunDescription:
    """The description of an inference service's `atom-runtime serve` process.

    Args:
        run_spec: the spec of the run that trained the model: its service info gives the
            service's resources, image and type, its operator's environmentConf the placement.
        space: the space's name (a namespace on Kubernetes).
        model_version: the version served (ATOM_MODEL_VERSION, Cube Studio's KUBEFLOW_MODEL_VERSION).
        replicas: (min, max) replicas when they differ (an autoscaled service).
        environ: control's environment to take the inherited basics from (default os.environ).
    """
    env = base_env(settings, environ)
    env.update({"ATOM_SERVICE_TOKEN": token, "ATOM_SERVICE_ID": str(service_id), "ATOM_SPACE": space})
    si = run_spec.service_info if run_spec is not None else None
    if run_spec is not None and run_spec.model is not None:
        env["ATOM_MODEL_NAME"] = run_spec.model.model_name
    if model_version:
        env["ATOM_MODEL_VERSION"] = model_version
    return RunDescription(
        kind="service",
        ident=service_id,
        name=name,
        command=[
            settings.python or sys.executable,
            "-m",
            "runtime_agent",
            "serve",
            "--service-id",
            str(service_id),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        log_path=log_path,
        resources=ResourceRequest(cpu=0) if si is None else request_of(si),
        space=space,
        workdir=Path.cwd(),
        image=si.si_image_name if si is not None else "",
        args=("serve", "--service-id", str(service_id), "--host", "127.0.0.1", "--port", str(port)),
        environment_conf=dict(run_spec.operator.environment_conf) if run_spec is not None else {},
        replicas=replicas,
        service_type=si.si_type if si is not None else "",
    )
