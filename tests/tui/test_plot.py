"""The braille plot: what `render_plot` draws for ordinary, constant, single-point and broken series,
and the `MetricPlot` widget redrawing at its new size."""

from __future__ import annotations

import math

from textual.app import App, ComposeResult

from tests.tui.conftest import until
from tui.widgets.plot import MetricPlot, fmt_value, plot_text, render_plot

BLANK = chr(0x2800)


def dots(rows: list[str]) -> set[tuple[int, int]]:
    """The (x, y) of every braille dot set in `rows` (2 x 4 per cell)."""
    bits = {(0, 0): 0x01, (0, 1): 0x02, (0, 2): 0x04, (0, 3): 0x40, (1, 0): 0x08, (1, 1): 0x10}
    bits |= {(1, 2): 0x20, (1, 3): 0x80}
    out = set()
    for cy, row in enumerate(rows):
        for cx, ch in enumerate(row):
            value = ord(ch) - 0x2800
            for (dx, dy), bit in bits.items():
                if value & bit:
                    out.add((cx * 2 + dx, cy * 4 + dy))
    return out


def test_falling_series_spans_the_canvas() -> None:
    canvas = render_plot([(i, 10.0 - i) for i in range(11)], 20, 5)
    assert len(canvas.rows) == 5 and all(len(r) == 20 for r in canvas.rows)
    assert (canvas.y_min, canvas.y_max, canvas.x_min, canvas.x_max) == (0.0, 10.0, 0.0, 10.0)
    points = dots(canvas.rows)
    assert (0, 0) in points, "the first point is top left"
    assert (39, 19) in points, "the last point is bottom right"
    # a connected line: every pixel column has a dot
    assert {x for x, _ in points} == set(range(40))


def test_constant_series_is_a_flat_line_in_the_middle() -> None:
    canvas = render_plot([(i, 3.0) for i in range(5)], 10, 4)
    ys = {y for _, y in dots(canvas.rows)}
    assert len(ys) == 1
    assert 6 <= ys.pop() <= 9
    assert canvas.y_min < 3.0 < canvas.y_max


def test_single_point_is_one_dot() -> None:
    canvas = render_plot([(7, 0.25)], 10, 3)
    assert len(dots(canvas.rows)) == 1
    text = plot_text("loss", [(7, 0.25)], 30, 6, "cyan").plain
    assert "last 0.25 @ step 7" in text


def test_nan_and_inf_break_the_line_and_are_counted() -> None:
    points = [(0, 1.0), (1, 2.0), (2, math.nan), (3, math.inf), (4, 1.0), (5, 2.0)]
    canvas = render_plot(points, 12, 4)
    assert canvas.dropped == 2
    assert canvas.y_min == 1.0 and canvas.y_max == 2.0
    # no dots between x=1 and x=4 (the gap left by the non-finite values)
    xs = {x for x, _ in dots(canvas.rows)}
    gap = range(round(1 / 5 * 23) + 1, round(4 / 5 * 23))
    assert not xs & set(gap)
    assert "(2 not finite)" in plot_text("loss", points, 60, 8, "cyan").plain


def test_only_nan_or_nothing_draws_a_blank_canvas() -> None:
    assert render_plot([(0, math.nan)], 5, 2).rows == [BLANK * 5] * 2
    assert render_plot([], 5, 2).rows == [BLANK * 5] * 2
    assert "no points yet" in plot_text("loss", [], 30, 6, "cyan").plain


def test_labels_axis_and_title() -> None:
    lines = plot_text("accuracy", [(0, 0.5), (29, 0.935)], 40, 8, "green").plain.splitlines()
    assert lines[0].startswith("accuracy  last 0.935 @ step 29")
    assert lines[1].strip().startswith("0.935┤")
    assert lines[5].strip().startswith("0.5┤")
    assert "└" in lines[6]
    assert lines[7].split() == ["0", "29"]
    assert len(lines) == 8 and all(len(line) <= 40 for line in lines)


def test_tiny_sizes_show_the_title_only() -> None:
    assert "\n" not in plot_text("loss", [(0, 1.0)], 8, 3, "cyan").plain


def test_fmt_value() -> None:
    assert fmt_value(0.42111) == "0.4211"
    assert fmt_value(1.0) == "1"
    assert fmt_value(123456.0) == "1.23e+05"
    assert fmt_value(math.nan) == "nan"
    assert fmt_value(0) == "0"


class PlotApp(App[None]):
    def compose(self) -> ComposeResult:
        yield MetricPlot("loss", [(i, 1 / (1 + i)) for i in range(20)], id="p")


async def test_widget_redraws_on_resize_and_update() -> None:
    app = PlotApp()
    async with app.run_test(size=(60, 12)) as pilot:
        plot = app.query_one(MetricPlot)
        plot.styles.height = 10
        await pilot.pause()
        narrow = plot.render().plain.splitlines()
        assert max(len(line) for line in narrow) <= 58
        await pilot.resize_terminal(120, 12)
        await until(pilot, lambda: plot.content_size.width > 100, what="the plot to widen")
        wide = plot.render().plain.splitlines()
        assert max(len(line) for line in wide) > 100
        plot.points = ((0, 1.0), (1, 5.0))
        assert "last 5 @ step 1" in plot.render().plain
