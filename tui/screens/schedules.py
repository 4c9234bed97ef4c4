"""Schedules screen: the cron schedules of the space's exams with their next fire time (local time
and how soon), their policy, last fire and last exam run, and why the last fire was skipped. `e`
turns the selected schedule off or on again; `o` opens the exam's DAG."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType

from control.cli.schedules import relative
from control.errors import ControlAPIError
from tui.screens.table import Column, TableScreen, dash

RUN_STYLES = {
    "running": "cyan",
    "queued": "yellow",
    "succeeded": "green",
    "failed": "red",
    "stopped": "bright_black",
}


def local_time(value: str | None) -> str:
    """A naive-UTC ISO time from control as `YYYY-MM-DD HH:MM` in this machine's time zone."""
    if not value:
        return ""
    at = datetime.fromisoformat(value)
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone().strftime("%Y-%m-%d %H:%M")


def how_soon(value: str | None, now: datetime) -> str:
    """`in 3 h`, `in 12 min`, `2 d ago` from `now` (aware), as `atom schedules` writes it."""
    if not value:
        return ""
    at = datetime.fromisoformat(value)
    at = at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
    return relative(at, now.astimezone(UTC).replace(tzinfo=None))


def next_fire(row: dict[str, Any], now: datetime) -> Text | str:
    if not row.get("enabled"):
        return Text("disabled", style="bright_black")
    if not row.get("nextFireAt"):
        return Text("ended", style="bright_black")
    return f"{local_time(row['nextFireAt'])} ({how_soon(row['nextFireAt'], now)})"


def last_run(row: dict[str, Any]) -> Text | str:
    if not row.get("lastRunId"):
        return dash(None)
    state = str(row.get("lastRunState") or "")
    text = Text.assemble(f"{row['lastRunId']} ", (state, RUN_STYLES.get(state, "")))
    if row.get("queued"):
        text.append(f" +{row['queued']} queued", style="yellow")
    return text


class SchedulesScreen(TableScreen):
    """The space's exam schedules, refreshed live."""

    TITLE_TEXT = "Schedules"
    NOUN = "schedule"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "toggle_enabled", "Enable/disable"),
        Binding("o", "open_exam", "Exam DAG"),
    ]

    def columns(self) -> Sequence[Column]:
        now = self.config.clock()
        return [
            Column("exam", lambda r: r["examName"]),
            Column("cron", lambda r: r["cron"]),
            Column("tz", lambda r: r["timezone"]),
            Column("next fire", lambda r: next_fire(r, now)),
            Column("policy", lambda r: r["concurrency"]),
            Column("last fire", lambda r: dash(local_time(r.get("lastFireAt"))), wide=True),
            Column("last run", last_run),
            Column("last skip", lambda r: dash(r.get("lastSkip")), wide=True),
        ]

    async def fetch(self) -> list[dict[str, Any]] | None:
        found = await self.attempt(lambda c: c.schedules(self.space), what="loading schedules")
        return None if found is None else [s.wire() for s in found]

    # -- keys -------------------------------------------------------------------------------

    def action_open_exam(self) -> None:
        row = self.selected()
        if row is not None:
            self.atom.open_exam(int(row["examId"]), str(row["examName"]))

    def action_toggle_enabled(self) -> None:
        row = self.selected()
        if row is None:
            self.notify("no schedule selected", severity="warning")
            return
        self._toggle(row)

    @work(group="schedule-action", exit_on_error=False)
    async def _toggle(self, row: dict[str, Any]) -> None:
        body = {
            "cron": row["cron"],
            "timezone": row["timezone"],
            "concurrency": row["concurrency"],
            "enabled": not row["enabled"],
        }
        for key, wire in (("start", "startAt"), ("end", "endAt")):
            if row.get(wire):
                body[key] = f"{row[wire]}+00:00"
        try:
            done = await self.api.client.set_schedule(int(row["examId"]), body)
        except ControlAPIError as exc:
            self.notify(f"schedule of {row['examName']}: {exc}", severity="error", timeout=8)
        else:
            self.notify(f"{row['examName']}: {'enabled' if done.enabled else 'disabled'}", title="schedule")
        self.refresh_data()
