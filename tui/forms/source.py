"""The data source form: which connection, what role, what to read or write, how to read it, and
the optional lifecycle hooks (last)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.schemas import DataSourceIn, SourceRole
from tui.forms._resource import ResourceForm, connection_options, enum_options
from tui.widgets.form import FieldSpec

if TYPE_CHECKING:
    from tui.screens.base import AtomScreen

ROLES = {
    "source": "source (training input)",
    "test_source": "test_source (validation / test input)",
    "init_data": "init_data (loaded before the run)",
    "sink": "sink (where results are written)",
}

HOOKS = [
    ("taskInitExecute", "Hook: task init"),
    ("operateExecuteBefore", "Hook: before operate"),
    ("dataExecuteBefore", "Hook: before data"),
    ("dataExecuteAfter", "Hook: after data"),
    ("operateExecuteAfter", "Hook: after operate"),
]


def fields(connections: list[tuple[str, Any]]) -> list[FieldSpec]:
    return [
        FieldSpec(
            "connectionName",
            "Connection",
            "select",
            required=True,
            options=connections,
            help=""
            if connections
            else "no connections in this space yet: create one first (:connections, n)",
        ),
        FieldSpec("sourceType", "Role", "select", required=True, options=enum_options(SourceRole, ROLES)),
        FieldSpec(
            "operateExecute",
            "Target",
            required=True,
            placeholder="table, SQL query, key pattern or object path",
        ),
        FieldSpec("dataFormat", "Format", placeholder="csv, parquet, json, ..."),
        FieldSpec("operatorReadNum", "Rows for the operator", "int", help="0: all rows"),
        FieldSpec("connectReadNum", "Rows per connection read", "int", help="0: the connector's default"),
        FieldSpec(
            "paginateReadNum", "Page size", "int", help="rows per page when reading in pages; 0: one read"
        ),
        FieldSpec("disposable", "Disposable (read once, then drop)", "bool"),
        FieldSpec("asyncLoad", "Load asynchronously", "bool"),
        FieldSpec("order", "Order", "int", help="position among the node's sources"),
        FieldSpec("sourceConf", "Source conf (JSON)", "json"),
        *[FieldSpec(name, label, help="optional") for name, label in HOOKS],
    ]


async def edit(screen: AtomScreen, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create or edit a data source; the saved source's view, or None."""
    connections = await connection_options(screen, (existing or {}).get("connectionName"))
    form = ResourceForm(
        screen,
        "sources",
        "source",
        DataSourceIn,
        existing,
        fields(connections),
        defaults={"sourceType": "source", "asyncLoad": True, "dataFormat": "csv"},
    )
    return await form.open()
