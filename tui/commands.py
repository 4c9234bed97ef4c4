"""The `:` command palette: jump to any screen, open a run by number, a node's runs, an exam's DAG,
switch space or theme, create anything. Names are fetched from control when the palette opens."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tui.app import AtomApp

#: mode -> what the palette calls it
SCREENS: dict[str, str] = {
    "tree": "Navigator: spaces, experiments, exams, nodes",
    "runs": "Runs",
    "models": "Models and versions",
    "services": "Inference services",
    "connections": "Connections",
    "sources": "Data sources",
    "operators": "Operators",
    "service-infos": "Service infos (resources)",
    "tokens": "Your API tokens: make, list, revoke",
    "schedules": "Exam schedules (cron) and their next fire time",
}

NEW: dict[str, str] = {
    "connections": "connection",
    "sources": "source",
    "operators": "operator",
    "models": "model",
    "service-infos": "service info",
    "experiments": "experiment",
    "exams": "exam",
    "nodes": "node",
}

RUN_REF = re.compile(r"^\s*(?:run\s*)?#?(\d+)\s*$", re.IGNORECASE)


class AtomCommands(Provider):
    """Every place and action of the dashboard, found by fuzzy match."""

    _names: list[tuple[str, str, Callable[[], Any]]]

    @property
    def atom(self) -> AtomApp:
        return self.app  # type: ignore[return-value]

    async def startup(self) -> None:
        app = self.atom
        commands: list[tuple[str, str, Callable[[], Any]]] = []
        for mode, label in SCREENS.items():
            commands.append((f":{mode}", label, partial(app.goto, mode)))
        for kind, label in NEW.items():
            commands.append(
                (f"new {label}", f"create a {label} in space {app.space}", partial(app.new, kind))
            )
        for theme in ("dark", "light"):
            commands.append((f"theme {theme}", f"switch to the {theme} theme", partial(app.set_theme, theme)))
        commands.append(("help", "every key of this screen", app.action_help))
        commands.append(("quit", "leave the dashboard", app.exit))
        try:
            spaces = await app.api.call(lambda c: c.list_spaces())
            nodes = await app.api.call(lambda c: c.list(app.space, "nodes"))
            exams = await app.api.call(lambda c: c.list(app.space, "exams"))
        except Exception:  # noqa: BLE001 - the palette still offers the static commands
            spaces, nodes, exams = [], [], []
        for sp in spaces:
            name = sp["spaceName"]
            commands.append((f"space {name}", "work in this space", partial(app.set_space, name)))
        for node in nodes:
            name = node["nodeName"]
            commands.append((f"node {name}", "this node's runs", partial(app.open_runs, f"node:{name}")))
        for exam in exams:
            commands.append(
                (
                    f"exam {exam['examName']}",
                    "the exam's DAG",
                    partial(app.open_exam, exam["id"], exam["examName"]),
                )
            )
        self._names = commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._names:
            if name.startswith((":", "new ")):
                yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        ref = RUN_REF.match(query)
        if ref:
            run_id = int(ref.group(1))
            yield Hit(1.0, f"run #{run_id}", partial(self.atom.open_run, run_id), help="open this run")
        matcher = self.matcher(query.lstrip(":") if not query.startswith(":") else query)
        for name, help_text, callback in self._names:
            score = max(matcher.match(name), matcher.match(name.lstrip(":")))
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
