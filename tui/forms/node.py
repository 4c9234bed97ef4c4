"""The node form: the node (name, runtime type, exam, epochs, retries, priority), its relation
(operator, data sources, model, base/min/max service info, next node) and EDIT_FINISH, in one form.

Saving runs up to three calls: create (POST) or update (PATCH, only what `NodePatch` allows) the
node, then createNodeRelation, then PATCH nodeStatus when asked. A refusal from any of them shows
beside the field it is about (the relation's `dataSourceId` is the sources field, `nodeStatus` the
EDIT_FINISH box); a node created before a later step failed is updated, not created again, on retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from textual import on
from textual.widgets import Select

from control.errors import ControlAPIError
from control.schemas import NodeRelationIn, OperatorRuntimeType, check_dns1123
from tui.widgets.form import FieldSpec, FormScreen

if TYPE_CHECKING:
    from control.client import AsyncControlClient
    from tui.screens.base import AtomScreen

#: relation fields (wire names, also the form's field names) besides the operator
LINKS = ("dataSourceIds", "modelId", "serviceInfoId", "minServiceInfoId", "maxServiceInfoId", "nextNodeId")
#: a field control names -> the form field it is shown beside ("" : the status line)
RENAME = {"dataSourceId": "dataSourceIds", "nodeStatus": "editFinish", "nodeId": ""}
PATCHABLE = ("examId", "nodeEpoch", "maxRetries", "operatorPriority")
NAME_HELP = "lower-case letters, digits and '-' (a Kubernetes name)"


class NodeForm(FormScreen):
    """`FormScreen` plus the node's local checks and an operator list that follows the runtime type."""

    def __init__(
        self,
        *args: Any,
        operators: Sequence[dict[str, Any]],
        fixed_type: str | None,
        bound: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.operators = list(operators)
        self.fixed_type = fixed_type
        """The runtime type of an existing node (None: a new node, whose type is a field)."""
        self.new = fixed_type is None
        self.bound = bound
        """The node has a relation already (it can be replaced, not removed)."""

    def on_mount(self) -> None:
        runtime_type = self.fixed_type or self._initial.get("operatorRuntimeType")
        self._filter_operators(runtime_type, keep=self._initial.get("operatorId"))

    @on(Select.Changed, "#f-operatorRuntimeType")
    def _type_changed(self, event: Select.Changed) -> None:
        self._filter_operators(None if event.value is Select.NULL else str(event.value))

    def _filter_operators(self, runtime_type: str | None, keep: Any = None) -> None:
        select = self.query_one("#f-operatorId", Select)
        keep = select.value if keep is None else keep
        options = [
            (f"{op['operatorName']} ({op['operatorRuntimeType']})", op["id"])
            for op in self.operators
            if runtime_type is None or op["operatorRuntimeType"] == runtime_type
        ]
        select.set_options(options)
        if keep in {value for _, value in options}:
            select.value = keep

    def read_values(self) -> tuple[dict[str, Any], dict[str, str]]:
        values, errors = super().read_values()
        for name, message in check(values, new=self.new, bound=self.bound).items():
            errors.setdefault(name, message)
        return values, errors


def check(values: dict[str, Any], *, new: bool, bound: bool = False) -> dict[str, str]:
    """What control would refuse, found before asking it (its messages, on the same fields)."""
    errors: dict[str, str] = {}
    if new and values.get("nodeName"):
        try:
            check_dns1123(values["nodeName"])
        except ValueError as exc:
            errors["nodeName"] = str(exc)
    if values.get("nodeEpoch") is not None and values["nodeEpoch"] < 1:
        errors["nodeEpoch"] = "Input should be greater than or equal to 1"
    retries = values.get("maxRetries")
    if retries is not None and not 0 <= retries <= 20:
        errors["maxRetries"] = f"Input should be {'greater' if retries < 0 else 'less'} than or equal to " + (
            "0" if retries < 0 else "20"
        )
    if values.get("operatorId") is None:
        if bound:
            errors["operatorId"] = "required: the node has a relation, which can be changed but not removed"
        elif any(values.get(name) not in (None, []) for name in LINKS):
            errors["operatorId"] = "required to bind data sources, a model, service infos or a next node"
        if values.get("editFinish"):
            errors["editFinish"] = "a node needs its operator (a relation) before it is EDIT_FINISH"
    return errors


async def _step(screen: AtomScreen, fn: Callable[[AsyncControlClient], Awaitable[Any]]) -> Any:
    """One call; a refusal's fields renamed to the form's."""
    try:
        return await screen.api.call(fn)
    except ControlAPIError as exc:
        fields = dict(getattr(exc, "fields", None) or {})
        renamed = {RENAME.get(name, name): msg for name, msg in fields.items()}
        exc.fields = {name: msg for name, msg in renamed.items() if name}
        raise


def _fields(choices: dict[str, list[dict[str, Any]]], *, new: bool, own_id: int | None) -> list[FieldSpec]:
    def named(
        kind: str, key: str, extra: Callable[[dict[str, Any]], str] | None = None
    ) -> list[tuple[str, Any]]:
        return [(row[key] + (f" ({extra(row)})" if extra else ""), row["id"]) for row in choices[kind]]

    exam_names = {e["id"]: e["examName"] for e in choices["exams"]}
    types = [(t.value, t.value) for t in OperatorRuntimeType]
    fields = (
        [  # the name and runtime type of a node are fixed once it exists
            FieldSpec("nodeName", "Name", required=True, placeholder="e.g. ctr-train", help=NAME_HELP),
            FieldSpec("operatorRuntimeType", "Runtime type", "select", required=True, options=types),
        ]
        if new
        else []
    )
    nodes = [n for n in choices["nodes"] if n["id"] != own_id]
    fields += [
        FieldSpec("examId", "Exam", "select", options=named("exams", "examName")),
        FieldSpec("nodeEpoch", "Epochs", "int", help="at least 1"),
        FieldSpec("maxRetries", "Retries", "int", help="0 to 20: how often a failed run is tried again"),
        FieldSpec("operatorPriority", "Priority", "int", help="higher runs first"),
        FieldSpec("operatorId", "Operator", "select", help="operators of the node's runtime type"),
        FieldSpec(
            "dataSourceIds",
            "Data sources",
            "multi",
            options=named("sources", "sourceName", lambda r: r["sourceType"]),
        ),
        FieldSpec("modelId", "Model", "select", options=named("models", "modelName")),
        FieldSpec("serviceInfoId", "Service info", "select", options=named("service-infos", "siName")),
        FieldSpec("minServiceInfoId", "Min service info", "select", options=named("service-infos", "siName")),
        FieldSpec("maxServiceInfoId", "Max service info", "select", options=named("service-infos", "siName")),
        FieldSpec(
            "nextNodeId",
            "Next node",
            "select",
            options=[
                (f"{n['nodeName']} ({exam_names.get(n.get('examId'), 'no exam')})", n["id"]) for n in nodes
            ],
            help="the node that runs after this one in the exam's DAG",
        ),
        FieldSpec("editFinish", "Mark EDIT_FINISH (ready to start)", "bool"),
    ]
    return fields


def _initial(node: dict[str, Any]) -> dict[str, Any]:
    values = {k: node.get(k) for k in ("nodeName", "operatorRuntimeType", *PATCHABLE)}
    values.update({k: v for k, v in (node.get("relation") or {}).items() if k in (*LINKS, "operatorId")})
    values["editFinish"] = node.get("nodeStatus") == "EDIT_FINISH"
    return values


async def edit(screen: AtomScreen, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create a node (`existing` None, or defaults without an `id` such as `examId`) or edit one."""
    space = screen.space
    current = dict(existing or {})
    kinds = ("operators", "sources", "models", "service-infos", "exams", "nodes")
    lists = await screen.attempt(
        lambda c: asyncio.gather(*(c.list(space, kind) for kind in kinds)),
        what="loading the node form's choices",
    )
    if lists is None:
        return None
    choices = dict(zip(kinds, lists, strict=True))
    state: dict[str, Any] = {"node": current if "id" in current else None}
    new = state["node"] is None
    values = (
        _initial(current)
        if not new
        else {
            "operatorRuntimeType": "TRAIN",
            "nodeEpoch": 1,
            "maxRetries": 0,
            "operatorPriority": 0,
            **current,
        }
    )

    async def submit(values: dict[str, Any]) -> dict[str, Any]:
        node = state["node"]
        if node is None:
            body = {k: values[k] for k in ("nodeName", "operatorRuntimeType", *PATCHABLE) if k in values}
            node = state["node"] = await _step(screen, lambda c: c.create(space, "nodes", body))
        else:
            changes = {k: values.get(k) for k in PATCHABLE if k in values or k == "examId"}
            node = state["node"] = await _step(screen, lambda c: c.patch(space, "nodes", node["id"], changes))
        ident = node["id"]
        relation = {k: values.get(k) for k in (*LINKS, "operatorId")}
        relation["dataSourceIds"] = values.get("dataSourceIds") or []
        old = node.get("relation") or {}
        if values.get("operatorId") is not None and any(old.get(k) != v for k, v in relation.items()):
            rel = NodeRelationIn.model_validate({"nodeId": ident, **relation})
            await _step(screen, lambda c: c.create_node_relation(rel))
        status = node.get("nodeStatus")
        if values.get("operatorId") is not None and status == "CREATE":
            status = "EDITING"  # createNodeRelation moved it on
        want = "EDIT_FINISH" if values.get("editFinish") else None
        if want and status != want:
            await _step(screen, lambda c: c.patch(space, "nodes", ident, {"nodeStatus": want}))
        elif not want and status == "EDIT_FINISH":
            await _step(screen, lambda c: c.patch(space, "nodes", ident, {"nodeStatus": "EDITING"}))
        saved: dict[str, Any] = await _step(screen, lambda c: c.get(space, "nodes", ident))
        state["node"] = saved
        return saved

    if new:
        title = f"New node in space {space}"
    else:
        title = f"Edit node {current['nodeName']} ({current.get('operatorRuntimeType', '')})"
    form = NodeForm(
        title,
        _fields(choices, new=new, own_id=current.get("id")),
        submit,
        values=values,
        operators=choices["operators"],
        fixed_type=None if new else current.get("operatorRuntimeType"),
        bound=bool(current.get("relation")),
    )
    result = await screen.app.push_screen_wait(form)
    if result is None:
        if not new or state["node"] is None:
            return None
        return dict(state["node"])  # created before a later step failed and the form was closed
    saved: dict[str, Any] = result.answer
    screen.notify(f"node {saved['nodeName']} saved")
    return saved
