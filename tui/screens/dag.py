"""`DagScreen`: one exam's nodes and their edges (fan-out, fan-in) drawn as boxes and arrows, each
with its last run state (refreshed live; a skipped node says why); start a node or the whole exam,
resume the latest exam run from its failed nodes, open a node's last run, edit a node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.actions import start_exam, start_node
from tui.format import state_text
from tui.screens.base import AtomScreen, loader
from tui.widgets import tree_labels as tl
from tui.widgets.dag import DagBox, DagView
from tui.widgets.tree_labels import Catalog

if TYPE_CHECKING:
    from collections.abc import Iterable

    from textual.widget import Widget

    from control.schemas import ExamRunOut, RunOut


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
        Binding("R", "resume", "Resume", key_display="R"),
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
        self.exam_run: ExamRunOut | None = None
        """The exam's latest exam run (None: it never ran as a whole)."""

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
        self.exam_run = await self._latest_exam_run()
        self.catalog = cat
        exam = cat.by_id("exams", self.exam_id)
        if exam is not None:
            self.exam_name = exam["examName"]
        nodes = self.nodes()
        latest = {r.node_id: r for r in self.exam_run.runs} if self.exam_run else {}
        boxes = [
            DagBox(
                n["id"],
                n["nodeName"],
                n.get("operatorRuntimeType", ""),
                n.get("lastRunState"),
                ready=n.get("nodeStatus") == "EDIT_FINISH",
                reason=latest[n["id"]].reason
                if n["id"] in latest and latest[n["id"]].state.value == n.get("lastRunState")
                else "",
            )
            for n in nodes
        ]
        self.dag.set_graph(boxes, tl.dag_edges(nodes))
        self._title(missing=exam is None)
        self._show_detail()
        await self._load_run()

    async def _latest_exam_run(self) -> ExamRunOut | None:
        page = await self.attempt(
            lambda c: c.exam_runs(exam_id=self.exam_id, limit=1), what="loading exam runs", quiet=True
        )
        if page is None or not page.items:
            return None
        return await self.attempt(
            lambda c: c.exam_run(page.items[0].id), what="loading the exam run", quiet=True
        )

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
            if self.exam_run is not None:
                title.append(f"  exam run #{self.exam_run.id} ", "bright_black")
                title.append_text(state_text(self.exam_run.state.value))
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

    def action_resume(self) -> None:
        er = self.exam_run
        if er is None:
            self.notify(f"exam {self.exam_name} has no exam run to resume")
        elif er.state.value not in ("failed", "stopped"):
            self.notify(f"exam run #{er.id} is {er.state.value}: only a failed or stopped one resumes")
        else:
            self._resume(er.id)

    @work(group="action", exit_on_error=False)
    async def _resume(self, exam_run_id: int) -> None:
        er = await self.attempt(
            lambda c: c.resume_exam_run(exam_run_id), what=f"resuming exam run {exam_run_id}"
        )
        if er is not None:
            again = ", ".join(r.node_name for r in er.runs if r.state.value in ("queued", "pending"))
            self.notify(f"exam run #{er.id}: again {again or 'nothing'}", title="resumed")
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
