"""The exam DAG in the terminal: a box-and-arrow renderer (`draw`) over the layout of
`tui.widgets.dag_layout`, and `DagView`, the scrollable, selectable widget the DAG screen shows.

Layers come from the longest path (a node sits one layer right of its latest predecessor; a source
sits just left of its first successor), edges that span layers pass through invisible points, and a
few barycentre sweeps order each layer to cut crossings. A cycle cannot come from control, but
the layout breaks one anyway (the edge that closes it is left out) instead of looping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer
from textual.geometry import Region
from textual.message import Message
from textual.widgets import Static

from tui.format import STATE_ICONS, STATE_STYLES
from tui.widgets.dag_layout import DagLayout, layout

# -- drawing --------------------------------------------------------------------------------

BOX_H, ROW_GAP, BOX_MIN, BOX_MAX, GAP_EXTRA = 5, 1, 16, 34, 10
UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8
LINES = {
    LEFT | RIGHT: "─", UP | DOWN: "│", DOWN | RIGHT: "╭", DOWN | LEFT: "╮", UP | RIGHT: "╰",
    UP | LEFT: "╯", UP | DOWN | RIGHT: "├", UP | DOWN | LEFT: "┤", LEFT | RIGHT | DOWN: "┬",
    LEFT | RIGHT | UP: "┴", UP | DOWN | LEFT | RIGHT: "┼", LEFT: "╴", RIGHT: "╶", UP: "╵", DOWN: "╷",
}  # fmt: skip
LIGHT, HEAVY, DASHED = tuple("┌┐└┘─│├"), tuple("┏┓┗┛━┃┣"), tuple("┌┐└┘┄┆├")
EDGE_STYLE = DIM = "bright_black"


@dataclass(frozen=True)
class DagBox:
    """What one node's box shows."""

    id: int
    name: str
    kind: str
    """The operator runtime type."""
    state: str | None
    """The last run's state (None: never ran)."""
    ready: bool = True
    """False while the node is not EDIT_FINISH (marked ✎)."""
    reason: str = ""
    """Why its run is in its state; a skipped node shows it in place of its kind."""


