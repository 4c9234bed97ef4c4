"""`atom quota [SPACE]` shows a space's CPU, GPU and memory quota and what its runs hold;
`atom quota set SPACE --gpu 4 --cpu 8 --memory 16Gi` changes it (site admins; `none` lifts one)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from rich.table import Table

from control.cli._context import Context, UsageError

#: binary (Ki, Mi, Gi, Ti) and decimal (K, M, G, T) suffixes, in MiB
_UNITS: dict[str, float] = {
    "": 1.0,
    "mi": 1.0,
    "mib": 1.0,
    "gi": 1024.0,
    "gib": 1024.0,
    "ti": 1024.0**2,
    "tib": 1024.0**2,
    "ki": 1 / 1024,
    "kib": 1 / 1024,
    "k": 1000 / 1024**2,
    "m": 1000**2 / 1024**2,
    "g": 1000**3 / 1024**2,
    "t": 1000**4 / 1024**2,
}
_NONE = ("none", "unlimited", "null", "-")


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `atom quota` to the parser (`command(name, help, handler)` adds one)."""
    p = command("quota", "show a space's quota and usage, or set it: atom quota set SPACE --gpu 4", cmd_quota)
    p.add_argument("words", nargs="*", metavar="[set] SPACE", help="the space (default: --space)")
    p.add_argument("--cpu", help="set: CPUs (`none`: no limit)")
    p.add_argument("--gpu", help="set: GPUs (`none`: no limit)")
    p.add_argument("--memory", help="set: memory, e.g. 16Gi, 512Mi, 8G (`none`: no limit)")


def memory_mib(text: str) -> int:
    """`16Gi` -> 16384, `512Mi` -> 512, `512` -> 512 (MiB), `8G` -> 7630 (rounded up)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = found.group(2).lower() if found else ""
    if found is None or unit not in _UNITS:
        raise UsageError(f"--memory {text!r}: expected a size like 16Gi, 512Mi or 8G (or none)")
    mib = float(found.group(1)) * _UNITS[unit]
    return int(-(-mib // 1))


def _limit(option: str, text: str | None, parse: Callable[[str], Any], current: Any) -> Any:
    if text is None:
        return current
    if text.strip().lower() in _NONE:
        return None
    try:
        value = parse(text)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected a number (or none)") from None
    if value < 0:
        raise UsageError(f"{option} {text!r}: must not be negative")
    return value


def mib_text(mib: float | None) -> str:
    if mib is None:
        return "-"
    return f"{mib / 1024:.4g} GiB" if mib >= 1024 else f"{mib:.4g} MiB"


def quota_table(q: dict[str, Any]) -> Table:
    limits, used = q["limits"], q["used"]
    table = Table(
        box=None, header_style="bold", pad_edge=False, title=f"space {q['space']}", title_justify="left"
    )
    for header in ("RESOURCE", "USED", "LIMIT"):
        table.add_column(header, no_wrap=True, justify="left" if header == "RESOURCE" else "right")

    def num(v: float | None) -> str:
        return "no limit" if v is None else f"{v:g}"

    table.add_row("cpu", f"{used['cpu']:g}", num(limits["cpu"]))
    table.add_row("gpu", str(used["gpu"]), num(limits["gpu"]))
    table.add_row(
        "memory",
        mib_text(used["memory"]),
        "no limit" if limits["memory"] is None else mib_text(limits["memory"]),
    )
    return table


async def cmd_quota(ctx: Context, args: argparse.Namespace) -> int:
    words: list[str] = list(args.words or [])
    setting = bool(words) and words[0] == "set"
    if setting:
        words = words[1:]
    if len(words) > 1:
        raise UsageError(f"unexpected {' '.join(words[1:])!r}: atom quota [set] SPACE")
    space = words[0] if words else ctx.space
    if not setting and (args.cpu or args.gpu or args.memory):
        raise UsageError("--cpu, --gpu and --memory change a quota: atom quota set SPACE --gpu 4")
    async with ctx.client() as client:
        q = await client.get_quota(space)
        if setting:
            if args.cpu is None and args.gpu is None and args.memory is None:
                raise UsageError("atom quota set: give --cpu, --gpu or --memory (`none` lifts a limit)")
            cur = q["limits"]
            q = await client.set_quota(
                space,
                cpu=_limit("--cpu", args.cpu, float, cur["cpu"]),
                gpu=_limit("--gpu", args.gpu, int, cur["gpu"]),
                memory=_limit("--memory", args.memory, memory_mib, cur["memory"]),
            )
    ctx.out.print(quota_table(q))
    held = q.get("reservations") or []
    notes = [f"{len(held)} run(s) hold quota"] if held else []
    if q.get("waiting"):
        notes.append(f"{q['waiting']} run(s) wait for quota")
    if notes:
        ctx.err.print("; ".join(notes), style="dim")
    return 0
