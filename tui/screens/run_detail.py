"""Run detail: a run's header line, then tabs: its spec, its state history, its live log, its metric curves.

Pushed by `app.open_run(id)` (and by the Runs screen's `l` on the Log tab). While the run is not
over, every refresh reloads the state, the spec's per-source progress, the metrics and the log tail.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from control.errors import ControlAPIError
from control.schemas import LogChunk, RunOut, RunSpecView
from tui import actions
from tui.errors import Unavailable
from tui.format import clock_time, count, progress_bar, run_duration, state_text
from tui.screens.base import AtomScreen, loader
from tui.widgets.artifacts import ArtifactsTable
from tui.widgets.attempts import AttemptsTable
from tui.widgets.logview import LogView, RunLog
from tui.widgets.plot import MetricsGrid
from tui.widgets.trials import TrialsTable

TABS = ("summary", "history", "log", "metrics", "artifacts", "trials")


def head_text(run: RunOut, now: datetime) -> Text:
    """The lines above the tabs: what the run is, how far it got, and why it is where it is."""
    text = Text()
    text.append(f"#{run.id} ", style="bold")
    text.append(run.node_name, style="bold")
    text.append("  ")
    text.append_text(state_text(run.state.value))
    text.append(f"  attempt {run.attempt} · {run.adapter} · {run.operator_runtime_type.value}", style="dim")
    if run.external_id:
        text.append(f" · {run.external_id}", style="dim")
    text.append(f"\nstarted {clock_time(run.started_at, now)}, ran ")
    text.append(run_duration(run.started_at, run.finished_at, now), style="bold")
    text.append("  ")
    text.append_text(progress_bar(run.progress))
    text.append(f"  stage {run.stage or '-'} · rows {count(run.rows_read)}")
    if run.reason:
        text.append("\nreason: ", style="dim")
        text.append(run.reason, style="red" if run.state.value == "failed" else "")
    return text


def spec_renderable(spec: RunSpecView) -> RenderableType:
    """The run's frozen spec as the Summary tab shows it (the view carries no passwords)."""
    op = spec.operator
    top = Table.grid(padding=(0, 2))
    top.add_column(style="bold")
    top.add_column()
    top.add_row(
        "operator",
        Text.assemble(
            (op.operator_name, "bold"),
            f" ({op.operator_runtime_type.value})  ",
            (f"{op.module_name}:{op.execute_object}", "cyan"),
            f"  epoch {op.operator_epoch} · deploy {op.deploy_type.value}",
        ),
    )
    if spec.model is not None:
        model = spec.model
        where = Text.assemble((model.model_name, "bold"))
        if model.model_address:
            where.append(f"  {model.model_address}")
        if model.connection is not None:
            where.append(f"  in {model.connection.connect_name} ({model.connection.connect_type.value})")
        top.add_row("model", where)
    si = spec.service_info
    if si is not None:
        top.add_row(
            "service info",
            f"{si.si_name or '-'}: {si.si_runtime_pattern.value}, {si.si_node_num} node(s), cpu {si.si_cpu}, "
            f"gpu {si.si_gpu}, {si.si_memory} MiB"
            + (f", image {si.si_image_name}" if si.si_image_name else ""),
        )
    if spec.run_parameter:
        top.add_row("parameters", ", ".join(f"{k}={v}" for k, v in spec.run_parameter.items()))
    parts: list[RenderableType] = [top]
    for title, sources in (
        ("inputs", [s for s in spec.sources if s.source_type.value != "sink"]),
        ("sinks", [s for s in spec.sources if s.source_type.value == "sink"]),
    ):
        table = Table(title=title, title_justify="left", title_style="bold", expand=True, box=None)
        for name, ratio in (("name", 2), ("role", 0), ("connection", 2), ("target", 3), ("read / total", 0)):
            table.add_column(
                name,
                ratio=ratio or None,
                width=None if ratio else 12,
                style="dim" if name == "role" else "",
                no_wrap=True,
            )
        for src in sources:
            conn = src.connection
            table.add_row(
                src.source_name,
                src.source_type.value,
                f"{conn.connect_name} ({conn.connect_type.value})",
                src.operate_execute or "-",
                f"{count(src.rows_read)} / {count(src.rows_total)}",
            )
        if not sources:
            table.add_row("-", "", "", "", "")
        parts += [Text(""), table]
    return Group(*parts)


