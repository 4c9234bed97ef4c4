"""Models screen: the space's models (versions, best score, connection) and the selected model's
versions with score, operatorResult (the optimal one highlighted), the run that made each, and its
metrics; `l` or Enter on a version opens that run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import DataTable, Static

from tui.format import clock_time
from tui.screens.resources import ResourceScreen
from tui.screens.table import Column, clip, dash, fill_table
from tui.widgets.describe import DescribePane, Section, row_items

OPTIMAL = "CONTAIN_OPTIMAL"
VERSION_COLUMNS = ["version", "score", "operatorResult", "run", "created", "metrics"]


def best_version(row: dict[str, Any]) -> dict[str, Any] | None:
    """The version marked optimal, else the best scored one."""
    versions = row.get("versions") or []
    optimal = [v for v in versions if v.get("operatorResult") == OPTIMAL]
    pool = optimal or versions
    return max(pool, key=lambda v: v.get("modelScore") or 0) if pool else None


def result_text(result: str | None) -> Text:
    if result == OPTIMAL:
        return Text(f"★ {result}", style="bold green")
    return Text(result or "-", style="bright_black")


def metrics_text(metrics: dict[str, Any] | None, width: int) -> str:
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (metrics or {}).items()]
    return clip(" ".join(parts), width) if parts else "-"


class ModelsScreen(ResourceScreen):
    """Models beside (or above, when narrow) the selected model's versions."""

    TITLE_TEXT = "Models"
    KIND = "models"
    NOUN = "model"
    SIDE_ALWAYS = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "open_run", "Open run"),
        Binding("tab", "app.focus_next", "Models/versions", show=False),
    ]

    DEFAULT_CSS = """
    ModelsScreen #versions { height: 1fr; }
    ModelsScreen #describe { display: none; height: 1fr; border-top: solid $primary 40%; }
    ModelsScreen #tbl-side.-describe #describe { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._model: str | None = None
        self._versions: list[dict[str, Any]] = []
        self._version_signature: list[str] | None = None

    def columns(self) -> Sequence[Column]:
        def best(r: dict[str, Any]) -> Any:
            v = best_version(r)
            return dash(f"{v['modelScore']:.3f} ({v['modelVersion']})" if v else "")

        return [
            Column("name", lambda r: r["modelName"]),
            Column("versions", lambda r: len(r.get("versions") or [])),
            Column("best score", best),
            Column("connection", lambda r: dash(r.get("connectionName"))),
            Column("create type", lambda r: r.get("modelCreateType", ""), wide=True),
            Column("type", lambda r: r.get("modelType", ""), wide=True),
        ]

    def compose_side(self) -> Iterable[Widget]:
        yield Static("versions", id="ver-title", classes="pane-title")
        yield DataTable(id="versions", cursor_type="row", zebra_stripes=True)
        yield DescribePane(clock=self.config.clock, id="describe")

    def _layout(self) -> None:
        super()._layout()
        side = self.query_one("#tbl-side")
        side.set_class(self._side_wanted if self._side_wanted is not None else self.wide, "-describe")

    def action_describe(self) -> None:
        side = self.query_one("#tbl-side")
        self._side_wanted = not side.has_class("-describe")
        self._layout()

    # -- the selected model's versions --------------------------------------------------------

    def show_selected(self, row: dict[str, Any] | None) -> None:
        versions = self.query_one("#versions", DataTable)
        title = self.query_one("#ver-title", Static)
        if row is None:
            self._model, self._versions, self._version_signature = None, [], None
            versions.clear()
            title.update("versions" if self.loaded else "loading ...")
            self.query_one("#describe", DescribePane).clear()
            return
        newest_first = sorted(row.get("versions") or [], key=lambda v: v["id"], reverse=True)
        now = self.config.clock()
        width = 60 if self.wide else 24
        cells = [
            [
                v["modelVersion"],
                f"{v['modelScore']:.3f}",
                result_text(v.get("operatorResult")),
                f"#{v['runtimeId']}" if v.get("runtimeId") else Text("-", style="bright_black"),
                clock_time(_time(v.get("createTime")), now),
                metrics_text(v.get("metrics"), width),
            ]
            for v in newest_first
        ]
        signature = [row["modelName"], *(str([str(c) for c in r]) for r in cells)]
        if signature != self._version_signature:
            keep = self.selected_version()
            keep_id = str(keep["id"]) if keep and self._model == row["modelName"] else None
            self._version_signature = signature
            rows = [(str(v["id"]), cell) for v, cell in zip(newest_first, cells, strict=True)]
            fill_table(versions, VERSION_COLUMNS, rows, keep_id)
        self._model, self._versions = row["modelName"], newest_first
        count = len(newest_first)
        title.update(Text.assemble(("versions", "bold"), f" of {row['modelName']} · {count}"))
        self._describe_version(row)

    def selected_version(self) -> dict[str, Any] | None:
        versions = self.query_one("#versions", DataTable)
        index = versions.cursor_row
        return self._versions[index] if versions.row_count and 0 <= index < len(self._versions) else None

    def _describe_version(self, model: dict[str, Any] | None = None) -> None:
        model = model or self.selected()
        pane = self.query_one("#describe", DescribePane)
        if model is None:
            pane.clear()
            return
        sections: list[Section] = []
        version = self.selected_version()
        if version is not None:
            sections.append((f"version {version['modelVersion']}", row_items(version)))
        fields = {k: v for k, v in model.items() if k != "versions"}
        sections.append((f"model {model['modelName']}", row_items(fields)))
        pane.show(f"model {model['modelName']}", sections)

    @on(DataTable.RowHighlighted, "#versions")
    def _version_highlighted(self) -> None:
        self._describe_version()

    @on(DataTable.RowSelected, "#versions")
    def _version_chosen(self) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        version = self.selected_version()
        if version is None:
            self.notify("no version selected", severity="warning")
        elif not version.get("runtimeId"):
            self.notify(f"version {version['modelVersion']} was not made by a run", severity="warning")
        else:
            self.atom.open_run(int(version["runtimeId"]))


def _time(value: Any) -> Any:
    from tui.widgets.describe import parse_time

    return parse_time(value) if isinstance(value, str) else None
