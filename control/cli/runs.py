"""Run commands: `atom start`, `atom runs`, `atom describe`, `atom logs`, `atom stop`, `atom get`.

Each command is `async def cmd_*(ctx, args) -> int` (the exit code) over one
`AsyncControlClient`; `follow_run` is the live progress display that `start --wait`
and `atom quickstart` share.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from control.cli import render
from control.cli._context import id_arg, missing_space, no_space_note, normalize_kind, parse_pairs
from control.errors import ControlAPIError
from control.schemas import RunOut, RunState, TaskEvent

if TYPE_CHECKING:
    import argparse

    from control.cli._context import Context
    from control.client import AsyncControlClient

POLL_S = 0.5


# -- get / describe ---------------------------------------------------------------------------


async def cmd_get(ctx: Context, args: argparse.Namespace) -> int:
    if args.kind in ("runs", "run"):
        args.node = args.state = None
        args.limit, args.watch, args.interval = 50, False, 2.0
        return await cmd_runs(ctx, args)
    if args.kind in ("services", "service", "svc"):
        from control.cli.services import cmd_services

        return await cmd_services(ctx, args)
    kind = normalize_kind(args.kind)
    async with ctx.client() as client:
        if args.name:
            item = await _get_named(client, ctx.space, kind, args.name)
            _dump(ctx, item, args.output or "yaml")
            return 0
        try:
            items = await client.list(ctx.space, kind)
        except ControlAPIError as exc:
            if await missing_space(client, ctx.space, exc):
                ctx.err.print(no_space_note(ctx.space), style="dim")
                return 0
            raise
    if args.output in ("json", "yaml"):
        _dump(ctx, items, args.output)
    elif not items:
        ctx.err.print(f"no {kind} in space {ctx.space!r}", style="dim")
    else:
        ctx.out.print(render.resources_table(kind, items))
    return 0


async def cmd_describe(ctx: Context, args: argparse.Namespace) -> int:
    from control.cli.attempts import attempts_of, attempts_table

    if args.kind not in ("run", "runs"):
        kind = normalize_kind(args.kind)
        async with ctx.client() as client:
            _dump(ctx, await _get_named(client, ctx.space, kind, args.name), "yaml")
        return 0
    run_id = id_arg(args.name)
    async with ctx.client() as client:
        run = await client.get_run(run_id)
        metrics = await client.run_metrics(run_id)
        tries = await attempts_of(client, run_id)
    ctx.out.print(render.run_summary(run))
    if tries:
        ctx.out.print()
        ctx.out.print(attempts_table(tries))
    if run.history:
        ctx.out.print()
        ctx.out.print(render.history_table(run))
    if metrics:
        ctx.out.print()
        ctx.out.print(render.metrics_table(metrics))
    return 0


async def _get_named(client: AsyncControlClient, space: str, kind: str, name: str) -> dict[str, Any]:
    try:
        return await client.get(space, kind, name)
    except ControlAPIError as exc:
        if exc.status_code == 404:
            what = kind.rstrip("s").replace("-", " ")
            raise ControlAPIError(f"no {what} {name!r} in space {space!r}", status_code=404) from exc
        raise


def _dump(ctx: Context, data: Any, fmt: str) -> None:
    if fmt == "json":
        ctx.out.file.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        ctx.out.file.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


# -- start / stop -----------------------------------------------------------------------------


async def cmd_start(ctx: Context, args: argparse.Namespace) -> int:
    envs = parse_pairs(args.env, "--env")
    params = parse_pairs(args.param, "--param")
    kind, task_type = ("nodes", "NODE") if args.what == "node" else ("exams", "EXAM")
    wait = args.wait
    if ctx.embedded and not wait:
        ctx.err.print(
            "note: no control server is running, so control runs inside this command and the command "
            "waits for the run (start `atom server` to run in the background)",
            style="dim",
        )
        wait = True
    async with ctx.client() as client:
        target = await _get_named(client, ctx.space, kind, args.name)
        result = await client.start_node_task(
            TaskEvent(task_id=int(target["id"]), task_type=task_type, envs=envs, run_parameter=params)
        )
        ids = ", ".join(map(str, result.run_ids)) or "none"
        ctx.out.print(f"started {args.what} [bold]{escape(args.name)}[/]: run {ids}")
        if not wait:
            return 0
        code = 0
        for run_id in result.run_ids:
            followed = await follow_run(ctx, client, run_id)
            if followed.run.state != RunState.SUCCEEDED:
                await report_failure(ctx, client, followed.run)
                code = 1
        return code


async def cmd_stop(ctx: Context, args: argparse.Namespace) -> int:
    run_id = id_arg(args.run)
    async with ctx.client() as client:
        run = await client.stop_run(run_id, args.reason)
    line = Text(f"run {run.id}: ").append_text(render.state_text(run.state))
    ctx.out.print(line.append(f" ({run.reason})" if run.reason else ""))
    return 0


# -- runs -------------------------------------------------------------------------------------


async def cmd_runs(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.client() as client:

        async def table() -> Any:
            page = await client.list_runs(space=ctx.space, node=args.node, state=args.state, limit=args.limit)
            return render.runs_table(page.items, total=page.total)

        if not args.watch:
            try:
                page = await client.list_runs(
                    space=ctx.space, node=args.node, state=args.state, limit=args.limit
                )
            except ControlAPIError as exc:
                if await missing_space(client, ctx.space, exc):
                    ctx.err.print(no_space_note(ctx.space), style="dim")
                    return 0
                raise
            if page.items:
                ctx.out.print(render.runs_table(page.items, total=page.total))
            else:
                ctx.err.print(
                    f"no runs in space {ctx.space!r}"
                    + (" matching the filters" if args.node or args.state else ""),
                    style="dim",
                )
            return 0
        count = getattr(args, "watch_count", None)  # tests bound the loop
        with Live(await table(), console=ctx.out, refresh_per_second=4, transient=False) as live:
            while count is None or (count := count - 1) > 0:
                await asyncio.sleep(args.interval)
                live.update(await table())
    return 0


# -- logs -------------------------------------------------------------------------------------


@dataclass
class LogPage:
    text: str
    next_offset: int
    eof: bool


async def log_page(client: AsyncControlClient, run_id: int, offset: int) -> LogPage:
    """One page of a run's log, as `client.run_logs` returns it but with its text verbatim.

    `LogChunk` is a `Wire` model, which strips whitespace from strings: the newline that
    ends a page would be lost. So the page is read as plain JSON here.
    """
    raw = await client.request(
        "GET", f"/api/v1/runs/{run_id}/logs", params={"offset": offset, "limit": 65536}
    )
    return LogPage(str(raw.get("text") or ""), int(raw.get("nextOffset", offset)), bool(raw.get("eof")))


async def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    run_id = id_arg(args.run)
    async with ctx.client() as client:
        offset = 0
        while True:
            page = await log_page(client, run_id, offset)
            if page.text:
                ctx.out.file.write(page.text)
                ctx.out.file.flush()
                offset = page.next_offset
                continue
            if page.eof or not args.follow:
                return 0
            await asyncio.sleep(args.interval)


async def log_tail(client: AsyncControlClient, run_id: int, lines: int = 20) -> list[str]:
    """The last `lines` lines of a run's log (reads it through, keeping at most 256 KiB)."""
    buf, offset = "", 0
    while True:
        page = await log_page(client, run_id, offset)
        if not page.text:
            break
        buf = (buf + page.text)[-262144:]
        offset = page.next_offset
    return buf.splitlines()[-lines:]


