"""Resource screens: connections, data sources, operators and service infos of the current space.

Each is a `TableScreen` (table, describe pane, `/` filter, sort) with the space's create/edit/delete
keys (`ResourceScreen`); the connections screen adds `t`, "test connection", whose one-line answer
appears under the table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.widgets import Static

from control.client import KINDS
from control.errors import ControlAPIError
from tui import forms
from tui.errors import Unavailable
from tui.screens.base import loader
from tui.screens.table import LAST, Column, TableScreen, clip, dash
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.describe import Section, row_items

__all__ = ["ConnectionsScreen", "OperatorsScreen", "ResourceScreen", "ServiceInfosScreen", "SourcesScreen"]


class ResourceScreen(TableScreen):
    """The resources of one kind in the current space, with `n`ew, `e`dit and `D`elete."""

    KIND: ClassVar[str] = ""
    """As `control.client.KINDS` names it: `connections`, `sources`, ..."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new", "New"),
        Binding("e", "edit", "Edit"),
        Binding("D", "delete", "Delete", key_display="D"),
    ]

    @property
    def name_field(self) -> str:
        return KINDS[self.KIND]

    def row_key(self, row: dict[str, Any]) -> str:
        return str(row.get(self.name_field))

    async def fetch(self) -> list[dict[str, Any]] | None:
        return await self.attempt(lambda c: c.list(self.space, self.KIND), what=f"loading {self.TITLE_TEXT}")

    def describe(self, row: dict[str, Any]) -> list[Section]:
        first = [self.name_field, *(k for k in row if k not in LAST and k != self.name_field)]
        return [("", row_items(row, first=first))]

    def action_new(self) -> None:
        self._edit(None)

    def action_edit(self) -> None:
        row = self.selected()
        if row is None:
            self.notify(f"no {self.NOUN} selected", severity="warning")
            return
        self._edit(row)

    @work(group="form", exit_on_error=False)
    async def _edit(self, row: dict[str, Any] | None) -> None:
        saved = await forms.edit(self, self.KIND, row)
        if saved is not None:
            self.select(str(saved.get(self.name_field)))
        self.refresh_data()  # "save & test" may have saved even when the form was cancelled

    def action_delete(self) -> None:
        row = self.selected()
        if row is None:
            self.notify(f"no {self.NOUN} selected", severity="warning")
            return
        self._delete(self.row_key(row))

    @work(group="delete", exit_on_error=False)
    async def _delete(self, name: str) -> None:
        question = f"Delete {self.NOUN} {name} from space {self.space}? This cannot be undone."
        if not await self.app.push_screen_wait(ConfirmScreen(question, yes="Delete")):
            return

        async def delete(c: Any) -> bool:
            await c.delete(self.space, self.KIND, name)
            return True

        if await self.attempt(delete, what=f"deleting {self.NOUN} {name}"):
            self.notify(f"{self.NOUN} {name} deleted", title="deleted")
            self.refresh_data()


