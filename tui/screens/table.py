"""`TableScreen`: the shape the resource, models and services screens share.

A table of rows from control, a side pane describing the selected row (beside the table from
`WIDE_AT` columns, under it after `d` when narrower), `/` filter over every field, sort by
clicking a header, and a one-line status under the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical
from textual.events import Resize
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from tui.screens.base import AtomScreen, loader
from tui.widgets.describe import DescribePane, Section, row_items

WIDE_AT = 120
"""Terminal columns from which the side pane sits beside the table and every column shows."""

LAST = ("id", "spaceId", "createTime", "updateTime")
"""Bookkeeping fields the describe pane lists after the ones a user came for."""


@dataclass(frozen=True)
class Column:
    """One table column: its header, how a row becomes its cell, and whether it needs a wide screen."""

    label: str
    cell: Callable[[dict[str, Any]], Any]
    wide: bool = False


def clip(value: Any, width: int) -> str:
    """`value` as text cut to `width` characters (an ellipsis marks the cut)."""
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def dash(value: Any) -> Any:
    """`-` for an empty value, the value otherwise."""
    return Text("-", style="bright_black") if value in (None, "", {}, []) else value


def _plain(cell: Any) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def fill_table(
    table: DataTable[Any], labels: Sequence[str], rows: Sequence[tuple[str, Sequence[Any]]], keep: str | None
) -> None:
    """Replace the table's rows, keeping the cursor on the row `keep` when it is still there.

    Columns get widths that fit their cells, set here rather than measured by the table on its
    next idle pass: a frame drawn before that pass would otherwise stay cached with every cell cut
    to its header's width.
    """
    widths = [
        max([cell_len(label), *(cell_len(_plain(cells[i])) for _, cells in rows)])
        for i, label in enumerate(labels)
    ]
    if [(str(c.label), c.width) for c in table.columns.values()] != list(zip(labels, widths, strict=True)):
        table.clear(columns=True)
        for label, width in zip(labels, widths, strict=True):
            table.add_column(label, key=label, width=width)
    else:
        table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    keys = [key for key, _ in rows]
    if keep in keys:
        table.move_cursor(row=keys.index(keep), animate=False)


def _sort_key(cell: Any) -> tuple[int, float, str]:
    text = _plain(cell).strip().lstrip("#").split(" ")[0]
    try:
        return (0, float(text.replace(",", "")), "")
    except ValueError:
        return (1, 0.0, _plain(cell).lower())


class TableScreen(AtomScreen):
    """A table of rows from control, a side pane about the selected row, a filter and a status line.

    Subclasses set `NOUN`, `columns()` and `fetch()`; they may override `compose_side()` and
    `show_selected()` for another side pane.
    """

    NOUN: ClassVar[str] = "row"
    SIDE_ALWAYS: ClassVar[bool] = False
    """Show the side pane at every width (otherwise only from `WIDE_AT` columns, or after `d`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh_data", "Refresh", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("d", "describe", "Describe"),
        Binding("escape", "back", "Back / clear filter", show=False),
    ]

    DEFAULT_CSS = """
    TableScreen #tbl-body { height: 1fr; }
    TableScreen #tbl-body.-wide { layout: horizontal; }
    TableScreen #tbl-main { height: 1fr; width: 1fr; }
    TableScreen #tbl-body.-wide #tbl-main { width: 3fr; }
    TableScreen #tbl-side { display: none; height: 1fr; border-top: solid $primary 40%; }
    TableScreen #tbl-body.-side #tbl-side { display: block; }
    TableScreen #tbl-body.-wide #tbl-side { width: 2fr; border-top: none; border-left: solid $primary 40%; }
    TableScreen #tbl-status { height: auto; display: none; padding: 0 1; }
    TableScreen #tbl-status.shown { display: block; }
    TableScreen #tbl-status.ok { color: $success; }
    TableScreen #tbl-status.error { color: $error; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        """Every row control returned (the filter only hides some)."""
        self.shown: list[dict[str, Any]] = []
        """The rows in the table, in table order."""
        self.loaded = False
        self._filter = ""
        self._sort: tuple[int, bool] | None = None
        self._side_wanted: bool | None = None
        self._wide: bool | None = None
        self._signature: list[tuple[str, list[str]]] | None = None
        self._want_key: str | None = None

    # -- what subclasses say ----------------------------------------------------------------

    def columns(self) -> Sequence[Column]:
        return ()

    def row_key(self, row: dict[str, Any]) -> str:
        return str(row.get("id"))

    async def fetch(self) -> list[dict[str, Any]] | None:
        """The rows, or None when control could not be asked (the banner or a notice says why)."""
        return []

    def compose_side(self) -> Iterable[Widget]:
        yield DescribePane(clock=self.config.clock, id="describe")

    def describe(self, row: dict[str, Any]) -> list[Section]:
        """What the describe pane shows for `row` (every field, bookkeeping last)."""
        first = [k for k in row if k not in LAST]
        return [("", row_items(row, first=first))]

    def show_selected(self, row: dict[str, Any] | None) -> None:
        """Put `row` (None: nothing selected) in the side pane."""
        pane = self.query_one("#describe", DescribePane)
        if row is None:
            pane.clear("nothing selected" if self.loaded else "loading ...")
        else:
            pane.show(f"{self.NOUN} {self.row_key(row)}", self.describe(row))

    # -- layout -----------------------------------------------------------------------------

    def compose_body(self) -> Iterable[Widget]:
        yield Input(placeholder="filter: words to match (Enter keeps it, Esc clears)", id="filter")
        with Container(id="tbl-body"):
            with Vertical(id="tbl-main"):
                yield Static("", id="tbl-title", classes="pane-title")
                yield DataTable(id="tbl", cursor_type="row", zebra_stripes=True)
            with Vertical(id="tbl-side"):
                yield from self.compose_side()
        yield Static("", id="tbl-status")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#tbl", DataTable)

    def on_mount(self) -> None:
        self.query_one("#filter", Input).add_class("filter-bar")
        self._layout()
        self.table.focus()

    def on_resize(self, _: Resize) -> None:
        self._layout()

    def side_shown(self) -> bool:
        if self.SIDE_ALWAYS:
            return True
        return self._side_wanted if self._side_wanted is not None else bool(self._wide)

    def _layout(self) -> None:
        wide = self.size.width >= WIDE_AT
        changed = wide != self._wide
        self._wide = wide
        body = self.query_one("#tbl-body")
        body.set_class(wide, "-wide")
        body.set_class(self.side_shown(), "-side")
        if changed:
            self._signature = None
            self.render_rows()

    def visible_columns(self) -> list[Column]:
        return [c for c in self.columns() if self._wide or not c.wide]

    @property
    def wide(self) -> bool:
        return bool(self._wide)

    # -- rows -------------------------------------------------------------------------------

    def refresh_data(self) -> None:
        self._load()

    @loader("load")
    async def _load(self) -> None:
        rows = await self.fetch()
        if rows is None:
            return
        self.rows = rows
        self.loaded = True
        self.render_rows()

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether `row` has every word of the filter in its values (any field, any case)."""
        if not self._filter:
            return True
        text = " ".join(json.dumps(value, default=str) for value in row.values()).lower()
        return all(word in text for word in self._filter.lower().split())

    def render_rows(self) -> None:
        """Fill the table from `rows` (filtered, sorted), keeping the cursor on the same row."""
        if self._wide is None:
            return
        table = self.table
        keep = self._want_key or self.selected_key()
        cols = self.visible_columns()
        built = [(self.row_key(r), [c.cell(r) for c in cols], r) for r in self.rows if self.matches(r)]
        if self._sort is not None and self._sort[0] < len(cols):
            index, reverse = self._sort
            built.sort(key=lambda item: _sort_key(item[1][index]), reverse=reverse)
        signature = [(key, [_plain(c) for c in cells]) for key, cells, _ in built]
        self.shown = [row for _, _, row in built]
        if signature != self._signature:
            self._signature = signature
            fill_table(table, [c.label for c in cols], [(key, cells) for key, cells, _ in built], keep)
        if self._want_key is not None and self._want_key in {k for k, _ in signature}:
            self._want_key = None
        self._title()
        self.show_selected(self.selected())

    def _title(self) -> None:
        count = f"{len(self.shown)}" if not self._filter else f"{len(self.shown)} of {len(self.rows)}"
        title = Text.assemble((self.TITLE_TEXT, "bold"), f" · {self.space} · {count}")
        if self._filter:
            title.append(f"  filter: {self._filter}", style="italic")
        self.query_one("#tbl-title", Static).update(title)

    def selected(self) -> dict[str, Any] | None:
        """The row under the cursor, or None."""
        index = self.table.cursor_row
        return self.shown[index] if self.table.row_count and 0 <= index < len(self.shown) else None

    def selected_key(self) -> str | None:
        row = self.selected()
        return self.row_key(row) if row is not None else None

    def select(self, key: str) -> None:
        """Move the cursor to the row `key` now, or once it is loaded."""
        keys = [self.row_key(r) for r in self.shown]
        if key in keys:
            self.table.move_cursor(row=keys.index(key), animate=False)
        else:
            self._want_key = key

    @on(DataTable.RowHighlighted, "#tbl")
    def _highlighted(self) -> None:
        self.show_selected(self.selected())

    @on(DataTable.RowSelected, "#tbl")
    def _chosen(self) -> None:
        if not self.side_shown():
            self.action_describe()

    @on(DataTable.HeaderSelected, "#tbl")
    def _sort_by(self, event: DataTable.HeaderSelected) -> None:
        index = event.column_index
        reverse = self._sort is not None and self._sort[0] == index and not self._sort[1]
        self._sort = (index, reverse)
        self._signature = None
        self.render_rows()

    def say(self, message: str | Text, *, ok: bool | None = None) -> None:
        """One line under the table (green when ok, red when not, plain when None; empty hides it)."""
        status = self.query_one("#tbl-status", Static)
        status.update(message)
        status.set_class(bool(message), "shown")
        status.set_class(ok is True, "ok")
        status.set_class(ok is False, "error")

    # -- keys -------------------------------------------------------------------------------

    def set_filter(self, query: str) -> None:
        """Show only the rows that contain every word of `query` (in any field)."""
        bar = self.query_one("#filter", Input)
        bar.value = query
        bar.set_class(bool(query), "shown")
        self._filter = query.strip()
        self.render_rows()

    def action_filter(self) -> None:
        bar = self.query_one("#filter", Input)
        bar.add_class("shown")
        bar.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._filter = event.value.strip()
        self.render_rows()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            event.input.remove_class("shown")
        self.table.focus()

    def action_back(self) -> None:
        bar = self.query_one("#filter", Input)
        if bar.has_class("shown") or self._filter:
            self.set_filter("")
            self.table.focus()
            return
        super().action_back()

    def action_describe(self) -> None:
        self._side_wanted = not self.side_shown()
        self._layout()
