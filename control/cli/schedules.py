"""`atom schedules` lists exam schedules with their next fire time; `atom schedule EXAM --cron ...`
sets one (or shows it; `--delete` removes it); `atom backfill EXAM --from D1 --to D2` runs the exam
for each logical date its schedule missed in that range, one after another.

Times are shown in each schedule's time zone; backfill dates are read there too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.table import Table

from control.cli._context import Context, UsageError
from control.client import AsyncControlClient
from control.schemas.schedules import ScheduleOut


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `atom schedules`, `atom schedule` and `atom backfill` (`command(name, help, handler)` adds one)."""
    p = command("schedules", "list exam schedules with their next fire time", cmd_schedules)
    p.add_argument("--all", action="store_true", help="every space you can read, not only --space")

    p = command(
        "schedule",
        "set an exam's cron schedule (or show it): atom schedule EXAM --cron '0 3 * * *'",
        cmd_schedule,
    )
    p.add_argument("exam", metavar="EXAM", help="the exam's name or id")
    p.add_argument(
        "--cron", help="five fields (minute hour day-of-month month day-of-week) or @daily, @hourly ..."
    )
    p.add_argument("--tz", "--timezone", dest="tz", help="IANA time zone of the cron (default UTC)")
    p.add_argument(
        "--concurrency", choices=("skip", "queue", "replace"), help="while the previous run still goes"
    )
    p.add_argument("--start", help="no fire before this date or time (in --tz)")
    p.add_argument("--end", help="no fire after this date (whole day) or time (in --tz)")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--disable", action="store_true", help="keep it, but fire nothing")
    state.add_argument("--enable", action="store_true", help="fire again (from now on)")
    state.add_argument("--delete", action="store_true", help="remove the schedule")

    p = command("backfill", "run an exam for the logical dates its schedule names in a range", cmd_backfill)
    p.add_argument("exam", metavar="EXAM", help="the exam's name or id")
    p.add_argument(
        "--from", dest="start", required=True, metavar="D1", help="first date (2026-01-01) or time"
    )
    p.add_argument("--to", dest="end", required=True, metavar="D2", help="last date (included) or time")


def local(at: datetime | None, zone: str) -> str:
    """`at` (naive UTC) in `zone`: `2026-01-01 03:00 CET`; `-` for None."""
    if at is None:
        return "-"
    return at.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def relative(at: datetime | None, now: datetime | None = None) -> str:
    """`in 3 h`, `in 12 min`, `2 d ago` for a naive UTC time."""
    if at is None:
        return ""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    seconds = (at - now).total_seconds()
    size = abs(seconds)
    if size < 60:
        text = f"{int(size)} s"
    elif size < 3600:
        text = f"{int(size // 60)} min"
    elif size < 86400 * 2:
        text = f"{size / 3600:.0f} h"
    else:
        text = f"{size / 86400:.0f} d"
    return f"in {text}" if seconds >= 0 else f"{text} ago"


async def exam_id(client: AsyncControlClient, space: str, ref: str) -> int:
    """The id of exam `ref` (a name or an id) in `space`."""
    found = await client.get(space, "exams", ref)
    return int(found["id"])


def schedules_table(rows: list[ScheduleOut], *, now: datetime | None = None) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in (
        "EXAM",
        "SPACE",
        "CRON",
        "TZ",
        "POLICY",
        "NEXT FIRE",
        "",
        "LAST FIRE",
        "LAST RUN",
        "LAST SKIP",
    ):
        table.add_column(header, no_wrap=header not in ("LAST SKIP",))
    for s in rows:
        nxt = local(s.next_fire_at, s.timezone) if s.enabled else "disabled"
        last_run = f"{s.last_run_id} {s.last_run_state}" if s.last_run_id else "-"
        if s.queued:
            last_run += f" (+{s.queued} queued)"
        table.add_row(
            s.exam_name,
            s.space,
            s.cron,
            s.timezone,
            s.concurrency.value,
            nxt,
            relative(s.next_fire_at, now) if s.enabled else "",
            local(s.last_fire_at, s.timezone),
            last_run,
            s.last_skip or "",
        )
    return table


async def cmd_schedules(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.client() as client:
        rows = await client.schedules(None if args.all else ctx.space)
    if not rows:
        ctx.err.print(
            f"no schedules{'' if args.all else f' in space {ctx.space}'}: atom schedule EXAM --cron ..."
        )
        return 0
    ctx.out.print(schedules_table(rows))
    return 0


async def cmd_schedule(ctx: Context, args: argparse.Namespace) -> int:
    changing = any(v is not None for v in (args.cron, args.tz, args.concurrency, args.start, args.end))
    async with ctx.client() as client:
        ident = await exam_id(client, ctx.space, args.exam)
        if args.delete:
            if changing:
                raise UsageError("--delete takes no other option")
            await client.delete_schedule(ident)
            ctx.out.print(f"schedule of exam {args.exam} deleted")
            return 0
        current: ScheduleOut | None = None
        if not changing and not (args.disable or args.enable):
            current = await client.schedule(ident)
        else:
            body: dict[str, Any] = {}
            if args.cron is None:  # change the existing schedule's other settings
                old = await client.schedule(ident)
                body = {"cron": old.cron, "timezone": old.timezone, "concurrency": old.concurrency.value}
                body["enabled"] = old.enabled
                if old.start_at:
                    body["start"] = old.start_at.isoformat() + "+00:00"
                if old.end_at:
                    body["end"] = old.end_at.isoformat() + "+00:00"
            else:
                body["cron"] = args.cron
            for key, value in (
                ("timezone", args.tz),
                ("concurrency", args.concurrency),
                ("start", args.start),
                ("end", args.end),
            ):
                if value is not None:
                    body[key] = value
            if args.disable or args.enable:
                body["enabled"] = bool(args.enable)
            current = await client.set_schedule(ident, body)
    ctx.out.print(schedules_table([current]))
    return 0


async def cmd_backfill(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.client() as client:
        ident = await exam_id(client, ctx.space, args.exam)
        sched = await client.schedule(ident)
        out = await client.backfill(ident, args.start, args.end)
    if not out.created:
        ctx.out.print(f"nothing to backfill: all {out.existing} logical date(s) in range already have a run")
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("EXAM RUN", "LOGICAL DATE", "STATE", "TRIGGER"):
        table.add_column(header, no_wrap=True)
    for er in out.created:
        table.add_row(str(er.id), local(er.logical_date, sched.timezone), er.state, er.trigger)
    ctx.out.print(table)
    note = f"{len(out.created)} exam run(s) created; they run one after another"
    if out.existing:
        note += f"; {out.existing} logical date(s) already had a run"
    ctx.err.print(note)
    return 0