# -- following a run --------------------------------------------------------------------------


@dataclass
class Followed:
    run: RunOut
    seen: dict[str, float] = field(default_factory=dict)
    """State -> `time.monotonic()` when this command first saw it."""


async def follow_run(
    ctx: Context,
    client: AsyncControlClient,
    run_id: int,
    *,
    poll: float = POLL_S,
    wait_s: float | None = None,
) -> Followed:
    """Follow a run until it ends, and return its final view.

    On a terminal: a live progress bar with the state and stage. Elsewhere (CI logs,
    pipes): one line per change of state or stage.

    Raises:
        TimeoutError: the run did not end within `wait_s` seconds.
    """
    seen: dict[str, float] = {}
    deadline = None if wait_s is None else time.monotonic() + wait_s
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    live = ctx.out.is_terminal
    last = ""
    with Progress(*columns, console=ctx.out, transient=True, disable=not live) as progress:
        task = progress.add_task(f"run {run_id}", total=1.0)
        while True:
            run = await client.get_run(run_id)
            seen.setdefault(str(run.state), time.monotonic())
            style = render.STATE_STYLES.get(str(run.state), "")
            head = f"run {run.id} {escape(run.node_name)} [{style}]{run.state}[/]"
            desc = head + (f" {escape(run.stage)}" if run.stage and not run.state.is_terminal() else "")
            if live:
                done = 1.0 if run.state == RunState.SUCCEEDED else (run.progress or 0.0)
                progress.update(task, description=desc, completed=done)
            elif desc != last and not run.state.is_terminal():
                ctx.out.print(desc, highlight=False)
            last = desc
            if run.state.is_terminal():
                progress.stop()
                mark = "[green]✓[/]" if run.state == RunState.SUCCEEDED else "[red]✗[/]"
                took = render.fmt_duration(render.elapsed(run.started_at or run.created_at, run.finished_at))
                ctx.out.print(f"{mark} {head} in {took}", highlight=False)
                return Followed(run, seen)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run.state} after {wait_s:.0f}s")
            await asyncio.sleep(poll)


async def report_failure(ctx: Context, client: AsyncControlClient, run: RunOut) -> None:
    """Print why a run did not succeed, and the end of its log."""
    ctx.err.print(
        f"[bold red]run {run.id} {run.state}[/]" + (f": {escape(run.reason)}" if run.reason else ""),
        soft_wrap=True,
    )
    try:
        tail = await log_tail(client, run.id)
    except ControlAPIError:
        return
    if tail:
        ctx.err.print(f"[dim]last {len(tail)} log lines (atom logs {run.id}):[/]")
        for line in tail:
            ctx.err.print(f"  {escape(line)}", soft_wrap=True, highlight=False)
