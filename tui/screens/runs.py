"""Runs screen: every run of the space, paged from control, filtered and sorted by control, live.

Only the pages the cursor has reached are loaded (`config.page_size` runs per request); the next
page loads as the cursor nears the end. `/` filters on the server (`q`), a header click or `<` `>`
`!` sorts on the server, `f` keeps the cursor on the newest run.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from control.schemas import RunOut, RunPage
from tui import actions
from tui.format import count
from tui.screens.base import AtomScreen, loader
from tui.widgets.runs_table import COLUMNS, TEXT_SORTS, RunsTable

MAX_LIMIT = 1000
"""The most runs control returns per request."""


class RunFilter(Input):
    """The `/` field: typing filters at once; Enter goes back to the table; Esc clears."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "clear", "Clear the filter", show=False)]

    def action_clear(self) -> None:
        screen = self.screen
        if isinstance(screen, RunsScreen):
            screen.set_filter("")
            screen.table.focus()


class RunsScreen(AtomScreen):
    """The runs of the current space, newest first."""

    TITLE_TEXT = "Runs"
    DEFAULT_CSS = """
    RunsScreen #runs-status { height: 1; padding: 0 1; color: $text-muted; }
    RunsScreen RunFilter { display: none; }
    RunsScreen RunFilter.shown { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("d", "describe", "Describe", show=False),
        Binding("l", "logs", "Logs"),
        Binding("s", "start", "Start node"),
        Binding("x", "stop", "Stop"),
        Binding("f", "follow", "Follow"),
        Binding(
            "less_than_sign", "sort_by(-1)", "Sort by the column to the left", show=False, key_display="<"
        ),
        Binding(
            "greater_than_sign", "sort_by(1)", "Sort by the column to the right", show=False, key_display=">"
        ),
        Binding("exclamation_mark", "reverse", "Reverse the sort", show=False, key_display="!"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.query_text = ""
        self.sort = "id"
        self.desc = True
        self.follow = False
        self.total: int | None = None
        self._generation = 0
        """Bumped when the space, filter or sort changes: answers to older requests are dropped."""
        self._space_shown = ""
        self._loading: int | None = None
        """The generation a load is under way for."""

    def compose_body(self) -> list[Widget]:
        return [
            RunFilter(
                placeholder="filter: words, state:running node:train type:TRAIN adapter:local, a run id"
            ),
            RunsTable(id="runs-table"),
            Static("loading runs…", id="runs-status"),
        ]

    def on_mount(self) -> None:
        if self.query_text:
            self._show_filter(self.query_text)
        self.table.focus()

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    @property
    def runs(self) -> list[RunOut]:
        return self.table.runs

    # -- loading ----------------------------------------------------------------------------

    def refresh_data(self) -> None:
        if self.space != self._space_shown:
            self._space_shown = self.space
            self._generation += 1
        elif self._loading == self._generation:
            return  # the same load is under way: let it finish rather than start over
        self._load(self._generation)

    async def _page(self, offset: int, limit: int) -> RunPage | None:
        """One page with the current filter and sort."""
        space, q, sort, desc = self.space, self.query_text or None, self.sort, self.desc
        return await self.attempt(
            lambda c: c.list_runs(space=space, q=q, sort=sort, desc=desc, limit=limit, offset=offset),
            what="loading runs",
        )

    @loader("runs")
    async def _load(self, generation: int) -> None:
        """The first page; on a refresh with the same filter and sort, as many runs as are loaded."""
        self._loading = generation
        try:
            await self._fill(generation)
        finally:
            if self._loading == generation:
                self._loading = None

    async def _fill(self, generation: int) -> None:
        same = generation == self.table_generation
        want = max(self.config.page_size, len(self.runs)) if same else self.config.page_size
        items: list[RunOut] = []
        total = 0
        while len(items) < want:
            limit = min(MAX_LIMIT, want - len(items))
            page = await self._page(len(items), limit)
            if page is None:
                return
            items += page.items
            total = page.total
            if len(page.items) < limit:
                break
        if generation != self._generation:
            return
        self.total = total
        self.table_generation = generation
        force = self.table.sort_key != self.sort or self.table.sort_desc != self.desc
        self.table.set_sort(self.sort, self.desc)
        keep = self._newest(items) if self.follow else None
        # another filter or sort: the cursor starts at the top (unless following)
        self.table.show(items, self.config.clock(), force=force, keep=keep, top=not same and keep is None)
        if self.follow:
            self._to_newest()
        self._status()

    table_generation = -1
    """The generation the table's rows belong to."""

    @loader("runs-more")
    async def _load_more(self) -> None:
        generation, offset = self._generation, len(self.runs)
        if generation != self.table_generation or (self.total is not None and offset >= self.total):
            return
        page = await self._page(offset, self.config.page_size)
        if page is None or generation != self._generation or offset != len(self.runs):
            return
        self.total = page.total
        self.table.append(page.items)
        self._status()

    def _status(self) -> None:
        parts = [f"{count(len(self.runs))} of {count(self.total or 0)} runs"]
        if self.query_text:
            parts.append(f"filter {self.query_text!r}")
        label = next(c.label for c in COLUMNS if c.sort == self.sort).lower()
        parts.append(f"sort {label} {'▼' if self.desc else '▲'}")
        if self.follow:
            parts.append("follow")
        self.query_one("#runs-status", Static).update(" · ".join(parts))

    # -- filter and sort --------------------------------------------------------------------

    def set_filter(self, query: str) -> None:
        """Filter the runs with control's `q` syntax (the app's `open_runs` calls this)."""
        self.query_text = query.strip()
        if self.is_mounted:
            self._show_filter(query)

    def _show_filter(self, query: str) -> None:
        field = self.query_one(RunFilter)
        field.set_class(bool(query), "shown")
        if field.value != query:
            field.value = query  # posts Changed, which reloads
        else:
            self._reload()

    def _reload(self) -> None:
        self._generation += 1
        self._load(self._generation)

    def action_filter(self) -> None:
        field = self.query_one(RunFilter)
        field.add_class("shown")
        field.focus()

    @on(Input.Changed, "RunFilter")
    def _filter_typed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_text = event.value.strip()
        self._reload()

    @on(Input.Submitted, "RunFilter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value:
            self.query_one(RunFilter).remove_class("shown")
        self.table.focus()

    def sort_by(self, sort: str, desc: bool | None = None) -> None:
        """Sort by one of `SORT_KEYS` (same key again: reverse)."""
        if desc is None:
            desc = not self.desc if sort == self.sort else sort not in TEXT_SORTS
        self.sort, self.desc = sort, desc
        self._reload()

    def action_sort_by(self, step: int) -> None:
        shown = [c.sort for c in COLUMNS if c.key in self.table.widths and c.sort]
        here = shown.index(self.sort) if self.sort in shown else 0
        self.sort_by(shown[(here + step) % len(shown)])

    def action_reverse(self) -> None:
        self.sort_by(self.sort, not self.desc)

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        col = next(c for c in COLUMNS if c.key == event.column_key.value)
        if col.sort:
            self.sort_by(col.sort)

    # -- follow -----------------------------------------------------------------------------

    @staticmethod
    def _newest(runs: list[RunOut]) -> int | None:
        return max((r.id for r in runs), default=None)

    def _to_newest(self) -> None:
        newest = self._newest(self.runs)
        index = self.table.index_of(newest) if newest is not None else None
        if index is not None and index != self.table.cursor_row:
            self.table.move_cursor(row=index)

    def action_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self._to_newest()
        self._status()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.follow and self.table.current_id != self._newest(self.runs):
            self.follow = False
            self._status()
        near = max(5, self.config.page_size // 10)
        if (
            self.total is not None
            and len(self.runs) < self.total
            and self.table.cursor_row >= len(self.runs) - near
        ):
            self._load_more()

    # -- actions on the selected run --------------------------------------------------------

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_describe()

    def _current(self) -> RunOut | None:
        run = self.table.current
        if run is None:
            self.notify("no run selected", severity="warning")
        return run

    def action_describe(self) -> None:
        run = self._current()
        if run is not None:
            self.atom.open_run(run.id)

    def action_logs(self) -> None:
        from tui.screens.run_detail import RunDetailScreen

        run = self._current()
        if run is not None:
            self.app.push_screen(RunDetailScreen(run.id, tab="log"))

    def action_stop(self) -> None:
        run = self._current()
        if run is not None:
            self._stop(run)

    @loader("run-action")
    async def _stop(self, run: RunOut) -> None:
        if await actions.stop_run(self, run.id, label=run.node_name) is not None:
            self.refresh_data()

    def action_start(self) -> None:
        run = self._current()
        if run is None:
            return
        if run.node_id is None:
            self.notify(f"run #{run.id} has no node to start again", severity="warning")
            return
        self._start(run.node_id, run.node_name)

    @loader("run-action")
    async def _start(self, node_id: int, name: str) -> None:
        if await actions.start_node(self, node_id, name) is not None:
            self.refresh_data()
