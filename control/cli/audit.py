"""`atom audit`: who created, changed, started, stopped, approved or deleted what, and when.

A space's trail is for its owners (with a token of scope admin); `--all` shows every event
(site admins). `--since` takes a time (ISO 8601, UTC when no zone is given) or an age: 30m, 12h, 7d.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from rich.table import Table

from control.cli._context import Context, UsageError

AGE = re.compile(r"^(\d+)\s*([smhdw])$")
UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `atom audit` to the parser (`command(name, help, handler)` adds one)."""
    p = command(
        "audit",
        "who created, changed, started, stopped or deleted what (space owners; --all: admins)",
        cmd_audit,
    )
    p.add_argument("--all", action="store_true", help="every space's events (site admins)")
    p.add_argument("--since", metavar="WHEN", help="a time (2026-01-31T12:00) or an age (30m, 12h, 7d)")
    p.add_argument("--actor", metavar="USER", help="only this user's actions")
    p.add_argument("--action", help="only this action: create, change, delete, start, stop, approve, ...")
    p.add_argument("--kind", help="only this kind: space, connection, node, run, service, ...")
    p.add_argument("--limit", type=int, default=100, help="at most this many events (default 100)")
    p.add_argument("-o", "--output", choices=("table", "yaml", "json"), default="table", help="output format")


def parse_since(text: str | None, now: datetime | None = None) -> str | None:
    """`text` as an ISO 8601 time in UTC: an age counts back from `now`."""
    if text is None:
        return None
    age = AGE.match(text.strip())
    if age:
        when = (now or datetime.now(UTC)) - timedelta(**{UNIT[age[2]]: int(age[1])})
    else:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise UsageError(
                f"--since {text!r} is neither a time (2026-01-31T12:00) nor an age (30m, 12h, 7d)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


async def cmd_audit(ctx: Context, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        raise UsageError(f"--limit {args.limit} is out of range: give 1 to 1000")
    async with ctx.client() as client:
        page = await client.audit(
            None if args.all else ctx.space,
            since=parse_since(args.since),
            actor=args.actor,
            action=args.action,
            kind=args.kind,
            limit=args.limit,
        )
    items: list[dict[str, Any]] = page["items"]
    if args.output == "json":
        ctx.out.file.write(json.dumps(items, indent=2) + "\n")
    elif args.output == "yaml":
        ctx.out.file.write(yaml.safe_dump(items, sort_keys=False, allow_unicode=True))
    elif not items:
        where = "any space" if args.all else f"space {ctx.space!r}"
        ctx.err.print(f"no audit events in {where} match", style="dim")
    else:
        ctx.out.print(table(items, spaces=args.all))
        if page["total"] > len(items):
            ctx.err.print(
                f"{len(items)} of {page['total']} events: narrow with --since or raise --limit", style="dim"
            )
    return 0


def table(items: list[dict[str, Any]], *, spaces: bool) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("TIME", *(("SPACE",) if spaces else ()), "ACTOR", "ACTION", "KIND", "NAME", "DETAIL"):
        t.add_column(col, overflow="fold")
    for e in items:
        at = str(e["at"]).replace("T", " ")[:19]
        detail = ", ".join(f"{k}={json.dumps(v)}" for k, v in (e.get("detail") or {}).items())
        row = [
            at,
            *((e.get("space") or "-",) if spaces else ()),
            e["actor"],
            e["action"],
            e["kind"],
            e["name"],
            detail,
        ]
        t.add_row(*row)
    return t
