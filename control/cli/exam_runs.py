"""Exam run commands: `atom exam-runs [ID]` (list, or one with its runs and skip reasons) and
`atom resume EXAM-RUN` (run a failed exam run again from its failed nodes)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from control.cli import render
from control.cli._context import id_arg
from control.schemas.exam_runs import ExamRunOut
from control.schemas.pipeline import ExamRunState

if TYPE_CHECKING:
    from control.cli._context import Context


def register(sub: argparse.ArgumentParser, resume: argparse.ArgumentParser) -> None:
    sub.add_argument("exam_run", nargs="?", metavar="EXAM_RUN_ID", help="show this one with its runs")
    sub.add_argument("--exam", type=int, metavar="EXAM_ID", help="only this exam's runs")
    sub.add_argument("--state", choices=[s.value for s in ExamRunState])
    sub.add_argument("--limit", type=int, default=50)
    resume.add_argument("exam_run", metavar="EXAM_RUN_ID")
    resume.add_argument("--wait", action="store_true", help="wait until the exam run ends")
    resume.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait with --wait")


def exam_runs_table(items: list[ExamRunOut], *, total: int) -> Table:
    table = Table(title=f"exam runs ({len(items)} of {total})", title_justify="left")
    for col in ("ID", "EXAM", "STATE", "TRIGGER", "RESUMES", "CREATED", "REASON"):
        table.add_column(col)
    for er in items:
        table.add_row(
            str(er.id),
            escape(er.exam_name),
            render.state_text(er.state.value),
            er.trigger,
            str(er.resumes),
            render.fmt_time(er.created_at),
            escape(er.reason),
        )
    return table


def exam_run_table(er: ExamRunOut) -> Table:
    """The exam run's runs, upstream first; every skipped run says why."""
    names = {r.node_id: r.node_name for r in er.runs}
    parents: dict[int | None, list[str]] = {}
    for a, b in er.edges:
        parents.setdefault(b, []).append(names.get(a, str(a)))
    title = Text(f"exam run {er.id} ({er.exam_name}): ").append_text(render.state_text(er.state.value))
    table = Table(title=title, title_justify="left")
    for col in ("RUN", "NODE", "AFTER", "STATE", "ATTEMPT", "REASON"):
        table.add_column(col)
    for r in er.runs:
        table.add_row(
            str(r.id),
            escape(r.node_name),
            escape(", ".join(parents.get(r.node_id, [])) or "-"),
            render.state_text(r.state.value),
            f"{r.attempt}/{r.max_attempts}",
            escape(r.reason),
        )
    return table


async def cmd_exam_runs(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.client() as client:
        if args.exam_run:
            ctx.out.print(exam_run_table(await client.exam_run(id_arg(args.exam_run, "exam run"))))
            return 0
        page = await client.exam_runs(space=ctx.space, exam_id=args.exam, state=args.state, limit=args.limit)
    if not page.items:
        ctx.err.print(f"no exam runs in space {ctx.space!r}", style="dim")
        return 0
    ctx.out.print(exam_runs_table(page.items, total=page.total))
    return 0


async def cmd_resume(ctx: Context, args: argparse.Namespace) -> int:
    ident = id_arg(args.exam_run, "exam run")
    async with ctx.client() as client:
        er = await client.resume_exam_run(ident)
        again = [r for r in er.runs if r.attempt > 1 and r.state.value != "succeeded"]
        names = ", ".join(r.node_name for r in again) or "none"
        ctx.out.print(f"resumed exam run [bold]{er.id}[/] ({escape(er.exam_name)}): again {escape(names)}")
        for r in again:
            if r.state.value == "failed":  # its dispatch failed at once (e.g. its adapter is gone)
                ctx.err.print(
                    f"{escape(r.node_name)} could not start: {escape(r.reason or '')}",
                    style="red",
                    soft_wrap=True,
                )
        if not args.wait:
            return 0
        er = await client.wait_exam_run(ident, args.timeout)
    ctx.out.print(exam_run_table(er))
    return 0 if er.state == ExamRunState.SUCCEEDED else 1
