"""The model form: a named model, where its artifacts are stored and how its versions are made
(versions themselves come from runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.schemas import ModelCreateType, ModelIn, ModelType
from tui.forms._resource import ResourceForm, connection_options, enum_options
from tui.widgets.form import FieldSpec

if TYPE_CHECKING:
    from tui.screens.base import AtomScreen


async def edit(screen: AtomScreen, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create or edit a model; the saved model's view, or None."""
    connections = await connection_options(screen, (existing or {}).get("connectionName"))
    fields = [
        FieldSpec(
            "connectionName",
            "Connection",
            "select",
            options=connections,
            help="where the model's artifacts are stored (blank: none)",
        ),
        FieldSpec(
            "modelCreateType", "Create type", "select", required=True, options=enum_options(ModelCreateType)
        ),
        FieldSpec("modelType", "Model type", "select", required=True, options=enum_options(ModelType)),
    ]
    form = ResourceForm(
        screen,
        "models",
        "model",
        ModelIn,
        existing,
        fields,
        defaults={"modelCreateType": "TRAIN", "modelType": "USER"},
    )
    return await form.open()
