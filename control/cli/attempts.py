"""A run's attempts on the command line: the table `atom describe run` shows, and `atom rerun`."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from control.cli import render
from control.cli._context import Context, id_arg
from control.errors import ControlAPIError

if TYPE_CHECKING:
    from control.client import AsyncControlClient


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime) or value is None:
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)


def attempts_table(items: Iterable[dict[str, Any]], *, now: datetime | None = None) -> Table:
    """One row per attempt: its number, state, failure class, start, end and reason."""
    table = Table(title="attempts", title_justify="left", box=None, header_style="bold", pad_edge=False)
    for header in ("#", "STATE", "CLASS", "STARTED", "ENDED", "REASON"):
        table.add_column(header, no_wrap=header != "REASON", justify="right" if header == "#" else "left")
    for a in items:
        kind = a.get("failureClass") or ""
        if kind and a.get("retryable"):
            kind += " (retryable)"
        ended = _when(a.get("finishedAt"))
        table.add_row(
            str(a["attempt"]),
            render.state_text(str(a["state"])),
            Text(kind or "-", style="" if kind else "dim"),
            render.fmt_time(_when(a.get("startedAt")), now),
            render.fmt_time(ended, now),
            str(a.get("reason") or ""),
        )
    return table


async def attempts_of(client: AsyncControlClient, run_id: int) -> list[dict[str, Any]]:
    """The run's attempts; none from a control that does not keep them (404 on the route)."""
    try:
        return await client.run_attempts(run_id)
    except ControlAPIError as exc:
        if exc.status_code == 404:
            return []
        raise


async def cmd_rerun(ctx: Context, args: argparse.Namespace) -> int:
    """`atom rerun RUN_ID`: the ended run again, as its next attempt (same id, same sink rows)."""
    run_id = id_arg(args.run)
    async with ctx.client() as client:
        run = await client.rerun(run_id, args.reason)
    line = Text(f"run {run['id']}: attempt {run['attempt']}/{run['maxAttempts']} ")
    ctx.out.print(line.append_text(render.state_text(str(run["state"]))))
    return 0
