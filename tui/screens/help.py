"""`?`: every key of the screen beneath and of the app, with what it does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

MOUSE = [
    ("click", "select a row, press a button, focus a field"),
    ("click a header", "sort the table by that column (again: reverse)"),
    ("wheel", "scroll"),
]


class HelpScreen(ModalScreen[None]):
    """Lists the bindings active on `target` (the screen the user was on)."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 80; max-width: 98%; height: 90%; border: thick $primary;
                            background: $surface; padding: 0 1; }
    HelpScreen #help-title { text-style: bold; padding-bottom: 1; }
    HelpScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "Close")]

    def __init__(self, target: Screen[object]) -> None:
        super().__init__()
        self.target = target

    def compose(self) -> ComposeResult:
        name = getattr(self.target, "TITLE_TEXT", "") or type(self.target).__name__
        with Vertical():
            yield Static(f"Keys on {name}  (Esc closes)", id="help-title")
            yield DataTable(id="help-keys", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "does", "where")
        seen: set[str] = set()
        for key, active in self.target.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            where = "everywhere" if active.node is self.app else "this screen"
            table.add_row(self.app.get_key_display(binding), binding.description, where, key=key)
        for key, does in MOUSE:
            table.add_row(key, does, "mouse")
        table.focus()

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
