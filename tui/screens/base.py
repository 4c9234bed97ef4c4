"""`AtomScreen`: header, trouble banner, body, footer; live refresh while in front; safe control calls.

A screen overrides `compose_body()` and `refresh_data()`. `refresh_data()` is called when the screen
comes to the front, every `config.refresh` seconds while it stays there (when `config.live`), on
`r`, and when control answers again after trouble. Control I/O belongs in `@work` workers (use
`loader()` below) that call `await self.attempt(...)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Header
from textual.worker import Worker

from control.errors import ControlAPIError
from tui.errors import Unavailable
from tui.messages import ControlRecovered, SpaceChanged
from tui.widgets.banner import TroubleBanner
from tui.workers import report_failure

if TYPE_CHECKING:
    from control.client import AsyncControlClient
    from tui.api import Api
    from tui.app import AtomApp
    from tui.config import TuiConfig

T = TypeVar("T")


def loader(group: str) -> Any:
    """`@work` for control I/O: async, one at a time per group (a newer call cancels the older),
    and an unexpected error becomes a notification instead of closing the app."""
    return work(exclusive=True, group=group, exit_on_error=False)


class AtomScreen(Screen[None]):
    """Base of the dashboard's screens."""

    TITLE_TEXT: ClassVar[str] = ""
    """Shown in the header after the app title."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh_data", "Refresh"),
        Binding("escape", "back", "Back", show=False),
    ]

    _timer: Timer | None = None

    # -- what every screen can reach --------------------------------------------------------

    @property
    def atom(self) -> AtomApp:
        return self.app  # type: ignore[return-value]

    @property
    def api(self) -> Api:
        return self.atom.api

    @property
    def config(self) -> TuiConfig:
        return self.atom.config

    @property
    def space(self) -> str:
        return self.atom.space

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield TroubleBanner()
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> Iterable[Widget]:
        return ()

    # -- refresh ----------------------------------------------------------------------------

    def refresh_data(self) -> None:
        """Reload what the screen shows (start a worker; return at once)."""

    def action_refresh_data(self) -> None:
        self.refresh_data()

    def on_screen_resume(self) -> None:
        self.sub_title = f"{self.TITLE_TEXT} · {self.atom.where}" if self.TITLE_TEXT else self.atom.where
        self.refresh_data()
        if self.config.live:
            if self._timer is None:
                self._timer = self.set_interval(self.config.refresh, self.refresh_data)
            else:
                self._timer.resume()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event)

    @on(ControlRecovered)
    def _recovered(self) -> None:
        self.refresh_data()

    @on(SpaceChanged)
    def _space_changed(self) -> None:
        self.refresh_data()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    # -- control calls ----------------------------------------------------------------------

    async def attempt(
        self, fn: Callable[[AsyncControlClient], Awaitable[T]], *, what: str, quiet: bool = False
    ) -> T | None:
        """One control call; None when it failed (the banner or a one-line notice says why).

        Args:
            fn: the client call, e.g. `lambda c: c.get_run(7)`.
            what: what was being done, for the notice (`loading runs`).
            quiet: no notice for an API error (the caller shows it).
        """
        try:
            return await self.api.call(fn)
        except Unavailable:
            return None
        except ControlAPIError as exc:
            if not quiet:
                self.notify(f"{what}: {exc}", severity="error", timeout=8)
            return None
