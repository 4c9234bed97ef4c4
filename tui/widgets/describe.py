"""A describe pane: every field of the selected row as key/value lines, in sections, scrollable.

Values are shown as they are useful to read: dicts and lists as compact JSON, booleans as yes/no,
empty values as `-`, times as `YYYY-MM-DD HH:MM:SS` plus their age. Keys that name a secret are
never shown (views do not carry secrets; this is the belt to that braces).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.format import age

SECRET = re.compile(r"password|secret|token", re.IGNORECASE)
"""Keys never shown (a view's `hasPassword` flag is shown as `password: set`)."""

Item = tuple[str, Any]
Section = tuple[str, Sequence[Item] | Text]


def value_text(value: Any, *, now: datetime | None = None) -> RenderableType:
    """How one value reads in the pane."""
    if isinstance(value, Text):
        return value
    if value is None or value == "" or value == [] or value == {}:
        return Text("-", style="bright_black")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, dict | list):
        return Text(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))
    if isinstance(value, str) and now is not None:
        at = parse_time(value)
        if at is not None:
            return Text.assemble(at.strftime("%Y-%m-%d %H:%M:%S"), (f"  {age(at, now)}", "bright_black"))
    return Text(str(value))


def parse_time(value: str) -> datetime | None:
    """An ISO time from the API, or None when `value` is not one."""
    if len(value) < 19 or value[4] != "-" or value[10] not in "T ":
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def row_items(row: dict[str, Any], *, first: Iterable[str] = ()) -> list[Item]:
    """Every field of an API view, `first` ones first, secrets left out (`hasPassword` -> `password`)."""
    order = [k for k in first if k in row] + [k for k in row if k not in set(first)]
    items: list[Item] = []
    for key in order:
        if key == "hasPassword":
            items.append(("password", Text("set (hidden)") if row[key] else Text("-", style="bright_black")))
        elif not SECRET.search(key):
            items.append((key, row[key]))
    return items


class DescribePane(VerticalScroll):
    """Key/value lines for one object; `show(title, sections)` replaces what it shows."""

    DEFAULT_CSS = """
    DescribePane { height: 1fr; padding: 0 1; }
    DescribePane > #describe-title { text-style: bold; color: $accent; }
    """

    def __init__(self, *, clock: Callable[[], datetime] | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self._title = Static("", id="describe-title")
        self._body = Static("", id="describe-body")
        self._shown: tuple[Text, RenderableType] = (Text(""), Text(""))

    def compose(self) -> Iterable[Static]:
        yield self._title
        yield self._body

    def show(self, title: str, sections: Sequence[Section]) -> None:
        """Show `sections`: each a heading (empty: none) and key/value items, or one block of text
        shown across the pane's width (a command to copy)."""
        now = self._clock() if self._clock else None
        parts: list[RenderableType] = []
        for heading, items in sections:
            if heading:
                if parts:
                    parts.append(Text(""))
                parts.append(Text(heading, style="bold underline"))
            if isinstance(items, Text):
                parts.append(items)
                continue
            grid = Table.grid(padding=(0, 2, 0, 0))
            grid.add_column(style="bold", no_wrap=True)
            grid.add_column(overflow="fold")
            for key, value in items:
                grid.add_row(key, value_text(value, now=now))
            parts.append(grid)
        self._set(Text(title), Group(*parts))

    def clear(self, message: str = "nothing selected") -> None:
        self._set(Text(""), Text(message, style="bright_black"))

    def _set(self, title: Text, body: RenderableType) -> None:
        self._shown = (title, body)
        self._title.update(title)
        self._body.update(body)

    def plain(self) -> str:
        """What the pane shows, as plain text (tests search it)."""
        console = Console(width=max(40, self.size.width), file=io.StringIO(), record=True)
        for part in self._shown:
            console.print(part)
        return console.export_text()
