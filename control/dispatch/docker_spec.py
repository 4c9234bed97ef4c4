"""What the Docker adapter asks the engine for: a container's name, labels, environment, binds and limits.

Pure functions of a `RunDescription` (and the adapter's settings), so every choice can be read and
tested without an engine:

- one container per run attempt (`atom-run-{id}-{attempt}`) or service (`atom-svc-{id}`), labelled
  with its kind, id, space, node or service name, the log file control keeps for it, and a digest
  of everything it was created with (a second start of the same description finds it again);
- the image's `atom-runtime` entrypoint with the description's `args`; a description without args
  (a plain command, as the conformance suite starts) runs its command with control's interpreter
  replaced by the image's `python3`;
- the description's environment minus what describes control's host (PATH, HOME, the virtualenv,
  library and CA paths, CUDA_VISIBLE_DEVICES): the image's own values win;
- control's home (ATOM_HOME) bound at the same path, so run directories, the model directory and
  FILE connections under it are the same paths inside; plus `ATOM_DOCKER_VOLUMES`;
- siCpu -> NanoCpus (`--cpus`) and OMP_NUM_THREADS (unless the run sets it), siMemory -> Memory
  with no swap on top (`--memory`), siGpu -> a device request for the granted GPU ids, else a
  count (`--gpus`);
- the user is control's own uid:gid, so whatever the agent writes under the bound home belongs to
  control (an image's non-root user could not write into run directories control made, and
  control could not always remove what it wrote); HOME is /tmp then unless control runs as root.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from control.dispatch.base import RunDescription

MIB = 1 << 20
PULL_POLICIES = ("missing", "always", "never")
IMAGE_PYTHON = "python3"
"""What runs a description that has no `args` (its command's interpreter is a path on control's host)."""

#: variables that describe control's host, not the container: the image's own values win
HOST_ONLY = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "PIP_CERT",
        "GIT_SSL_CAINFO",
        "CUDA_VISIBLE_DEVICES",
    }
)

L_KIND, L_ID, L_NAME, L_SPACE = "atom.kind", "atom.id", "atom.name", "atom.space"
L_RUN, L_NODE, L_ATTEMPT, L_SERVICE = "atom.run", "atom.node", "atom.attempt", "atom.service"
L_LOG, L_SPEC = "atom.log", "atom.spec"


@dataclass(frozen=True)
class DockerOptions:
    """The adapter's settings that shape a container (see `control.settings`: docker_*).

    Attributes:
        image: the image of a description that names none.
        network: the network mode (`host`: agents reach control on loopback).
        volumes: extra binds, `host:container[:ro]`.
        prefix: the first part of container names.
        labels: labels every container of this adapter carries (e.g. control's home).
        uid: the user the containers run as (None: control's own uid:gid).
    """

    image: str = "atom-agent:latest"
    network: str = "host"
    volumes: tuple[str, ...] = ()
    prefix: str = "atom"
    labels: dict[str, str] = field(default_factory=dict)
    uid: tuple[int, int] | None = None

    @property
    def user(self) -> tuple[int, int]:
        return self.uid if self.uid is not None else (os.getuid(), os.getgid())


def docker_prefix(home: Path) -> str:
    """`atom-` and 8 hex digits of control's home: one control's containers never take another's names."""
    return "atom-" + hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:8]


def container_name(desc: RunDescription, prefix: str = "atom") -> str:
    """`{prefix}-run-7-1` (run 7, attempt 1) or `{prefix}-svc-3` (service 3)."""
    if desc.kind == "service":
        return f"{prefix}-svc-{desc.ident}"
    return f"{prefix}-{desc.kind}-{desc.ident}-{desc.attempt}"


def container_env(desc: RunDescription, options: DockerOptions) -> dict[str, str]:
    """The description's environment without control's host paths (HOME=/tmp for a non-root user).

    With a CPU limit, OMP_NUM_THREADS is that many CPUs (rounded up) unless the run sets it: a
    container sees every core of its host, and a torch or BLAS pool that size under a quota of
    fewer CPUs is throttled (Ray sets it for its workers the same way; the local adapter's CPU
    affinity does it for processes).
    """
    env = {key: value for key, value in desc.env.items() if key not in HOST_ONLY}
    if options.user[0] != 0:
        env["HOME"] = "/tmp"  # the image's home belongs to its own user, not to control's uid
    if desc.resources.total_cpu > 0:
        env.setdefault("OMP_NUM_THREADS", str(math.ceil(desc.resources.total_cpu)))
    return env


def entrypoint_and_command(desc: RunDescription) -> tuple[list[str] | None, list[str] | None]:
    """(entrypoint override, command): the image's entrypoint with `args`, else the command itself."""
    if desc.args:
        return None, list(desc.args)
    if not desc.command:
        raise ValueError(f"{desc.kind} {desc.ident} has neither args nor a command")
    head, *rest = desc.command
    if PurePosixPath(head).name.startswith("python"):
        return [IMAGE_PYTHON, *rest], None
    return list(desc.command), None


def binds(desc: RunDescription, options: DockerOptions) -> list[str]:
    """Control's home at the same path (when the description names it), then the configured volumes."""
    out = []
    home = desc.env.get("ATOM_HOME")
    if home:
        out.append(f"{home}:{home}")
    out.extend(v for v in options.volumes if v not in out)
    return out


def working_dir(desc: RunDescription, mounted: list[str]) -> str | None:
    """The description's workdir as the container sees it, when a bind brings it in (else the image's)."""
    if desc.workdir is None:
        return None
    for spec in mounted:
        source, _, rest = spec.partition(":")
        target = rest.split(":", 1)[0]
        try:
            relative = Path(desc.workdir).relative_to(source)
        except ValueError:
            continue
        return str(PurePosixPath(target) / relative.as_posix()) if str(relative) != "." else target
    return None


def limits(desc: RunDescription, gpus: list[str]) -> dict[str, Any]:
    """siCpu / siMemory / siGpu as the engine's HostConfig (`--cpus`, `--memory`, `--gpus`)."""
    from docker.types import DeviceRequest  # deferred: docker is imported only where it is used

    req = desc.resources
    out: dict[str, Any] = {}
    if req.total_cpu > 0:
        out["nano_cpus"] = int(round(req.total_cpu * 1e9))
    if req.total_memory_mib > 0:
        out["mem_limit"] = req.total_memory_mib * MIB
        out["memswap_limit"] = req.total_memory_mib * MIB  # no swap on top of the limit
    if gpus:
        out["device_requests"] = [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])]
    elif req.total_gpu > 0:
        out["device_requests"] = [DeviceRequest(count=req.total_gpu, capabilities=[["gpu"]])]
    return out