@dataclass(frozen=True)
class Drawing:
    text: Text
    boxes: dict[int, Region]
    """Node id -> where its box is in `text`."""


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.cells = [[(" ", "")] * width for _ in range(height)]
        self.bits: dict[tuple[int, int], int] = {}

    def put(self, x: int, y: int, text: str, style: str = "") -> None:
        for i, ch in enumerate(text):
            if 0 <= x + i < self.width and 0 <= y < self.height:
                self.cells[y][x + i] = (ch, style)

    def path(self, points: list[tuple[int, int]]) -> None:
        """An axis-aligned polyline; joins and crossings become the right box-drawing character."""
        for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
            if y1 == y2:
                lo, hi = sorted((x1, x2))
                for x in range(lo, hi + 1):
                    self.bits[(x, y1)] = (
                        self.bits.get((x, y1), 0) | (LEFT if x > lo else 0) | (RIGHT if x < hi else 0)
                    )
            else:
                lo, hi = sorted((y1, y2))
                for y in range(lo, hi + 1):
                    self.bits[(x1, y)] = (
                        self.bits.get((x1, y), 0) | (UP if y > lo else 0) | (DOWN if y < hi else 0)
                    )

    def text(self) -> Text:
        for (x, y), bits in self.bits.items():
            if 0 <= x < self.width and 0 <= y < self.height and self.cells[y][x][0] == " ":
                self.cells[y][x] = (LINES.get(bits, " "), EDGE_STYLE)
        out = Text(no_wrap=True, overflow="crop", end="")
        for y, row in enumerate(self.cells):
            if y:
                out.append("\n")
            run, style = "", row[0][1]
            for ch, st in row:
                if st != style:
                    out.append(run, style or None)
                    run, style = "", st
                run += ch
            out.append(run, style or None)
        return out


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def draw(boxes: Sequence[DagBox], lay: DagLayout, *, width: int, selected: int | None = None) -> Drawing:
    """Render `lay` with `boxes` into at least `width` columns (wider when the DAG needs it)."""
    by_id = {box.id: box for box in boxes}
    n = len(lay.layers)
    if n == 0:
        return Drawing(Text("(no nodes)", style="bright_black"), {})
    rank = lay.rank()
    tallest = max(len(layer) for layer in lay.layers)
    step = BOX_H + ROW_GAP
    mid: dict[int, int] = {}
    for layer in lay.layers:
        top = (tallest - len(layer)) * step // 2
        for j, key in enumerate(layer):
            mid[key] = top + j * step + BOX_H // 2
    lanes = [_lanes([(u, v) for u, v in lay.edges if rank[u] == i], mid) for i in range(n - 1)]
    base_gaps = [2 * max(1, len(lane)) + 3 for lane in lanes]
    box_w = max(BOX_MIN, min(BOX_MAX, (width - sum(base_gaps)) // n))
    spare = width - box_w * n - sum(base_gaps)
    extra = min(GAP_EXTRA, spare // (n - 1)) if n > 1 and spare > 0 else 0
    gaps = [g + extra for g in base_gaps]
    used = box_w * n + sum(gaps)
    xs = [max(0, (width - used) // 2)]
    for g in gaps:
        xs.append(xs[-1] + box_w + g)
    canvas = _Canvas(max(width, used), tallest * step - ROW_GAP)
    for u, v in lay.edges:
        i = rank[u]
        start, end = xs[i] + box_w - 1, xs[i + 1]
        if mid[u] == mid[v]:
            canvas.path([(start, mid[u]), (end, mid[v])])
        else:
            lane_x = start + 2 + extra // 2 + 2 * lanes[i][(u, v)]
            canvas.path([(start, mid[u]), (lane_x, mid[u]), (lane_x, mid[v]), (end, mid[v])])
        if v > 0:
            canvas.put(end - 1, mid[v], "▶", EDGE_STYLE)
    regions: dict[int, Region] = {}
    for i, layer in enumerate(lay.layers):
        for key in layer:
            if key < 0:
                canvas.path([(xs[i], mid[key]), (xs[i] + box_w - 1, mid[key])])
            elif key in by_id:
                out = any(u == key for u, _ in lay.edges)
                regions[key] = _box(
                    canvas, by_id[key], xs[i], mid[key] - BOX_H // 2, box_w, key == selected, out
                )
    return Drawing(canvas.text(), regions)


def _lanes(edges: list[tuple[int, int]], mid: dict[int, int]) -> dict[tuple[int, int], int]:
    """The vertical lane (0, 1, ... left to right) of each edge in one gap that changes rows: edges
    into one node share a lane (they merge), and so do edges out of one node into single targets (a fork)."""
    outs: dict[int, int] = {}
    ins: dict[int, int] = {}
    for u, v in edges:
        outs[u] = outs.get(u, 0) + 1
        ins[v] = ins.get(v, 0) + 1
    keys: dict[tuple[int, int], tuple[int, int]] = {}
    for u, v in edges:
        if mid[u] != mid[v]:
            keys[(u, v)] = (mid[u], u) if outs[u] > 1 and ins[v] == 1 else (mid[v], v)
    order = {key: j for j, key in enumerate(sorted(set(keys.values())))}
    return {edge: order[key] for edge, key in keys.items()}


def _box(canvas: _Canvas, box: DagBox, x: int, y: int, w: int, selected: bool, out: bool) -> Region:
    skipped = box.state == "skipped"
    tl, tr, bl, br, h, v, tee = HEAVY if selected else (DASHED if skipped else LIGHT)
    state_style = STATE_STYLES.get(box.state or "", "")
    border = "bold" if selected else (state_style.replace("bold ", "") or EDGE_STYLE)
    inner = w - 4
    state = f"{STATE_ICONS.get(box.state, '·')} {box.state}" if box.state else "- never ran"
    kind = box.kind if box.ready else f"{box.kind} ✎"
    canvas.put(x, y, tl + h * (w - 2) + tr, border)
    lines = [
        (_fit(box.name, inner), "bold reverse" if selected else "bold"),
        (_fit(box.reason, inner), "italic yellow") if skipped and box.reason else (_fit(kind, inner), DIM),
        (_fit(state, inner), state_style or "bright_black"),
    ]
    for row, (text, style) in enumerate(lines, 1):
        canvas.put(x, y + row, v, border)
        canvas.put(x + 1, y + row, " " * (w - 2))
        canvas.put(x + 2, y + row, text, style)
        canvas.put(x + w - 1, y + row, v, border)
    canvas.put(x, y + BOX_H - 1, bl + h * (w - 2) + br, border)
    if out:
        canvas.put(x + w - 1, y + BOX_H // 2, tee, border)
    return Region(x, y, w, BOX_H)


# -- widget ---------------------------------------------------------------------------------


class DagView(ScrollableContainer, can_focus=True):
    """The drawing, scrollable when larger than the screen; arrows/tab move the selection."""

    DEFAULT_CSS = """
    DagView { height: 1fr; border: round $primary-darken-2; padding: 0 0; }
    DagView:focus { border: round $accent; }
    DagView > Static { width: auto; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move('left')", "Previous layer", show=False),
        Binding("right", "move('right')", "Next layer", show=False),
        Binding("up", "move('up')", "Node above", show=False),
        Binding("down", "move('down')", "Node below", show=False),
        Binding("tab", "move('next')", "Next node", show=False),
        Binding("shift+tab", "move('prev')", "Previous node", show=False),
    ]

    class Selected(Message):
        """The selected node changed (None: the DAG is empty)."""

        def __init__(self, node_id: int | None) -> None:
            super().__init__()
            self.node_id = node_id

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.boxes: list[DagBox] = []
        self.graph = DagLayout([], [])
        self.selected: int | None = None
        self.drawing = Drawing(Text(""), {})
        self._canvas = Static("", expand=False)
        self._key: tuple[tuple[int, ...], tuple[tuple[int, int], ...]] | None = None

    def compose(self) -> ComposeResult:
        yield self._canvas

    def set_graph(self, boxes: Sequence[DagBox], edges: Iterable[tuple[int, int]]) -> None:
        """Show these nodes and edges; the selection stays on the same node when it is still there."""
        self.boxes = list(boxes)
        ids = tuple(box.id for box in self.boxes)
        edge_key = tuple(sorted(set(edges)))
        if (ids, edge_key) != self._key:
            self._key = (ids, edge_key)
            self.graph = layout(ids, edge_key)
        if self.selected not in ids:
            order = self.reading_order()
            self.select(order[0] if order else None)
        self.redraw()

    def reading_order(self) -> list[int]:
        return [key for layer in self.graph.layers for key in layer if key > 0]

    def select(self, node_id: int | None) -> None:
        if node_id == self.selected:
            return
        self.selected = node_id
        self.post_message(self.Selected(node_id))
        self.redraw()
        region = self.drawing.boxes.get(node_id) if node_id is not None else None
        if region is not None:
            self.call_after_refresh(self._reveal, region)

    def _reveal(self, region: Region) -> None:
        self.scroll_to_region(region.translate(self._canvas.virtual_region.offset), animate=False)

    def redraw(self) -> None:
        width = max(BOX_MIN, self.scrollable_content_region.width or self.size.width)
        self.drawing = draw(self.boxes, self.graph, width=width, selected=self.selected)
        self._canvas.update(self.drawing.text)

    def on_resize(self, _: events.Resize) -> None:
        self.redraw()

    def action_move(self, where: str) -> None:
        order = self.reading_order()
        if not order:
            return
        if self.selected not in order:
            self.select(order[0])
            return
        assert self.selected is not None
        if where in ("next", "prev"):
            i = order.index(self.selected) + (1 if where == "next" else -1)
            self.select(order[i % len(order)])
            return
        rank = self.graph.rank()
        layer = self.graph.layers[rank[self.selected]]
        if where in ("up", "down"):
            real = [key for key in layer if key > 0]
            i = real.index(self.selected) + (1 if where == "down" else -1)
            if 0 <= i < len(real):
                self.select(real[i])
            return
        step = 1 if where == "right" else -1
        here = layer.index(self.selected)
        r = rank[self.selected] + step
        while 0 <= r < len(self.graph.layers):
            there = [(j, key) for j, key in enumerate(self.graph.layers[r]) if key > 0]
            if there:
                self.select(min(there, key=lambda jk: abs(jk[0] - here))[1])
                return
            r += step

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self._canvas)
        if offset is None:
            return
        for node_id, region in self.drawing.boxes.items():
            if region.contains(offset.x, offset.y):
                self.focus()
                self.select(node_id)
                return
