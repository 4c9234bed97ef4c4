"""A run's attempts (each try, how it ended and why) as a table, above the run's state history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from tui.format import clock_time, state_text

COLUMNS = ("#", "state", "class", "started", "ended", "reason")


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)


def class_text(item: dict[str, Any]) -> Text:
    kind = item.get("failureClass")
    if not kind:
        return Text("-", style="bright_black")
    retry = bool(item.get("retryable"))
    return Text(f"{kind}{' (retryable)' if retry else ''}", style="yellow" if retry else "red")


class AttemptsTable(DataTable[Any]):
    """The attempts of one run, first to last (`GET /api/v1/runs/{id}/attempts`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.items: list[dict[str, Any]] = []
        self.display = False

    def on_mount(self) -> None:
        self.styles.height = "auto"
        self.styles.max_height = 8
        self.add_columns(*COLUMNS)

    def update_items(self, items: list[dict[str, Any]], now: datetime) -> None:
        if items == self.items:
            return
        self.items = list(items)
        self.clear()
        for item in self.items:
            ended = _when(item.get("finishedAt"))
            self.add_row(
                str(item["attempt"]),
                state_text(str(item["state"])),
                class_text(item),
                clock_time(_when(item.get("startedAt")), now),
                clock_time(ended, now) if ended else "-",
                str(item.get("reason") or ""),
            )
        self.display = len(self.items) > 1  # one attempt: the history says it all