def labels(desc: RunDescription, options: DockerOptions) -> dict[str, str]:
    out = {
        **options.labels,
        L_KIND: desc.kind,
        L_ID: str(desc.ident),
        L_NAME: desc.name,
        L_SPACE: desc.space,
        L_LOG: str(desc.log_path),
    }
    if desc.kind == "service":
        out[L_SERVICE] = desc.name
    else:
        out.update({L_RUN: str(desc.ident), L_NODE: desc.name, L_ATTEMPT: str(desc.attempt)})
    return out


def create_kwargs(
    desc: RunDescription, options: DockerOptions, *, image: str, gpus: list[str]
) -> dict[str, Any]:
    """The keyword arguments of `client.containers.create` for `desc` (digest label included)."""
    entrypoint, command = entrypoint_and_command(desc)
    mounted = binds(desc, options)
    uid, gid = options.user
    kwargs: dict[str, Any] = {
        "image": image,
        "name": container_name(desc, options.prefix),
        "command": command,
        "environment": container_env(desc, options),
        "labels": labels(desc, options),
        "network_mode": options.network,
        "volumes": mounted,
        "user": f"{uid}:{gid}",
        "init": True,  # tini as PID 1 passes SIGTERM on to the entrypoint and reaps its children
        "stop_signal": "SIGTERM",
        "detach": True,
        **limits(desc, gpus),
    }
    if entrypoint is not None:
        kwargs["entrypoint"] = entrypoint
    workdir = working_dir(desc, mounted)
    if workdir is not None:
        kwargs["working_dir"] = workdir
    kwargs["labels"][L_SPEC] = spec_digest(kwargs)
    return kwargs


def spec_digest(kwargs: dict[str, Any]) -> str:
    """A digest of what a container is created with: equal digests, the same container."""
    plain = {k: v for k, v in kwargs.items() if k != "labels"}
    plain["labels"] = {k: v for k, v in kwargs["labels"].items() if k != L_SPEC}
    text = json.dumps(plain, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


__all__ = [
    "HOST_ONLY",
    "MIB",
    "PULL_POLICIES",
    "DockerOptions",
    "container_env",
    "container_name",
    "create_kwargs",
]
