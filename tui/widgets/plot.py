"""Braille line plots of a run's metrics: `render_plot` draws one series into text, `MetricPlot` shows it.

Each terminal cell holds a 2x4 grid of braille dots, so a 60x8 plot has 120x32 points of
resolution. Non-finite values (NaN, inf) are left out of the line (and counted in the title); a
constant series is drawn through the middle; a single point is drawn as a dot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from control.schemas import MetricPoint

#: braille dot bits by (x, y) inside a cell (x: 0..1, y: 0..3, top to bottom)
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_BLANK = 0x2800

COLOURS = ("cyan", "magenta", "green", "yellow", "bright_blue", "red")


def fmt_value(value: float) -> str:
    """A metric value in at most ~8 characters: `0.4211`, `1.2e+05`, `nan`."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return text if len(text) <= 8 else f"{value:.4g}"
    return f"{value:.2e}"


@dataclass(frozen=True)
class Canvas:
    """A drawn series: `rows` of braille characters and the value ranges they span."""

    rows: list[str]
    y_min: float
    y_max: float
    x_min: float
    x_max: float
    dropped: int
    """Points left out because their value was NaN or infinite."""


def _range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:
        pad = abs(low) * 0.1 or 0.5
        return low - pad, high + pad
    return low, high


def _line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """Bresenham: the pixels from (x0, y0) to (x1, y1) inclusive."""
    points = []
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        points.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return points
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def render_plot(points: Sequence[tuple[float, float]], width: int, height: int) -> Canvas:
    """Draw `points` (x, y), in x order, as a braille line `width` cells by `height` rows.

    A non-finite y breaks the line there. With no finite point the canvas is blank with a 0..1 range.
    """
    width, height = max(1, width), max(1, height)
    finite = [(float(x), float(y)) for x, y in points if math.isfinite(y) and math.isfinite(x)]
    dropped = len(points) - len(finite)
    grid = [[0] * width for _ in range(height)]
    if not finite:
        return Canvas([chr(_BLANK) * width for _ in range(height)], 0.0, 1.0, 0.0, 1.0, dropped)
    y_min, y_max = _range([y for _, y in finite])
    x_lo, x_hi = min(x for x, _ in finite), max(x for x, _ in finite)
    px_w, px_h = width * 2, height * 4

    def pixel(x: float, y: float) -> tuple[int, int]:
        px = 0 if x_hi == x_lo else round((x - x_lo) / (x_hi - x_lo) * (px_w - 1))
        if x_hi == x_lo:
            px = px_w // 2
        py = round((y_max - y) / (y_max - y_min) * (px_h - 1))
        return px, py

    prev: tuple[int, int] | None = None
    for x, y in points:
        if not (math.isfinite(y) and math.isfinite(x)):
            prev = None
            continue
        here = pixel(float(x), float(y))
        for px, py in _line(*prev, *here) if prev else [here]:
            grid[py // 4][px // 2] |= _DOTS[px % 2][py % 4]
        prev = here
    rows = ["".join(chr(_BLANK | bits) for bits in row) for row in grid]
    return Canvas(rows, y_min, y_max, x_lo, x_hi, dropped)


def plot_text(name: str, points: Sequence[tuple[float, float]], width: int, height: int, colour: str) -> Text:
    """The whole plot as text: a title with the last value, y labels, the curve, the x axis with steps.

    Uses `height` rows (title, curve rows, axis, step labels) and `width` cells; tiny sizes still
    render the title.
    """
    last = points[-1] if points else None
    title = Text(name, style=f"bold {colour}")
    if last is not None:
        title.append(f"  last {fmt_value(last[1])}", style="bold")
        title.append(f" @ step {int(last[0])}", style="dim")
    finite = [y for _, y in points if math.isfinite(y)]
    if finite:
        title.append(f"  min {fmt_value(min(finite))}  max {fmt_value(max(finite))}", style="dim")
    if not points:
        title.append("  no points yet", style="dim")
    plot_rows = height - 3
    if plot_rows < 1 or width < 12:
        return title
    y_min, y_max = _range(finite) if finite else (0.0, 1.0)
    labels = (fmt_value(y_max), fmt_value(y_min)) if finite else ("", "")
    gutter = max(len(labels[0]), len(labels[1]), 1)
    canvas = render_plot(points, width - gutter - 1, plot_rows)
    if canvas.dropped:
        title.append(f"  ({canvas.dropped} not finite)", style="yellow")
    title.truncate(width, overflow="ellipsis")
    out = Text(no_wrap=True, overflow="crop")
    out.append_text(title)
    for i, row in enumerate(canvas.rows):
        label = labels[0] if i == 0 else labels[1] if i == len(canvas.rows) - 1 else ""
        out.append("\n")
        out.append(label.rjust(gutter), style="dim")
        out.append("┤" if label else "│", style="dim")
        out.append(row, style=colour)
    out.append("\n" + " " * gutter + "└" + "─" * (width - gutter - 1), style="dim")
    first, end = (f"{int(canvas.x_min)}", f"{int(canvas.x_max)}") if finite else ("", "")
    span = width - gutter - 1
    steps = first + end.rjust(max(0, span - len(first))) if canvas.x_max != canvas.x_min else first
    out.append("\n" + " " * (gutter + 1) + steps, style="dim")
    return out


class MetricPlot(Widget):
    """One metric's curve (x: step). Set `points` to update it; it redraws on resize."""

    DEFAULT_CSS = """
    MetricPlot { height: 10; min-height: 4; padding: 0 1; }
    """

    points: reactive[tuple[tuple[float, float], ...]] = reactive((), always_update=False)

    def __init__(
        self,
        name: str,
        points: Sequence[tuple[float, float]] = (),
        *,
        colour: str = "cyan",
        id: str | None = None,  # noqa: A002 - Textual's name
    ) -> None:
        super().__init__(id=id)
        self.metric = name
        self.colour = colour
        self.set_reactive(MetricPlot.points, tuple(points))

    def render(self) -> Text:
        size = self.content_size
        return plot_text(self.metric, self.points, size.width, size.height, self.colour)


class MetricsGrid(VerticalScroll):
    """One `MetricPlot` per metric name, in one column (narrow) or two (wide), filling the height."""

    DEFAULT_CSS = """
    MetricsGrid { height: 1fr; }
    MetricsGrid #plots { height: auto; grid-size: 1; grid-gutter: 0 1; }
    MetricsGrid #no-metrics { color: $text-muted; padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        yield Static("no metrics reported yet", id="no-metrics")
        yield Grid(id="plots")

    def update(self, points: Sequence[MetricPoint]) -> None:
        """Show `points` (any order of names; each name's points in step order)."""
        series: dict[str, list[tuple[float, float]]] = {}
        for p in points:
            series.setdefault(p.name, []).append((float(p.step), p.value))
        grid = self.query_one("#plots", Grid)
        plots = {plot.metric: plot for plot in grid.query(MetricPlot)}
        new = [
            MetricPlot(name, values, colour=COLOURS[(len(plots) + i) % len(COLOURS)])
            for i, (name, values) in enumerate((n, v) for n, v in series.items() if n not in plots)
        ]
        for name, values in series.items():
            if name in plots:
                plots[name].points = tuple(values)
        if new:
            grid.mount_all(new)
        self.query_one("#no-metrics", Static).display = not series
        self.call_after_refresh(self._arrange)

    def on_resize(self) -> None:
        self._arrange()

    def _arrange(self) -> None:
        grid = self.query_one("#plots", Grid)
        n = len(grid.children)
        if not n:
            return
        columns = 2 if self.size.width >= 120 and n > 1 else 1
        rows = -(-n // columns)
        height = max(8, self.size.height // rows)
        grid.set_styles(f"grid-size: {columns}; grid-rows: {height};")
