"""The connection-trouble banner: one line at the top of every screen while control cannot be used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from tui.api import Trouble


class TroubleBanner(Static):
    """Hidden while control answers; shows why not (and that the app keeps retrying) otherwise."""

    DEFAULT_CSS = """
    TroubleBanner { display: none; height: auto; background: $error; color: $text; padding: 0 1; }
    TroubleBanner.shown { display: block; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "trouble", self.show_trouble)

    def show_trouble(self, trouble: Trouble | None) -> None:
        if trouble is None:
            self.update("")
            self.remove_class("shown")
            return
        self.update(Text.assemble(("⚠ ", "bold"), trouble.message))
        self.add_class("shown")
