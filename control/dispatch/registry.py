"""The adapters a control has, built from its settings: `local` always, `ray` and `docker` always (lazy)."""

from __future__ import annotations

from control.dispatch.base import Adapter
from control.dispatch.docker import DockerAdapter, engine_url
from control.dispatch.docker_spec import DockerOptions
from control.dispatch.local import LocalAdapter
from control.dispatch.local_limits import LocalInventory, parse_gpus
from control.dispatch.ray import RayAdapter
from control.dispatch.ray_head import RayHead
from control.settings import Settings


def build_adapters(settings: Settings) -> dict[str, Adapter]:
    """`{"local": ..., "ray": ..., "docker": ...}` for `settings`.

    The Ray adapter starts nothing until a run needs Ray: then it uses `ray_address` or starts
    control's one local head (stopped when control stops). The Docker adapter talks to its engine
    only when a run or service needs it; a local engine hands out the GPUs the local adapter
    hands out, from the same inventory, so no GPU goes to two runs.
    """
    head_gpus = parse_gpus(settings.ray_head_gpus)
    local_gpus = parse_gpus(settings.local_gpus)
    local = LocalAdapter(gpus=local_gpus, memory_limits=settings.local_memory_limits)
    engine = engine_url(settings.docker_host)
    return {
        "local": local,
        "docker": DockerAdapter(
            host=engine,
            pull=settings.docker_pull,
            inventory=local.inventory if engine.startswith("unix://") else LocalInventory([]),
            options=DockerOptions(
                image=settings.docker_image,
                network=settings.docker_network,
                volumes=tuple(settings.docker_volumes),
                labels={"atom.home": str(settings.home)},
            ),
        ),
        "ray": RayAdapter(
            address=settings.ray_address,
            dashboard_url=settings.ray_dashboard_url,
            head=RayHead(
                num_cpus=settings.ray_head_cpus,
                num_gpus=len(head_gpus),
                gpu_ids=head_gpus,
                state_file=settings.home / "ray-head.json",
            ),
            python=settings.ray_python,
        ),
    }