class ConnectionsScreen(ResourceScreen):
    """Connections; `t` asks control to open the selected one and says how it went in one line."""

    TITLE_TEXT = "Connections"
    KIND = "connections"
    NOUN = "connection"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("t", "test", "Test")]

    _tested: str | None = None
    """The connection the status line speaks of."""

    def columns(self) -> Sequence[Column]:
        width = 60 if self.wide else 20

        def address(r: dict[str, Any]) -> Any:
            port = r.get("connectPort")
            return dash(clip(f"{r.get('connectAddr') or ''}{f':{port}' if port else ''}", width))

        return [
            Column("name", lambda r: r["connectName"]),
            Column("type", lambda r: r["connectType"]),
            Column("address", address),
            Column("account", lambda r: dash(r.get("connectAccount"))),
            Column("db/bucket", lambda r: dash(r.get("connectSpace"))),
            Column("colony", lambda r: r.get("colonyType", "")),
            Column("password", lambda r: "set" if r.get("hasPassword") else Text("-", style="bright_black")),
            Column(
                "conf",
                lambda r: dash(clip(json.dumps(r["sourceConf"]), 30) if r.get("sourceConf") else ""),
                wide=True,
            ),
        ]

    def show_selected(self, row: dict[str, Any] | None) -> None:
        super().show_selected(row)
        status = self.query_one("#tbl-status", Static)
        if row is not None and self._tested not in (None, self.row_key(row)):
            status.update("")
            status.remove_class("shown")

    def action_test(self) -> None:
        row = self.selected()
        if row is None:
            self.notify("no connection selected", severity="warning")
            return
        self._test(self.row_key(row))

    @loader("test")
    async def _test(self, name: str) -> None:
        self._tested = name
        self.say(f"testing {name} ...")
        try:
            answer = await self.api.call(lambda c: c.test_connection(self.space, name))
        except (Unavailable, ControlAPIError) as exc:
            self.say(f"✘ {name}: {exc}", ok=False)
            return
        if answer.get("ok"):
            self.say(f"✔ ok: {name}: {answer.get('msg', '')}", ok=True)
        else:
            self.say(f"✘ {name}: {answer.get('msg') or 'failed'}", ok=False)


class SourcesScreen(ResourceScreen):
    TITLE_TEXT = "Sources"
    KIND = "sources"
    NOUN = "source"

    def columns(self) -> Sequence[Column]:
        width = 60 if self.wide else 24
        return [
            Column("name", lambda r: r["sourceName"]),
            Column("connection", lambda r: r.get("connectionName", "")),
            Column("role", lambda r: r.get("sourceType", "")),
            Column("target", lambda r: dash(clip(r.get("operateExecute"), width))),
            Column("format", lambda r: dash(r.get("dataFormat"))),
            Column("page", lambda r: r.get("paginateReadNum") or Text("-", style="bright_black"), wide=True),
            Column(
                "read op/conn",
                lambda r: f"{r.get('operatorReadNum', 0)}/{r.get('connectReadNum', 0)}",
                wide=True,
            ),
            Column(
                "load",
                lambda r: (
                    ("once " if r.get("disposable") else "") + ("async" if r.get("asyncLoad") else "sync")
                ),
                wide=True,
            ),
            Column("order", lambda r: r.get("order", 0)),
        ]


class OperatorsScreen(ResourceScreen):
    TITLE_TEXT = "Operators"
    KIND = "operators"
    NOUN = "operator"

    def columns(self) -> Sequence[Column]:
        width = 70 if self.wide else 30
        return [
            Column("name", lambda r: r["operatorName"]),
            Column("runtime", lambda r: r.get("operatorRuntimeType", "")),
            Column("code", lambda r: clip(f"{r.get('moduleName')}:{r.get('executeObject')}", width)),
            Column("epoch", lambda r: r.get("operatorEpoch", 1)),
            Column("deploy", lambda r: r.get("deployType", "")),
            Column("mode", lambda r: r.get("operatorModel", ""), wide=True),
            Column("priority", lambda r: r.get("operatorPriority", 0), wide=True),
        ]


def _mib(value: Any) -> Any:
    return f"{value} MiB" if value else Text("-", style="bright_black")


class ServiceInfosScreen(ResourceScreen):
    TITLE_TEXT = "Service infos"
    KIND = "service-infos"
    NOUN = "service info"

    def columns(self) -> Sequence[Column]:
        return [
            Column("name", lambda r: r["siName"]),
            Column("pattern", lambda r: r.get("siRuntimePattern", "")),
            Column("replicas", lambda r: r.get("siNodeNum", 1)),
            Column("image", lambda r: dash(clip(r.get("siImageName"), 50 if self.wide else 20))),
            Column("cpu", lambda r: r.get("siCpu", 0)),
            Column("gpu", lambda r: r.get("siGpu", 0)),
            Column("memory", lambda r: _mib(r.get("siMemory"))),
            Column("GPU memory", lambda r: _mib(r.get("siDisplayMemory")), wide=True),
            Column("labels", lambda r: dash(r.get("siLabel")), wide=True),
        ]
