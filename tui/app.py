"""`make_app(config, client)`: the dashboard's App. It only composes screens (one mode per top-level
screen, details pushed on top), owns the trouble state and offers the jumps screens share."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker

from control.client import AsyncControlClient
from tui.api import Api, Trouble
from tui.commands import AtomCommands
from tui.config import THEMES, TuiConfig
from tui.messages import ControlRecovered, SpaceChanged
from tui.workers import report_failure

logger = logging.getLogger(__name__)


def _mode(module: str, cls: str) -> Any:
    def build() -> Screen[Any]:
        import importlib

        screen: Screen[Any] = getattr(importlib.import_module(module), cls)()
        return screen

    return build


class AtomApp(App[None]):
    """The Atom dashboard."""

    TITLE = "Atom"
    CSS_PATH = "atom.tcss"
    COMMANDS = App.COMMANDS | {AtomCommands}
    COMMAND_PALETTE_BINDING = "ctrl+p"
    MODES: ClassVar[dict[str, Any]] = {
        "tree": _mode("tui.screens.navigator", "NavigatorScreen"),
        "runs": _mode("tui.screens.runs", "RunsScreen"),
        "models": _mode("tui.screens.models", "ModelsScreen"),
        "services": _mode("tui.screens.services", "ServicesScreen"),
        "connections": _mode("tui.screens.resources", "ConnectionsScreen"),
        "sources": _mode("tui.screens.resources", "SourcesScreen"),
        "operators": _mode("tui.screens.resources", "OperatorsScreen"),
        "service-infos": _mode("tui.screens.resources", "ServiceInfosScreen"),
        "tokens": _mode("tui.screens.tokens", "TokensScreen"),
        "schedules": _mode("tui.screens.schedules", "SchedulesScreen"),
    }
    DEFAULT_MODE = "tree"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("colon", "command_palette", "Jump", key_display=":"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+t", "toggle_theme", "Light/dark theme", show=False),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        *(
            Binding(str(n), f"goto('{mode}')", f"Go to {mode}", show=False)
            for n, mode in enumerate(
                ["tree", "runs", "models", "services", "connections", "sources", "operators"], 1
            )
        ),
    ]

    trouble: reactive[Trouble | None] = reactive(None, always_update=False)
    """Why control cannot be used right now (the banner shows it), or None."""

    def __init__(self, config: TuiConfig, client: AsyncControlClient, *, owns_client: bool = False) -> None:
        super().__init__()
        self.config = config
        self.space = config.space
        self.api = Api(client, on_trouble=self._control_trouble, on_ok=self._control_ok)
        self._owns_client = owns_client
        self._probe_timer: Timer | None = None
        self._last_ok = time.monotonic()
        self._space_checked = False
        self.title = f"Atom · {self.space}"
        self.where = config.url + (" (embedded)" if config.embedded else "")
        """Where control is, for headers."""
        self.sub_title = self.where

    def on_mount(self) -> None:
        self.theme = THEMES.get(self.config.theme, "textual-dark")
        if self.config.live:
            self.set_interval(self.config.refresh * 2, self._watch_control)
        self._first_space()

    @work(exclusive=True, group="space", exit_on_error=False)
    async def _first_space(self) -> None:
        """On a fresh install the current space does not exist yet: make it, so every screen starts
        empty rather than with an error, and the first thing a user creates has a home. Tried again
        when control comes back, if control could not be asked at start."""
        try:
            spaces = await self.api.call(lambda c: c.list_spaces())
            if not any(s.get("spaceName") == self.space for s in spaces):
                await self.api.call(lambda c: c.ensure_space(self.space))
                self.screen.post_message(SpaceChanged(self.space))
        except Exception:  # noqa: BLE001 - trouble shows in the banner; screens say the rest
            logger.debug("could not check space %s", self.space, exc_info=True)
            return
        self._space_checked = True

    async def on_unmount(self) -> None:
        if self._owns_client:
            await self.api.client.aclose()

    # -- jumps the screens share ------------------------------------------------------------

    def goto(self, mode: str) -> None:
        """Show a top-level screen (`tree`, `runs`, `models`, ...)."""
        self.switch_mode(mode)

    def action_goto(self, mode: str) -> None:
        self.goto(mode)

    def open_run(self, run_id: int) -> None:
        from tui.screens.run_detail import RunDetailScreen

        self.push_screen(RunDetailScreen(run_id))

    def open_runs(self, query: str = "") -> None:
        """The Runs screen with `query` in its filter (e.g. `node:train`)."""
        self.switch_mode("runs")
        setter = getattr(self.screen, "set_filter", None)
        if setter is not None:
            setter(query)

    def open_exam(self, exam_id: int, name: str) -> None:
        from tui.screens.dag import DagScreen

        self.push_screen(DagScreen(exam_id, name))

    def new(self, kind: str) -> None:
        """Open the create form for `kind` over the current screen."""
        self._new(kind)

    @work(group="form", exit_on_error=False)
    async def _new(self, kind: str) -> None:
        from tui import forms
        from tui.screens.base import AtomScreen

        screen = self.screen
        if isinstance(screen, AtomScreen):
            saved = await forms.edit(screen, kind)
            if saved is not None:
                screen.refresh_data()

    def set_space(self, space: str) -> None:
        self.space = space
        self.title = f"Atom · {space}"
        self.screen.post_message(SpaceChanged(space))

    def set_theme(self, theme: str) -> None:
        self.theme = THEMES[theme]

    def action_toggle_theme(self) -> None:
        self.set_theme("light" if self.theme == THEMES["dark"] else "dark")

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    # -- trouble ----------------------------------------------------------------------------

    def _control_trouble(self, trouble: Trouble) -> None:
        self.trouble = trouble
        if self._probe_timer is None:
            self._probe_timer = self.set_interval(self.config.refresh, self._probe)

    def _control_ok(self) -> None:
        self._last_ok = time.monotonic()
        if self.trouble is None:
            return
        self.trouble = None
        if self._probe_timer is not None:
            self._probe_timer.stop()
            self._probe_timer = None
        self.screen.post_message(ControlRecovered())
        if not self._space_checked:
            self._first_space()

    def _watch_control(self) -> None:
        """Notice trouble even on a screen that is not polling: probe when nothing has been heard lately."""
        quiet = time.monotonic() - self._last_ok > self.config.refresh * 2
        if self.trouble is None and quiet:
            self._probe()

    @work(exclusive=True, group="probe", exit_on_error=False)
    async def _probe(self) -> None:
        """One authenticated call: success clears the banner (and reloads), failure shows it."""
        try:
            await self.api.call(lambda c: c.list_spaces())
        except Exception:  # noqa: BLE001 - still in trouble; the banner says why
            logger.debug("control still unavailable", exc_info=True)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event)


def make_app(
    config: TuiConfig,
    client: AsyncControlClient | None = None,
    *,
    token: str | None = None,
    owns_client: bool = False,
) -> AtomApp:
    """Build the dashboard.

    Args:
        config: where control is and how the app looks.
        client: a client to use (tests pass one over an ASGI or live transport); None builds one
            for `config.url` and closes it on exit.
        token: the API token when the client is built here.
        owns_client: close `client` when the app exits.
    """
    if client is None:
        return AtomApp(config, AsyncControlClient(config.url, token=token), owns_client=True)
    return AtomApp(config, client, owns_client=owns_client)
