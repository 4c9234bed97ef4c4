"""The runs table: columns that fit the width, cells from `RunOut`s, in-place updates keyed by run id.

`RunsTable.show(runs)` updates the cells that changed when the same runs are shown (no flicker) and
rebuilds, keeping the cursor on the same run and at the same place on screen, when runs came or went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from control.schemas import RunOut
from tui.format import clock_time, progress_bar, run_duration, state_text


@dataclass(frozen=True)
class Col:
    """A column: its key, header, the server's sort key, its narrowest width and share of spare room."""

    key: str
    label: str
    sort: str
    min_width: int
    weight: int = 0
    optional: bool = False
    """Hidden first when the table is narrow."""
    wide: bool = False
    """Shown only when the table is wide (`WIDE` cells and more)."""


COLUMNS: tuple[Col, ...] = (
    Col("id", "RUN", "id", 6),
    Col("node", "NODE", "node", 9, weight=3),
    Col("type", "TYPE", "operator", 11),
    Col("adapter", "ADAPTER", "adapter", 7, weight=1, optional=True),
    Col("state", "STATE", "state", 11),
    Col("attempt", "TRY", "attempt", 3, optional=True),
    Col("started", "STARTED", "started", 11),
    Col("duration", "DURATION", "duration", 8),
    Col("progress", "PROGRESS", "progress", 8, weight=2),
    Col("reason", "REASON", "", 20, weight=10, wide=True),
)
WIDE = 160
SORT_KEYS: tuple[str, ...] = tuple(c.sort for c in COLUMNS if c.sort)
TEXT_SORTS = {"node", "operator", "adapter", "state"}
"""Sorted A to Z first; the others (numbers, times) largest first."""


