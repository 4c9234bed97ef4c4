"""`atom artifacts RUN`: the outputs a run left (model version, metrics, sink datasets, declared
files), and where each came from when the run was served from cache."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from rich.table import Table

from control.cli._context import Context, UsageError
from control.schemas.artifacts import ArtifactOut


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `atom artifacts` to the parser (`command(name, help, handler)` adds one)."""
    p = command(
        "artifacts", "list the outputs a run left (model version, metrics, datasets, files)", cmd_artifacts
    )
    p.add_argument("run", help="the run id")
    p.add_argument("--json", action="store_true", help="print them as JSON")


def describe(item: ArtifactOut) -> str:
    """One line of what an artifact holds."""
    value: dict[str, Any] = item.value or {}
    if item.kind.value == "model":
        line = f"{value.get('modelName', '')} v{value.get('version', '')} score {value.get('score', '')}"
        return f"{line} ({value.get('operatorResult', '')})"
    if item.kind.value == "metrics":
        return ", ".join(
            f"{k}={v:.4g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in value.items()
        )
    if item.kind.value == "dataset":
        return f"{value.get('rows', '?')} rows to {value.get('target', '')} ({value.get('connection', '')})"
    return f"{value.get('file', '')} ({value.get('bytes', '?')} bytes)"


def artifacts_table(items: list[ArtifactOut]) -> Table:
    title = f"run {items[0].run_id} artifacts" if items else "artifacts"
    table = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "KIND", "VALUE", "URI", "REUSED FROM"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            item.name,
            item.kind.value,
            describe(item),
            item.uri or "-",
            f"run {item.reused_from}" if item.reused_from else "-",
        )
    return table


async def cmd_artifacts(ctx: Context, args: argparse.Namespace) -> int:
    if not str(args.run).isdigit():
        raise UsageError(f"{args.run!r} is not a run id")
    async with ctx.client() as client:
        items = await client.run_artifacts(int(args.run))
    if args.json:
        ctx.out.print_json(json.dumps([item.wire() for item in items]))
        return 0
    if not items:
        ctx.out.print(f"run {args.run} left no artifacts")
        return 0
    ctx.out.print(artifacts_table(items))
    return 0
