"""How the navigator and the DAG view describe a space's objects: `Catalog` (one space's entities,
fetched together, ids resolved to names), tree labels with counts, detail panes, and the node
actions both screens offer (open the last run, stop it, mark a node EDIT_FINISH)."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from control.schemas import RunState
from tui.format import clock_time, run_duration, state_text
from tui.widgets.dag_layout import layout

if TYPE_CHECKING:
    from control.client import AsyncControlClient
    from control.schemas import RunOut
    from tui.screens.base import AtomScreen

STATUS_STYLES = {"EDIT_FINISH": "green", "EDITING": "yellow", "CREATE": "bright_black"}
NAMES = {
    "experiments": "experimentName",
    "exams": "examName",
    "nodes": "nodeName",
    "operators": "operatorName",
    "sources": "sourceName",
    "models": "modelName",
    "service-infos": "siName",
}


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class Catalog:
    """One space's entities as control listed them (camelCase dicts), by kind."""

    space: str
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    async def fetch(cls, client: AsyncControlClient, space: str) -> Catalog:
        """Every kind the navigator shows or names, in parallel."""
        kinds = list(NAMES)
        rows = await asyncio.gather(*(client.list(space, kind) for kind in kinds))
        return cls(space, dict(zip(kinds, rows, strict=True)))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return self.lists.get(kind, [])

    def by_id(self, kind: str, ident: int | None) -> dict[str, Any] | None:
        if ident is None:
            return None
        return next((row for row in self.of(kind) if row["id"] == ident), None)

    def name(self, kind: str, ident: int | None) -> str:
        """The name of `kind` `ident`, `#ident` when it is not in this space, `-` for None."""
        if ident is None:
            return "-"
        row = self.by_id(kind, ident)
        return str(row[NAMES[kind]]) if row else f"#{ident}"

    def exams_of(self, experiment_id: int) -> list[dict[str, Any]]:
        return [e for e in self.of("exams") if e["experimentId"] == experiment_id]

    def nodes_of(self, exam_id: int | None) -> list[dict[str, Any]]:
        """The exam's nodes in DAG order (the loose nodes for None)."""
        nodes = [n for n in self.of("nodes") if n.get("examId") == exam_id]
        return dag_order(nodes) if exam_id is not None else nodes


def next_id(node: dict[str, Any]) -> int | None:
    rel = node.get("relation") or {}
    value = rel.get("nextNodeId")
    return int(value) if value is not None else None


def next_ids(node: dict[str, Any]) -> list[int]:
    """Every next node (fan-out): `nextNodeIds`, else the seed's single `nextNodeId`."""
    many = (node.get("relation") or {}).get("nextNodeIds") or []
    if many:
        return [int(v) for v in many]
    one = next_id(node)
    return [one] if one is not None else []


