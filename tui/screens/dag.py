"""`DagScreen`: one exam's nodes and nextNodeId edges drawn as boxes and arrows, each with its last
run state (refreshed live); start a node or the whole exam, open a node's last run, edit a node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.actions import start_exam, start_node
from tui.screens.base import AtomScreen, loader
from tui.widgets import tree_labels as tl
from tui.widgets.dag import DagBox, DagView
from tui.widgets.tree_labels import Catalog

if TYPE_CHECKING:
    from collections.abc import Iterable

    from textual.widget import Widget

    from control.schemas import RunOut


class DagScreen(AtomScreen):
    """The DAG of exam `exam_id` (in the space current when it opened)."""

    TITLE_TEXT = "Exam DAG"
    DEFAULT_CSS = """
    DagScreen #dag-title { height: 1; padding: 0 1; }
    DagScreen DagView { height: auto; max-height: 70%; }
    DagScreen #dag-side { height: 1fr; min-height: 5; border: round $primary-darken-2; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh_data", "Refresh", show=False),
        Binding("s", "start", "Start"),
        Binding("S", "start_exam", "Start exam", key_display="S"),
        Binding("enter", "open_run", "Run"),
        Binding("l", "open_log", "Log"),
        Binding("e", "edit", "Edit"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, exam_id: int, exam_name: str) -> None:
        super().__init__()
        self.exam_id = exam_id
        self.exam_name = exam_name
        self.exam_space = ""
        self.catalog: Catalog | None = None
        self._runs: tuple[int, list[RunOut]] | None = None

    def compose_body(self) -> Iterable[Widget]:
        yield Static(id="dag-title")
        yield DagView(id="dag-view")
        side = VerticalScroll(Static(id="dag-detail"), id="dag-side")
        side.border_title = "node"
        yield side

    def on_mount(self) -> None:
        self.exam_space = self.space
        self.query_one(DagView).focus()
        self._title()

    @property
    def dag(self) -> DagView:
        return self.query_one(DagView)

    def nodes(self) -> list[dict[str, Any]]:
        return self.catalog.nodes_of(self.exam_id) if self.catalog else []

    def selected(self) -> dict[str, Any] | None:
        ident = self.dag.selected
        return next((n for n in self.nodes() if n["id"] == ident), None)

    # -- loading ----------------------------------------------------------------------------

    def refresh_data(self) -> None:
        self._load()

    @loader("dag")
    async def _load(self) -> None:
        space = self.exam_space or self.space
        cat = await self.attempt(lambda c: Catalog.fetch(c, space), what=f"loading exam {self.exam_name}")
        if cat is None:
            return
        self.catalog = cat
        exam = cat.by_id("exams", self.exam_id)
        if exam is not None:
            self.exam_name = exam["examName"]
        nodes = self.nodes()
        boxes = [
            DagBox(
                n["id"],
                n["nodeName"],
                n.get("operatorRuntimeType", ""),
                n.get("lastRunState"),
                ready=n.get("nodeStatus") == "EDIT_FINISH",
            )
            for n in nodes
        ]
        self.dag.set_graph(boxes, tl.dag_edges(nodes))
        self._title(missing=exam is None)
        self._show_detail()
        await self._load_run()

    def _title(self, *, missing: bool = False) -> None:
        title = Text.assemble(("exam ", "bright_black"), (self.exam_name, "bold"))
        if missing:
            title.append("  (gone: it was deleted)", "red")
        elif self.catalog is not None:
            nodes = self.nodes()
            title.append(f"  {tl.plural(len(nodes), 'node')}", "bright_black")
            for state in ("running", "failed"):
                n = sum(node.get("lastRunState") == state for node in nodes)
                if n:
                    title.append(f" · {n} {state}", "bright_black")
        title.append(f"  space {self.exam_space or self.space}", "bright_black")
        self.query_one("#dag-title", Static).update(title)

    @on(DagView.Selected)
    def _selected(self, event: DagView.Selected) -> None:
        self._show_detail()
        if event.node_id is not None:
            self._fetch_run()

    def _show_detail(self) -> None:
        node = self.selected()
        detail = self.query_one("#dag-detail", Static)
        if node is None or self.catalog is None:
            detail.update(
                Text("this exam has no nodes yet: n on the exam in the navigator adds one", "bright_black")
            )
            return
        runs = self._runs[1] if self._runs and self._runs[0] == node["id"] else None
        cat, now = self.catalog, self.config.clock()
        pane = self.query_one("#dag-side").scrollable_content_region
        left = tl.room(
            self.app.console, tl.node_details(node, cat, runs, now, hint=""), pane.width, pane.height
        )
        detail.update(tl.node_details(node, cat, runs, now, hint="", history=min(left, tl.RECENT - 1)))

    @loader("detail")
    async def _fetch_run(self) -> None:
        await self._load_run()

    async def _load_run(self) -> None:
        node = self.selected()
        if node is None:
            return
        runs = await tl.last_runs(self, self.exam_space, node["nodeName"], tl.RECENT)
        if runs is not None and self.dag.selected == node["id"]:
            self._runs = (node["id"], runs)
            self._show_detail()

    # -- actions ----------------------------------------------------------------------------

    def _node(self) -> dict[str, Any] | None:
        node = self.selected()
        if node is None:
            self.notify("no node selected")
        return node

    def action_start(self) -> None:
        if (node := self._node()) is not None:
            self._start(node["id"], node["nodeName"], exam=False)

    def action_start_exam(self) -> None:
        self._start(self.exam_id, self.exam_name, exam=True)

    @work(group="action", exit_on_error=False)
    async def _start(self, ident: int, name: str, *, exam: bool) -> None:
        if exam:
            await start_exam(self, ident, name)
        else:
            await start_node(self, ident, name)
        self.refresh_data()

    def action_open_run(self) -> None:
        if (node := self._node()) is not None:
            self._open(node["nodeName"], None)

    def action_open_log(self) -> None:
        if (node := self._node()) is not None:
            self._open(node["nodeName"], "log")

    @work(group="action", exit_on_error=False)
    async def _open(self, name: str, tab: str | None) -> None:
        await tl.open_last_run(self, self.exam_space, name, tab=tab)

    def action_edit(self) -> None:
        if (node := self._node()) is not None:
            self._edit(node)

    @work(group="form", exit_on_error=False)
    async def _edit(self, node: dict[str, Any]) -> None:
        from tui import forms

        if await forms.edit(self, "nodes", node) is not None:
            self.refresh_data()
