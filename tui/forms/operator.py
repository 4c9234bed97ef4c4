"""The operator form: the user's code (module + object), how it runs, its configuration and when it
deploys its model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.schemas import DeployType, OperatorIn, OperatorModel, OperatorRuntimeType
from tui.forms._resource import ResourceForm, enum_options
from tui.widgets.form import FieldSpec

if TYPE_CHECKING:
    from tui.screens.base import AtomScreen

DEPLOYS = {
    "NOT_DEPLOY": "NOT_DEPLOY (no service)",
    "TOUCH_DEPLOY": "TOUCH_DEPLOY (deploy after approval)",
    "GREY_DEPLOY": "GREY_DEPLOY (grey release beside the current one)",
    "AUTO_DEPLOY": "AUTO_DEPLOY (deploy when training ends)",
}

FIELDS = [
    FieldSpec(
        "operatorRuntimeType",
        "Runtime type",
        "select",
        required=True,
        options=enum_options(OperatorRuntimeType),
    ),
    FieldSpec("moduleName", "Module", required=True, placeholder="e.g. mypkg.train"),
    FieldSpec("executeObject", "Object", required=True, placeholder="the class in the module, e.g. CtrTrain"),
    FieldSpec("operatorEpoch", "Epochs", "int", help="at least 1"),
    FieldSpec("deployType", "Deploy", "select", required=True, options=enum_options(DeployType, DEPLOYS)),
    FieldSpec("operatorModel", "Mode", "select", required=True, options=enum_options(OperatorModel)),
    FieldSpec("operatorConf", "Operator conf (JSON)", "json", help='e.g. {"labelColumn": "label"}'),
    FieldSpec("modelConf", "Model conf (JSON)", "json"),
    FieldSpec("environmentConf", "Environment conf (JSON)", "json", help="environment variables for the run"),
    FieldSpec("operatorPriority", "Priority", "int", help="higher runs first"),
    FieldSpec("codeAddress", "Code address", placeholder="optional: where the code lives (git URL, path)"),
    FieldSpec("codeVersion", "Code version", placeholder="optional: a tag or commit"),
]


async def edit(screen: AtomScreen, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create or edit an operator; the saved operator's view, or None."""
    form = ResourceForm(
        screen,
        "operators",
        "operator",
        OperatorIn,
        existing,
        FIELDS,
        defaults={
            "operatorRuntimeType": "TRAIN",
            "deployType": "NOT_DEPLOY",
            "operatorModel": "OFFLINE",
            "operatorEpoch": 1,
        },
    )
    return await form.open()