def dag_edges(nodes: Iterable[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(n["id"], nxt) for n in nodes for nxt in next_ids(n)]


def dag_order(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes in reading order of their DAG (layer by layer, top to bottom)."""
    by_id = {n["id"]: n for n in nodes}
    lay = layout(list(by_id), dag_edges(nodes))
    return [by_id[key] for layer in lay.layers for key in layer if key > 0]


# -- labels ---------------------------------------------------------------------------------


def _label(name: str, counts: str, *, style: str = "") -> Text:
    return Text.assemble((name, style), ("  " + counts if counts else "", "bright_black"))


def space_label(name: str, cat: Catalog | None, *, current: bool) -> Text:
    counts = ""
    if cat is not None:
        counts = (
            f"{plural(len(cat.of('experiments')), 'experiment')} · {plural(len(cat.of('nodes')), 'node')}"
        )
    label = _label(name, counts, style="bold")
    if current:
        label.append(" ●", "green")
    return label


def experiment_label(exp: dict[str, Any], cat: Catalog) -> Text:
    exams = cat.exams_of(exp["id"])
    nodes = sum(len(cat.nodes_of(e["id"])) for e in exams)
    return _label(exp["experimentName"], f"{plural(len(exams), 'exam')} · {plural(nodes, 'node')}")


def exam_label(exam: dict[str, Any], cat: Catalog) -> Text:
    nodes = cat.nodes_of(exam["id"])
    label = _label(exam["examName"], plural(len(nodes), "node"), style="bold")
    states = [n.get("lastRunState") for n in nodes]
    for state in ("running", "failed"):
        if state in states:
            label.append("  ")
            label.append_text(state_text(state))
            break
    return label


def group_label(nodes: list[dict[str, Any]]) -> Text:
    return _label("(no exam)", plural(len(nodes), "node"), style="italic")


def node_label(node: dict[str, Any]) -> Text:
    """`prep  ✔ succeeded`; `✎` marks a node not yet EDIT_FINISH."""
    return Text.assemble(node["nodeName"], node_marks(node))


def node_marks(node: dict[str, Any]) -> Text:
    marks = Text()
    if node.get("nodeStatus") != "EDIT_FINISH":
        marks.append(" ✎", STATUS_STYLES.get(node.get("nodeStatus", ""), ""))
    marks.append("  ")
    marks.append_text(state_text(node.get("lastRunState")))
    return marks


# -- detail panes ---------------------------------------------------------------------------


def _grid(rows: Iterable[tuple[str, RenderableType]]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bright_black", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def _hint(text: str) -> Text:
    return Text(text, style="italic bright_black")


def run_line(run: RunOut, now: datetime) -> Text:
    """`#12 ▶ running · 09:12:03 · 3m07s`."""
    line = Text(f"#{run.id} ")
    line.append_text(state_text(run.state.value))
    when = run.started_at or run.created_at
    line.append(f" · {clock_time(when, now)} · {run_duration(run.started_at, run.finished_at, now)}")
    if run.reason and run.state.value == "failed":
        line.append(f"\n{run.reason}", "red")
    return line


NODE_HINT = "s start · l last run's log · x stop it · e edit · f EDIT_FINISH"


def node_details(
    node: dict[str, Any],
    cat: Catalog,
    runs: list[RunOut] | None,
    now: datetime,
    *,
    hint: str = NODE_HINT,
    history: int = 0,
) -> RenderableType:
    """Everything about a node, ids resolved to names.

    Args:
        runs: its newest runs, newest first (None: not fetched yet; the node's lastRunState shows).
        history: how many runs before the last one to list too (what the pane has room for).
    """
    rel = node.get("relation") or {}
    status = node.get("nodeStatus", "")
    sources = [
        f"{cat.name('sources', sid)} ({(cat.by_id('sources', sid) or {}).get('sourceType', '?')})"
        for sid in rel.get("dataSourceIds", [])
    ]
    si = cat.name("service-infos", rel.get("serviceInfoId"))
    low, high = rel.get("minServiceInfoId"), rel.get("maxServiceInfoId")
    if low is not None or high is not None:
        si += f" (min {cat.name('service-infos', low)}, max {cat.name('service-infos', high)})"
    rows: list[tuple[str, RenderableType]] = [
        ("node", Text(node["nodeName"], style="bold")),
        ("runtime type", f"{node.get('operatorRuntimeType', '')} · {node.get('nodeModel', '')}"),
        ("status", Text(status, style=STATUS_STYLES.get(status, ""))),
        ("exam", cat.name("exams", node.get("examId")) if node.get("examId") else "(none)"),
        (
            "epoch",
            f"{node.get('nodeEpoch', 1)} · retries {node.get('maxRetries', 0)} · "
            f"priority {node.get('operatorPriority', 0)}",
        ),
    ]
    if rel:
        rows += [
            ("operator", cat.name("operators", rel.get("operatorId"))),
            ("sources", ", ".join(sources) or "-"),
            ("model", cat.name("models", rel.get("modelId"))),
            ("service info", si),
            ("next node", cat.name("nodes", rel.get("nextNodeId"))),
        ]
    else:
        rows.append(("relation", Text("none yet: `e` binds an operator and data", style="yellow")))
    if runs is None:
        rows.append(("last run", state_text(node.get("lastRunState"))))
    elif not runs:
        rows.append(("last run", Text("never ran: `s` starts it", style="bright_black")))
    else:
        rows.append(("last run", run_line(runs[0], now)))
        for i, run in enumerate(runs[1 : 1 + history]):
            rows.append(("earlier" if i == 0 else "", run_line(run, now)))
    parts: list[RenderableType] = [_grid(rows)]
    if hint:
        parts.append(_hint(hint))
    return Group(*parts)


RECENT = 10
"""Runs fetched for a node's detail pane (the last one, and as many earlier ones as fit)."""


def room(console: Console, renderable: RenderableType, width: int, height: int) -> int:
    """How many lines are left under `renderable` in a `width` x `height` pane."""
    if width <= 0 or height <= 0:
        return 0
    return max(0, height - len(console.render_lines(renderable, console.options.update(width=width))))


def exam_details(exam: dict[str, Any], cat: Catalog) -> RenderableType:
    nodes = cat.nodes_of(exam["id"])
    rows: list[tuple[str, RenderableType]] = [
        ("exam", Text(exam["examName"], style="bold")),
        ("experiment", cat.name("experiments", exam.get("experimentId"))),
        ("description", exam.get("description") or "-"),
        ("nodes", plural(len(nodes), "node")),
    ]
    for node in nodes:
        rows.append(("  " + node["nodeName"], node_marks(node)))
    return Group(_grid(rows), _hint("enter DAG · s start the exam · n new node · e edit"))


def experiment_details(exp: dict[str, Any], cat: Catalog) -> RenderableType:
    exams = cat.exams_of(exp["id"])
    rows: list[tuple[str, RenderableType]] = [
        ("experiment", Text(exp["experimentName"], style="bold")),
        ("description", exp.get("description") or "-"),
        ("exams", ", ".join(e["examName"] for e in exams) or "-"),
    ]
    return Group(_grid(rows), _hint("n new exam · e edit"))


def space_details(name: str, cat: Catalog | None) -> RenderableType:
    if cat is None:
        return Group(_grid([("space", Text(name, style="bold"))]), _hint("enter loads it"))
    rows: list[tuple[str, RenderableType]] = [("space", Text(name, style="bold"))]
    for kind in NAMES:
        rows.append((kind.replace("-", " "), str(len(cat.of(kind)))))
    return Group(_grid(rows), _hint("n new experiment · enter expand/collapse"))


def group_details(nodes: list[dict[str, Any]]) -> RenderableType:
    rows = [("nodes", ", ".join(n["nodeName"] for n in nodes) or "-")]
    return Group(_grid(rows), _hint("nodes that belong to no exam · n new node"))


# -- node actions both screens offer ---------------------------------------------------------


async def last_runs(screen: AtomScreen, space: str, node_name: str, limit: int = 1) -> list[RunOut] | None:
    """The node's newest runs, newest first; None when control did not answer."""
    page = await screen.attempt(
        lambda c: c.list_runs(space=space, node=node_name, limit=limit), what=f"finding {node_name}'s runs"
    )
    return page.items if page is not None else None


async def last_run(screen: AtomScreen, space: str, node_name: str) -> RunOut | None:
    """The node's newest run, or None (no run yet, or control did not answer)."""
    runs = await last_runs(screen, space, node_name)
    return runs[0] if runs else None


def open_run(screen: AtomScreen, run_id: int, *, tab: str | None = None) -> None:
    """Push the run's detail screen (on `tab`, e.g. `log`)."""
    try:  # the run detail screen is its own module; imported when first needed
        module = importlib.import_module("tui.screens.run_detail")
    except ImportError:
        screen.notify(f"run #{run_id}: the run detail screen is not available", severity="warning")
        return
    kwargs = {"tab": tab} if tab else {}
    screen.app.push_screen(module.RunDetailScreen(run_id, **kwargs))


async def open_last_run(screen: AtomScreen, space: str, node_name: str, *, tab: str | None = None) -> None:
    run = await last_run(screen, space, node_name)
    if run is None:
        screen.notify(f"{node_name} has not run yet: `s` starts it")
        return
    open_run(screen, run.id, tab=tab)


async def stop_last_run(screen: AtomScreen, space: str, node_name: str) -> None:
    """Stop the node's newest run when it has not ended (asks first)."""
    from tui.actions import stop_run

    run = await last_run(screen, space, node_name)
    if run is None or RunState(run.state).is_terminal():
        screen.notify(f"{node_name} has no run in progress")
        return
    await stop_run(screen, run.id, label=node_name)


async def mark_finished(screen: AtomScreen, space: str, node: dict[str, Any]) -> bool:
    """PATCH nodeStatus EDIT_FINISH; control's refusal (no relation yet) becomes the notice."""
    name = node["nodeName"]
    answer = await screen.attempt(
        lambda c: c.patch(space, "nodes", node["id"], {"nodeStatus": "EDIT_FINISH"}),
        what=f"marking {name} EDIT_FINISH",
    )
    if answer is not None:
        screen.notify(f"{name} is EDIT_FINISH: ready to start")
    return answer is not None