def layout(width: int, padding: int = 2) -> list[tuple[Col, int]]:
    """The columns that fit in `width` cells (each also takes `padding`) and their widths.

    Optional columns are dropped while the rest do not fit; spare room goes by weight.
    """
    cols = [c for c in COLUMNS if width >= WIDE or not c.wide]
    while sum(c.min_width + padding for c in cols) > width and any(c.optional for c in cols):
        cols.remove(next(c for c in reversed(cols) if c.optional))
    spare = max(0, width - sum(c.min_width + padding for c in cols))
    weights = sum(c.weight for c in cols) or 1
    widths = [c.min_width + spare * c.weight // weights for c in cols]
    widest = max(range(len(cols)), key=lambda i: cols[i].weight)
    if spare:
        widths[widest] += width - sum(w + padding for w in widths)  # what integer division left over
    return list(zip(cols, widths, strict=True))


def cells(run: RunOut, now: datetime, widths: dict[str, int]) -> list[str | Text]:
    """One row of `run`, in the order of `widths` (the shown columns)."""
    values: dict[str, str | Text] = {}
    for key, width in widths.items():
        if key == "id":
            values[key] = Text(f"#{run.id}", style="bold")
        elif key == "node":
            values[key] = run.node_name
        elif key == "type":
            values[key] = run.operator_runtime_type.value
        elif key == "adapter":
            values[key] = run.adapter
        elif key == "state":
            values[key] = state_text(run.state.value)
        elif key == "attempt":
            values[key] = str(run.attempt)
        elif key == "started":
            values[key] = clock_time(run.started_at, now)
        elif key == "duration":
            values[key] = run_duration(run.started_at, run.finished_at, now)
        elif key == "progress":
            values[key] = progress_bar(run.progress, width=min(20, max(3, width - 5)))
        elif key == "reason":
            values[key] = Text(run.reason, style="red" if run.state.value == "failed" else "dim")
    return [values[k] for k in widths]


class RunsTable(DataTable[str | Text]):
    """A row-cursor table of runs (row key: the run id)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g,home", "scroll_top", "First run", show=False),
        Binding("G,end", "scroll_bottom", "Last loaded run (loads more)", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.runs: list[RunOut] = []
        self.widths: dict[str, int] = {}
        self.sort_key = "id"
        self.sort_desc = True
        self._shown: dict[int, list[str | Text]] = {}
        self._now = datetime.now(UTC)

    # -- columns ----------------------------------------------------------------------------

    def _header(self, col: Col) -> Text:
        if col.sort != self.sort_key:
            return Text(col.label)
        return Text(f"{col.label} {'▼' if self.sort_desc else '▲'}", style="bold")

    def _fit(self, width: int) -> bool:
        """Choose columns for `width`; True when they changed."""
        widths = {c.key: w for c, w in layout(max(20, width - 2), 2 * self.cell_padding)}
        changed = widths != self.widths
        self.widths = widths
        return changed

    def _add_columns(self) -> None:
        for col in COLUMNS:
            if col.key in self.widths:
                self.add_column(self._header(col), width=self.widths[col.key], key=col.key)

    def on_resize(self, event: events.Resize) -> None:
        if self._fit(event.size.width) and self.columns:
            self.show(self.runs, self._now, force=True)

    # -- rows -------------------------------------------------------------------------------

    @property
    def current(self) -> RunOut | None:
        """The run under the cursor."""
        if not self.runs or not (0 <= self.cursor_row < len(self.runs)):
            return None
        return self.runs[self.cursor_row]

    def index_of(self, run_id: int) -> int | None:
        try:
            return self.get_row_index(str(run_id))
        except RowDoesNotExist:
            return None

    def show(
        self,
        runs: Sequence[RunOut],
        now: datetime,
        *,
        force: bool = False,
        keep: int | None = None,
        top: bool = False,
    ) -> None:
        """Show `runs`: cells change in place when the same runs (in the same order) are shown;
        otherwise rebuild, keeping the cursor on run `keep` (default: the current run), or with
        `top` on the first row."""
        self._now = now
        if not self.widths:
            self._fit(self.size.width or 80)
        runs = list(runs)
        keep = keep if keep is not None else self.current_id
        same = not force and self.columns and [r.id for r in runs] == [r.id for r in self.runs]
        self.runs = runs
        if same:
            for run in runs:
                new = cells(run, now, self.widths)
                old = self._shown.get(run.id)
                if old != new:
                    for i, (key, value) in enumerate(zip(self.widths, new, strict=True)):
                        if old is None or value != old[i]:
                            self.update_cell(str(run.id), key, value)
                    self._shown[run.id] = new
            return
        self.rebuild(keep, top=top)

    def rebuild(self, keep: int | None = None, *, top: bool = False) -> None:
        """Clear and refill the table from `self.runs`, with the cursor on run `keep` where it is shown
        (at the same height on screen), else at the same row; with `top`, on the first row."""
        old_index = 0 if top else self.cursor_row
        old_scroll = 0.0 if top else self.scroll_y
        keep = None if top else keep
        with self.app.batch_update():
            self.clear(columns=True)
            self._add_columns()
            self._shown = {}
            for run in self.runs:
                row = cells(run, self._now, self.widths)
                self._shown[run.id] = row
                self.add_row(*row, key=str(run.id))
            index = self.index_of(keep) if keep is not None else None
            if index is not None:
                self.move_cursor(row=index, scroll=False)
                # once the new rows are measured: the same scroll, so the run stays where it was
                self.call_after_refresh(self._scroll_back, max(0.0, old_scroll + index - old_index))
            elif self.runs:
                self.move_cursor(row=min(max(0, old_index), len(self.runs) - 1), scroll=False)
                self.call_after_refresh(self._scroll_back, old_scroll)

    def _scroll_back(self, y: float) -> None:
        self.scroll_to(y=y, animate=False, immediate=True)
        row = self.cursor_row
        self.move_cursor(row=row)  # and the cursor in view whatever the scroll allowed

    def append(self, runs: Sequence[RunOut]) -> None:
        """Add runs after the loaded ones (the next page)."""
        for run in runs:
            if self.index_of(run.id) is not None:
                continue
            row = cells(run, self._now, self.widths)
            self._shown[run.id] = row
            self.runs.append(run)
            self.add_row(*row, key=str(run.id))

    @property
    def current_id(self) -> int | None:
        run = self.current
        return run.id if run else None

    def set_sort(self, sort: str, desc: bool) -> None:
        """Mark the sorted column in the headers at the next `show(..., force=True)` (control sorts)."""
        self.sort_key, self.sort_desc = sort, desc
