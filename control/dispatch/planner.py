"""The planner: which adapter runs a run, from its service info's runtime pattern and the settings.

A run's pattern is its service info's `siRuntimePattern`; a node without a service info takes the
space's default pattern (`dispatch_space_patterns`), else the global one. The pattern then names
an adapter through the space's map (`dispatch_space_adapters`), else the global map
(`dispatch_adapters`: COMMAND -> local, RAY -> ray). A pattern that maps to no adapter, or to one
this control does not have, is refused before any run is created: never run somewhere else.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from control import schemas as s
from control.dispatch.k8s_config import ENABLE_HINT as K8S_ENABLE_HINT
from control.errors import InvalidSpec
from control.settings import Settings

#: how to enable an adapter control builds only when its target is configured
ENABLE = {"kubernetes": K8S_ENABLE_HINT}


@dataclass(frozen=True)
class Placement:
    pattern: str
    adapter: str


def place(settings: Settings, *, space: str, spec: s.TaskSpec, available: Collection[str]) -> Placement:
    """Choose the adapter for a run of `spec` in `space`.

    Raises:
        InvalidSpec: the pattern is not configured here (the message names the setting that enables it).
    """
    si = spec.service_info
    if si is not None:
        pattern = si.si_runtime_pattern.value
    else:
        pattern = settings.dispatch_space_patterns.get(space, settings.dispatch_default_pattern).upper()
    mapping = {**settings.dispatch_adapters, **settings.dispatch_space_adapters.get(space, {})}
    adapter = mapping.get(pattern)
    if adapter is None:
        example = json.dumps({**settings.dispatch_adapters, pattern: "<adapter>"})
        raise InvalidSpec(
            f"runtime pattern {pattern} is not configured on this control: no adapter runs it "
            f"(set ATOM_DISPATCH_ADAPTERS='{example}' with one of: {', '.join(sorted(available))})",
            field="siRuntimePattern",
            field_msg=f"{pattern} is not configured here",
        )
    if adapter not in available and adapter in ENABLE:
        raise InvalidSpec(
            f"runtime pattern {pattern} is not configured on this control: the {adapter!r} adapter "
            f"needs a cluster: {ENABLE[adapter]}",
            field="siRuntimePattern",
            field_msg=f"{pattern} is not configured here",
        )
    if adapter not in available:
        raise InvalidSpec(
            f"runtime pattern {pattern} maps to the {adapter!r} adapter, which this control does not have "
            f"(adapters here: {', '.join(sorted(available))}; see ATOM_DISPATCH_ADAPTERS)",
            field="siRuntimePattern",
            field_msg=f"adapter {adapter!r} is not available",
        )
    return Placement(pattern=pattern, adapter=adapter)
