"""`atom trials RUN`: the trials of a run's hyper-parameter search, best first, the best marked."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from rich.table import Table
from rich.text import Text

from control.cli._context import Context, id_arg
from control.schemas.trials import TrialList

STATE_STYLES = {"succeeded": "green", "failed": "red", "stopped": "yellow", "running": "cyan"}


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `atom trials` to the parser (`command(name, help, handler)` adds one)."""
    p = command("trials", "the trials of a run's hyper-parameter search (the best marked *)", cmd_trials)
    p.add_argument("run", help="the run id")
    p.add_argument("--json", action="store_true", help="print the trials as JSON")


def params_text(params: dict[str, Any]) -> str:
    """`lr=0.01 layers=2` (floats to 4 significant digits; a nested choice as name(params))."""

    def show(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, dict) and "_name" in value:
            inner = {k: v for k, v in value.items() if k != "_name"}
            return f"{value['_name']}({params_text(inner)})" if inner else str(value["_name"])
        return json.dumps(value) if isinstance(value, dict | list) else str(value)

    return " ".join(f"{k}={show(v)}" for k, v in params.items())


def trials_table(page: TrialList) -> Table:
    metric = page.metric or "score"
    direction = {"max": " (max)", "min": " (min)"}.get(page.mode or "", "")
    table = Table(
        box=None,
        header_style="bold",
        pad_edge=False,
        title=f"run {page.run_id}: {len(page.items)} trial(s), {metric}{direction}",
        title_justify="left",
    )
    for header, justify in (("", "left"), ("TRIAL", "left"), ("PARAMS", "left"), ("STATE", "left"),
                            (metric.upper(), "right"), ("REPORTS", "right")):  # fmt: skip
        table.add_column(header, justify=justify, no_wrap=header != "PARAMS")  # type: ignore[arg-type]
    for t in page.items:
        style = "bold green" if t.best else ""
        table.add_row(
            Text("*", style="bold green") if t.best else "",
            Text(t.trial_id, style=style),
            Text(params_text(t.params), style=style),
            Text(t.state.value, style=STATE_STYLES.get(t.state.value, "")),
            Text("-" if t.score is None else f"{t.score:.6g}", style=style),
            str(len(t.history)),
        )
    return table


async def cmd_trials(ctx: Context, args: argparse.Namespace) -> int:
    run_id = id_arg(args.run)
    async with ctx.client() as client:
        page = await client.run_trials(run_id)
    if args.json:
        ctx.out.print_json(data=page.wire())
        return 0
    if not page.items:
        ctx.err.print(
            f"run {run_id} has no trials (its operator has no searchConf, or none started yet)", style="dim"
        )
        return 0
    ctx.out.print(trials_table(page))
    return 0
