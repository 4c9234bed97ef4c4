"""The adapters a control has, built from its settings: `local` always, `ray` and `docker` always (lazy),
`kubernetes` when a kubeconfig or an in-cluster account is there (loaded at first use)."""

from __future__ import annotations

from control.dispatch.base import Adapter
from control.dispatch.docker import DockerAdapter, engine_url
from control.dispatch.docker_spec import DockerOptions, docker_prefix
from control.dispatch.k8s_config import configured as k8s_configured
from control.dispatch.kubernetes import KubernetesAdapter
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
    hands out, from the same inventory, so no GPU goes to two runs. The Kubernetes adapter is
    there only where control can find a cluster (`k8s_config.configured`); it loads its config
    the first time a run or service needs it.
    """
    head_gpus = parse_gpus(settings.ray_head_gpus)
    local_gpus = parse_gpus(settings.local_gpus)
    local = LocalAdapter(gpus=local_gpus, memory_limits=settings.local_memory_limits)
    engine = engine_url(settings.docker_host)
    adapters: dict[str, Adapter] = {
        "local": local,
        "docker": DockerAdapter(
            host=engine,
            pull=settings.docker_pull,
            inventory=local.inventory if engine.startswith("unix://") else LocalInventory([]),
            options=DockerOptions(
                image=settings.docker_image,
                network=settings.docker_network,
                volumes=tuple(settings.docker_volumes),
                prefix=settings.docker_name_prefix or docker_prefix(settings.home),
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
    if k8s_configured(settings):
        adapters["kubernetes"] = KubernetesAdapter(settings)
    return adapters
