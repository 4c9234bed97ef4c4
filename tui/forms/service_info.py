"""The service info form: how a node or service runs (command or Kubernetes), how many replicas,
which image, and the cpu / gpu / memory it asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.schemas import RuntimePattern, ServiceInfoIn
from tui.forms._resource import ResourceForm, enum_options
from tui.widgets.form import FieldSpec

if TYPE_CHECKING:
    from tui.screens.base import AtomScreen

FIELDS = [
    FieldSpec(
        "siRuntimePattern",
        "Pattern",
        "select",
        required=True,
        options=enum_options(
            RuntimePattern,
            {
                "COMMAND": "COMMAND (a local process)",
                "RAY": "RAY (a Ray job)",
                "KUBERNETES": "KUBERNETES (pods)",
            },
        ),
    ),
    FieldSpec("siNodeNum", "Replicas", "int", help="number of nodes / pods"),
    FieldSpec("siImageName", "Image", placeholder="container image, for KUBERNETES"),
    FieldSpec("siCpu", "CPU", "int", help="cores"),
    FieldSpec("siGpu", "GPU", "int", help="devices"),
    FieldSpec("siMemory", "Memory (MiB)", "int"),
    FieldSpec("siDisplayMemory", "GPU memory (MiB)", "int"),
    FieldSpec("siLabel", "Labels", placeholder="key=value,key=value (node selector)"),
]


async def edit(screen: AtomScreen, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create or edit a service info; the saved one's view, or None."""
    form = ResourceForm(
        screen,
        "service-infos",
        "service info",
        ServiceInfoIn,
        existing,
        FIELDS,
        defaults={"siRuntimePattern": "COMMAND", "siNodeNum": 1, "siCpu": 1, "siGpu": 0, "siMemory": 1024},
    )
    return await form.open()
