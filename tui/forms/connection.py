"""The connection form: where a store is and how to log in; the password is masked, never shown back,
and kept when left blank on edit. "Save & test" saves, then asks control to open the connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.schemas import ColonyType, ConnectionIn, ConnectType
from tui.forms._resource import ResourceForm, enum_options
from tui.widgets.form import FieldSpec, FormAction

if TYPE_CHECKING:
    from tui.screens.base import AtomScreen


def fields(existing: dict[str, Any] | None) -> list[FieldSpec]:
    stored = bool(existing and existing.get("hasPassword"))
    return [
        FieldSpec("connectType", "Type", "select", required=True, options=enum_options(ConnectType)),
        FieldSpec(
            "connectAddr",
            "Address",
            placeholder="host name or IP; a folder for FILE; the endpoint for S3 / OSS",
        ),
        FieldSpec("connectPort", "Port", "int", placeholder="e.g. 3306 for MySQL, 6379 for Redis"),
        FieldSpec("connectAccount", "Account", placeholder="user name or access key id"),
        FieldSpec(
            "connectPassword",
            "Password",
            "password",
            omit_blank=True,
            help="(stored) leave blank to keep it" if stored else "leave blank for none",
        ),
        FieldSpec(
            "connectSpace",
            "Database / bucket / db index",
            placeholder="MySQL database, S3 or OSS bucket, Redis db number",
        ),
        FieldSpec("colonyType", "Colony", "select", required=True, options=enum_options(ColonyType)),
        FieldSpec(
            "sourceConf",
            "Source conf (JSON)",
            "json",
            help='extra connector options, e.g. {"charset": "utf8mb4"}',
        ),
    ]


async def edit(screen: AtomScreen, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create or edit a connection; the saved connection's view, or None."""
    form = ResourceForm(
        screen,
        "connections",
        "connection",
        ConnectionIn,
        existing,
        fields(existing),
        defaults={"connectType": "FILE", "colonyType": "SINGLE"},
    )

    async def save_and_test(values: dict[str, Any]) -> tuple[bool, str]:
        saved = await form.save(values)
        name = saved["connectName"]
        answer = await screen.api.call(lambda c: c.test_connection(screen.space, name))
        if answer.get("ok"):
            return True, f"saved; ok: {answer.get('msg', '')}"
        return False, f"saved; test failed: {answer.get('msg') or 'no answer'}"

    return await form.open([FormAction("Save & test", save_and_test, id="test", variant="success")])