class RunDetailScreen(AtomScreen):
    """One run, described. `tab`: the tab to open on (summary, history, log, metrics)."""

    TITLE_TEXT = "Run detail"
    DEFAULT_CSS = """
    RunDetailScreen #run-head { height: auto; max-height: 4; padding: 0 1; background: $boost; }
    RunDetailScreen TabbedContent { height: 1fr; }
    RunDetailScreen TabPane { height: 1fr; padding: 0; }
    RunDetailScreen #spec-scroll { height: 1fr; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "tab('summary')", "Summary", show=False),
        Binding("h", "tab('history')", "History", show=False),
        Binding("l", "tab('log')", "Log"),
        Binding("m", "tab('metrics')", "Metrics"),
        Binding("a", "tab('artifacts')", "Artifacts", show=False),
        Binding("t", "tab('trials')", "Trials", show=False),
        Binding("x", "stop", "Stop"),
        Binding("s", "start", "Start node", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, run_id: int, tab: str = "summary") -> None:
        super().__init__()
        self.run_id = run_id
        self.initial_tab = tab if tab in TABS else "summary"
        self.run: RunOut | None = None
        self.spec: RunSpecView | None = None
        self._metrics_done = False
        self._spec_done = False
        self._artifacts_done = False
        self._trials_done = False
        self._log_started = False
        self._loading = False

    def compose_body(self) -> Iterator[Widget]:
        yield Static("loading…", id="run-head")
        with TabbedContent(initial=self.initial_tab, id="run-tabs"):
            with TabPane("Summary", id="summary"), VerticalScroll(id="spec-scroll"):
                yield Static("loading…", id="spec")
            with TabPane("History", id="history"):
                yield AttemptsTable(id="attempts-table")
                yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Log", id="log"):
                yield RunLog(self._fetch_log, page=self.config.log_page)
            with TabPane("Metrics", id="metrics"):
                yield MetricsGrid(id="metrics-grid")
            with TabPane("Artifacts", id="artifacts"):
                yield ArtifactsTable(id="artifacts-table")
            with TabPane("Trials", id="trials"):
                yield TrialsTable(id="trials-table")

    def on_mount(self) -> None:
        self.query_one("#history-table", DataTable).add_columns("at", "from", "to", "reason")
        self.call_after_refresh(self.action_tab, self.initial_tab)

    # -- data -------------------------------------------------------------------------------

    async def _fetch_log(self, offset: int, limit: int) -> LogChunk | None:
        return await self.attempt(
            lambda c: c.run_logs(self.run_id, offset=offset, limit=limit),
            what=f"reading run #{self.run_id}'s log",
        )

    @property
    def over(self) -> bool:
        return self.run is not None and self.run.state.is_terminal()

    def refresh_data(self) -> None:
        if not self._loading:
            self._load()
        if self._log_started:
            self.query_one(RunLog).poll()

    @property
    def tab(self) -> str:
        return self.query_one(TabbedContent).active

    @loader("run-detail")
    async def _load(self) -> None:
        """The run; while it is not over also the spec (per-source progress) and the metrics, for
        the tab in front (each is loaded once in any case)."""
        self._loading = True
        try:
            was_over = self.over
            run = await self.attempt(lambda c: c.get_run(self.run_id), what=f"loading run #{self.run_id}")
            if run is None:
                return
            self.run = run
            self._show_run(run)
            if not self._spec_done or (not was_over and self.tab == "summary"):
                await self._load_spec()
            if not self._metrics_done or (not was_over and self.tab == "metrics"):
                points = await self.attempt(lambda c: c.run_metrics(self.run_id), what="loading metrics")
                if points is not None:
                    self.query_one(MetricsGrid).update(points)
                    self._metrics_done = True
            if self.tab == "artifacts" and not self._artifacts_done:
                await self._load_artifacts(over=run.state.is_terminal())
            if self.tab == "history" and run.attempt > 1:  # each attempt, its class and reason
                tries = await self.attempt(lambda c: c.run_attempts(self.run_id), what="loading attempts")
                if tries is not None:
                    self.query_one(AttemptsTable).update_items(tries, self.config.clock())
            if self.tab == "trials" and not self._trials_done:
                await self._load_trials(over=run.state.is_terminal())
        finally:
            self._loading = False

    async def _load_artifacts(self, *, over: bool) -> None:
        items = await self.attempt(lambda c: c.run_artifacts(self.run_id), what="loading artifacts")
        if items is not None:
            self.query_one(ArtifactsTable).update_items(items)
            self._artifacts_done = over  # a finished run's artifacts no longer change

    async def _load_trials(self, *, over: bool) -> None:
        page = await self.attempt(lambda c: c.run_trials(self.run_id), what="loading trials")
        if page is not None:
            self.query_one(TrialsTable).update_trials(page)
            self._trials_done = over  # a finished run's trials no longer change

    async def _load_spec(self) -> None:
        spec_widget = self.query_one("#spec", Static)
        try:
            spec = await self.api.call(lambda c: c.run_spec(self.run_id))
        except Unavailable:
            return
        except ControlAPIError as exc:
            self._spec_done = True  # control said why: no point asking again every refresh
            spec_widget.update(Text(f"no spec to show: {exc}", style="dim"))
            return
        self._spec_done = True
        self.spec = spec
        spec_widget.update(spec_renderable(spec))

    def _show_run(self, run: RunOut) -> None:
        self.query_one("#run-head", Static).update(head_text(run, self.config.clock()))
        table = self.query_one("#history-table", DataTable)
        if table.row_count != len(run.history):
            now = self.config.clock()
            with self.app.batch_update():
                table.clear()
                for t in run.history:
                    table.add_row(
                        clock_time(t.at, now),
                        state_text(t.from_state.value if t.from_state else None),
                        state_text(t.to_state.value),
                        t.reason,
                    )

    # -- keys -------------------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._tab_shown(tab)

    @on(TabbedContent.TabActivated)
    def _activated(self, event: TabbedContent.TabActivated) -> None:
        self._tab_shown(event.pane.id or "")

    def _tab_shown(self, tab: str) -> None:
        if tab == "log":
            if not self._log_started:
                self._log_started = True
                self.query_one(RunLog).poll()
            self.query_one(LogView).focus()
        elif tab == "history":
            self.query_one("#history-table", DataTable).focus()
        elif tab == "metrics":
            self.query_one(MetricsGrid).focus()
        elif tab == "artifacts":
            self.query_one(ArtifactsTable).focus()
        elif tab == "trials":
            self.query_one(TrialsTable).focus()
        elif tab == "summary":
            self.query_one("#spec-scroll").focus()
        stale = (
            (tab in ("metrics", "summary") and not self.over)
            or (tab == "artifacts" and not self._artifacts_done)
            or (tab == "trials" and not self._trials_done)
        )
        if stale and self.run is not None and not self._loading:
            self._load()  # what this tab shows, fresh

    def action_stop(self) -> None:
        self._stop()

    @loader("run-action")
    async def _stop(self) -> None:
        label = self.run.node_name if self.run else ""
        if await actions.stop_run(self, self.run_id, label=label) is not None:
            self.refresh_data()

    def action_start(self) -> None:
        if self.run is None or self.run.node_id is None:
            self.notify(f"run #{self.run_id} has no node to start again", severity="warning")
            return
        self._start(self.run.node_id, self.run.node_name)

    @loader("run-action")
    async def _start(self, node_id: int, name: str) -> None:
        if await actions.start_node(self, node_id, name) is not None:
            self.refresh_data()
