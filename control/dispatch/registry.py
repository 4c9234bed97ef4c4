"""The adapters a control has, built from its settings: `local` always, `ray` always (lazy)."""

from __future__ import annotations

from control.dispatch.base import Adapter
from control.dispatch.local import LocalAdapter
from control.dispatch.local_limits import parse_gpus
from control.dispatch.ray import RayAdapter
from control.dispatch.ray_head import RayHead
from control.settings import Settings


def build_adapters(settings: Settings) -> dict[str, Adapter]:
    """`{"local": ..., "ray": ...}` for `settings`.

    The Ray adapter starts nothing until a run needs Ray: then it uses `ray_address` or starts
    control's one local head (stopped when control stops).
    """
    head_gpus = parse_gpus(settings.ray_head_gpus)
    local_gpus = parse_gpus(settings.local_gpus)
    return {
        "local": LocalAdapter(gpus=local_gpus, memory_limits=settings.local_memory_limits),
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
