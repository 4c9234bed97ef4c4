"""`NavigatorScreen` (mode `tree`, the first screen): spaces -> experiments -> exams -> nodes as a tree
with counts and last run states, a detail pane for the selected item, and the node and exam actions.

A space's contents load when it is expanded (the current space at start); every refresh reloads the
expanded spaces and updates the tree in place, so expansion and the cursor stay where they were.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from tui.actions import start_exam, start_node
from tui.screens.base import AtomScreen, loader
from tui.widgets import tree_labels as tl
from tui.widgets.tree_labels import Catalog

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from textual.widget import Widget

    from control.client import AsyncControlClient
    from control.schemas import RunOut


@dataclass(frozen=True)
class Item:
    """What one tree line stands for."""

    kind: str
    """`space`, `experiment`, `exam`, `group` (the nodes of no exam) or `node`."""
    space: str
    id: int | None
    name: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.space}:{self.id if self.id is not None else self.name}"


@dataclass
class Entry:
    """A tree line as it should be: its item, label and children (None: a leaf)."""

    item: Item
    label: Text
    children: list[Entry] | None = None


class NavigatorScreen(AtomScreen):
    """Spaces, experiments, exams and nodes; `enter` on an exam opens its DAG."""

    TITLE_TEXT = "Navigator"
    DEFAULT_CSS = """
    NavigatorScreen #nav-body { height: 1fr; }
    NavigatorScreen #nav-tree { width: 50%; max-width: 64; border: round $primary-darken-2; }
    NavigatorScreen #nav-tree:focus { border: round $accent; }
    NavigatorScreen #nav-side { width: 1fr; border: round $primary-darken-2; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start"),
        Binding("l", "logs", "Logs"),
        Binding("n", "new", "New"),
        Binding("e", "edit", "Edit"),
        Binding("f", "finish", "Finish"),
        Binding("x", "stop", "Stop"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._spaces: list[dict[str, Any]] = []
        self._catalogs: dict[str, Catalog] = {}
        self._expanded: set[str] = set()
        self._filled: set[str] = set()
        """Spaces whose first load expanded everything in them."""
        self._by_key: dict[str, TreeNode[Item]] = {}
        self._goto: str | None = None
        """An item key to put the cursor on once it appears (after `n`)."""
        self._runs: tuple[str, list[RunOut]] | None = None
        """(node key, its newest runs) for the detail pane."""

    # -- layout -----------------------------------------------------------------------------

    def compose_body(self) -> Iterable[Widget]:
        tree: Tree[Item] = Tree("spaces", id="nav-tree")
        tree.show_root = False
        tree.auto_expand = False
        tree.guide_depth = 3
        tree.border_title = "spaces"
        side = VerticalScroll(Static(id="nav-detail"), id="nav-side")
        side.border_title = "details"
        yield Horizontal(tree, side, id="nav-body")

    @property
    def nav_tree(self) -> Tree[Item]:
        return self.query_one("#nav-tree", Tree)

    def on_mount(self) -> None:
        self._expanded.add(Item("space", self.space, None, self.space).key)
        self.nav_tree.focus()

    def selected(self) -> Item | None:
        node = self.nav_tree.cursor_node
        return node.data if node is not None else None

    # -- loading ----------------------------------------------------------------------------

    def refresh_data(self) -> None:
        self._load()

    @loader("tree")
    async def _load(self) -> None:
        spaces = await self.attempt(lambda c: c.list_spaces(), what="loading spaces")
        if spaces is None:
            return
        names = [sp["spaceName"] for sp in spaces]
        wanted = [n for n in names if Item("space", n, None, n).key in self._expanded]
        found = await asyncio.gather(*(self.attempt(_fetcher(n), what=f"loading space {n}") for n in wanted))
        for name, cat in zip(wanted, found, strict=True):
            if cat is not None:
                self._catalogs[name] = cat
        self._spaces = spaces
        self._apply()
        await self._load_run()

    def _apply(self) -> None:
        tree = self.nav_tree
        cursor = self.selected()
        self._by_key = {}
        self._sync(tree.root, self._entries())
        target = self._goto if self._goto in self._by_key else (cursor.key if cursor else None)
        node = self._by_key.get(target) if target else None
        if node is None and tree.cursor_node is None and self._by_key:  # at start: the current space
            node = self._by_key.get(Item("space", self.space, None, self.space).key)
            node = node or next(iter(self._by_key.values()))
        _ = tree.last_line  # lay the lines out so the node's line is known
        if node is not None and node is not tree.cursor_node:
            self._goto = None
            parent = node.parent
            while parent is not None and not parent.is_root:
                parent.expand()
                parent = parent.parent
            _ = tree.last_line
            tree.move_cursor(node)
        self._show_detail()

    def _entries(self) -> list[Entry]:
        out = []
        for sp in self._spaces:
            name = sp["spaceName"]
            cat = self._catalogs.get(name)
            item = Item("space", name, None, name, sp)
            out.append(Entry(item, tl.space_label(name, cat, current=name == self.space), []))
            if cat is None:
                continue
            out[-1].children = self._space_entries(cat)
            if name not in self._filled:  # first sight: open everything in it
                self._filled.add(name)
                self._expanded |= set(_container_keys(out[-1]))
        return out

    def _space_entries(self, cat: Catalog) -> list[Entry]:
        space = cat.space
        out = []
        for exp in cat.of("experiments"):
            exams = []
            for exam in cat.exams_of(exp["id"]):
                nodes = [_node_entry(space, n) for n in cat.nodes_of(exam["id"])]
                exams.append(
                    Entry(
                        Item("exam", space, exam["id"], exam["examName"], exam),
                        tl.exam_label(exam, cat),
                        nodes,
                    )
                )
            item = Item("experiment", space, exp["id"], exp["experimentName"], exp)
            out.append(Entry(item, tl.experiment_label(exp, cat), exams))
        loose = cat.nodes_of(None)
        if loose:
            group = Item("group", space, None, "(no exam)")
            out.append(Entry(group, tl.group_label(loose), [_node_entry(space, n) for n in loose]))
        return out

    def _sync(self, parent: TreeNode[Item], wanted: list[Entry]) -> None:
        """Make `parent`'s children `wanted`: labels update in place; a changed list is rebuilt."""
        existing = list(parent.children)
        same = [c.data.key if c.data else "" for c in existing] == [e.item.key for e in wanted]
        if not same:
            parent.remove_children()
            existing = [
                parent.add(
                    e.label, e.item, expand=e.item.key in self._expanded, allow_expand=e.children is not None
                )
                for e in wanted
            ]
        for node, entry in zip(existing, wanted, strict=True):
            if node.label != entry.label:
                node.set_label(entry.label)
            if entry.children and entry.item.key in self._expanded and not node.is_expanded:
                node.expand()
            node.data = entry.item
            self._by_key[entry.item.key] = node
            if entry.children is not None:
                self._sync(node, entry.children)

    # -- selection and detail ---------------------------------------------------------------

    @on(Tree.NodeHighlighted, "#nav-tree")
    def _highlighted(self, event: Tree.NodeHighlighted[Item]) -> None:
        item = event.node.data
        if item is None:
            return
        if item.space != self.space:
            self.atom.set_space(item.space)
        self._show_detail()
        if item.kind == "node":
            self._fetch_run()

    @on(Tree.NodeSelected, "#nav-tree")
    def _chosen(self, event: Tree.NodeSelected[Item]) -> None:
        item = event.node.data
        if item is not None and item.kind == "exam" and item.id is not None:
            self.atom.open_exam(item.id, item.name)
        elif event.node.allow_expand:
            event.node.toggle()

    @on(Tree.NodeExpanded, "#nav-tree")
    def _expanded_node(self, event: Tree.NodeExpanded[Item]) -> None:
        if event.node.data is None:
            return
        self._expanded.add(event.node.data.key)
        if event.node.data.kind == "space" and event.node.data.space not in self._catalogs:
            self.refresh_data()

    @on(Tree.NodeCollapsed, "#nav-tree")
    def _collapsed_node(self, event: Tree.NodeCollapsed[Item]) -> None:
        if event.node.data is not None:
            self._expanded.discard(event.node.data.key)

    def _show_detail(self) -> None:
        self.query_one("#nav-detail", Static).update(self._detail(self.selected()))

    def _detail(self, item: Item | None) -> RenderableType:
        if item is None:
            return Text("no spaces yet", style="bright_black")
        cat = self._catalogs.get(item.space)
        if item.kind == "space" or cat is None:
            return tl.space_details(item.space, cat)
        if item.kind == "experiment":
            return tl.experiment_details(item.raw, cat)
        if item.kind == "exam":
            return tl.exam_details(item.raw, cat)
        if item.kind == "group":
            return tl.group_details(cat.nodes_of(None))
        runs = self._runs[1] if self._runs and self._runs[0] == item.key else None
        return self._fit(
            lambda history: tl.node_details(item.raw, cat, runs, self.config.clock(), history=history)
        )

    def _fit(self, render: Callable[[int], RenderableType]) -> RenderableType:
        """`render(history)` with as many earlier runs as the pane has room for."""
        pane = self.query_one("#nav-side").scrollable_content_region
        left = tl.room(self.app.console, render(0), pane.width, pane.height)
        return render(min(left, tl.RECENT - 1))

    def _fetch_run(self) -> None:
        self._load_run_worker()

    @loader("detail")
    async def _load_run_worker(self) -> None:
        await self._load_run()

    async def _load_run(self) -> None:
        item = self.selected()
        if item is None or item.kind != "node":
            return
        runs = await tl.last_runs(self, item.space, item.name, tl.RECENT)
        if runs is not None and self.selected() == item:
            self._runs = (item.key, runs)
            self._show_detail()

    # -- actions ----------------------------------------------------------------------------

    def _node(self) -> Item | None:
        item = self.selected()
        if item is None or item.kind != "node":
            self.notify("select a node first")
            return None
        return item

    def action_start(self) -> None:
        item = self.selected()
        if item is None or item.kind not in ("node", "exam"):
            self.notify("select a node or an exam to start")
            return
        self._start(item)

    @work(group="action", exit_on_error=False)
    async def _start(self, item: Item) -> None:
        assert item.id is not None
        if item.kind == "exam":
            await start_exam(self, item.id, item.name)
        else:
            await start_node(self, item.id, item.name)
        self.refresh_data()

    def action_logs(self) -> None:
        if (item := self._node()) is not None:
            self._logs(item)

    @work(group="action", exit_on_error=False)
    async def _logs(self, item: Item) -> None:
        await tl.open_last_run(self, item.space, item.name, tab="log")

    def action_stop(self) -> None:
        if (item := self._node()) is not None:
            self._stop(item)

    @work(group="action", exit_on_error=False)
    async def _stop(self, item: Item) -> None:
        await tl.stop_last_run(self, item.space, item.name)
        self.refresh_data()

    def action_finish(self) -> None:
        if (item := self._node()) is not None:
            self._finish(item)

    @work(group="action", exit_on_error=False)
    async def _finish(self, item: Item) -> None:
        if await tl.mark_finished(self, item.space, item.raw):
            self.refresh_data()

    def action_new(self) -> None:
        item = self.selected()
        if item is None or item.kind == "space":
            self._form("experiments", None, None)
        elif item.kind == "experiment":
            self._form("exams", {"experimentId": item.id}, item.key)
        elif item.kind == "exam":
            self._form("nodes", {"examId": item.id}, item.key)
        elif item.kind == "group":
            self._form("nodes", {}, item.key)
        else:
            exam = item.raw.get("examId")
            self._form("nodes", {"examId": exam} if exam else {}, None)

    def action_edit(self) -> None:
        item = self.selected()
        kinds = {"experiment": "experiments", "exam": "exams", "node": "nodes"}
        if item is None or item.kind not in kinds:
            self.notify("select an experiment, exam or node to edit")
            return
        self._form(kinds[item.kind], item.raw, None)

    @work(group="form", exit_on_error=False)
    async def _form(self, kind: str, existing: dict[str, Any] | None, parent: str | None) -> None:
        from tui import forms

        saved = await forms.edit(self, kind, existing)
        if saved is None:
            return
        item_kind = {"experiments": "experiment", "exams": "exam", "nodes": "node"}[kind]
        name = saved.get(tl.NAMES[kind], "")
        self._goto = Item(item_kind, self.space, saved.get("id"), name).key
        if parent is not None:
            self._expanded.add(parent)
        self.refresh_data()


def _fetcher(space: str) -> Callable[[AsyncControlClient], Awaitable[Catalog]]:
    return lambda c: Catalog.fetch(c, space)


def _node_entry(space: str, node: dict[str, Any]) -> Entry:
    return Entry(Item("node", space, node["id"], node["nodeName"], node), tl.node_label(node))


def _container_keys(entry: Entry) -> Iterable[str]:
    if entry.children is not None:
        yield entry.item.key
        for child in entry.children:
            yield from _container_keys(child)
