"""How values look on screen: state colours, durations, ages, progress bars, byte and row counts."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

#: run states (seed 002) and service states -> a Rich style that reads on light and dark themes
STATE_STYLES: dict[str, str] = {
    "queued": "bright_black",
    "pending": "yellow",
    "running": "bold cyan",
    "succeeded": "green",
    "failed": "bold red",
    "stopped": "magenta",
    "skipped": "italic bright_black",
    "starting": "yellow",
    "ready": "green",
    "waiting_approval": "bold yellow",
}

STATE_ICONS: dict[str, str] = {
    "queued": "…",
    "pending": "◌",
    "running": "▶",
    "succeeded": "✔",
    "failed": "✘",
    "stopped": "■",
    "skipped": "↷",
    "starting": "◌",
    "ready": "✔",
    "waiting_approval": "?",
}


def state_text(state: str | None, *, icon: bool = True) -> Text:
    """A state word in its colour (`-` when there is none yet)."""
    if not state:
        return Text("-", style="bright_black")
    label = f"{STATE_ICONS.get(state, '·')} {state}" if icon else state
    return Text(label, style=STATE_STYLES.get(state, ""))


def duration(seconds: float | None) -> str:
    """`850ms`, `42s`, `3m07s`, `2h05m`, `3d04h`; `-` for None."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def run_duration(started: datetime | None, finished: datetime | None, now: datetime) -> str:
    """How long a run ran (or has been running)."""
    if started is None:
        return "-"
    end = finished or now
    return duration(max(0.0, (_aware(end) - _aware(started)).total_seconds()))


def age(at: datetime | None, now: datetime) -> str:
    """`12s ago`-style age of a moment."""
    if at is None:
        return "-"
    return duration(max(0.0, (_aware(now) - _aware(at)).total_seconds())) + " ago"


def clock_time(at: datetime | None, now: datetime) -> str:
    """`HH:MM:SS` today, `MM-DD HH:MM` before (local time)."""
    if at is None:
        return "-"
    local, today = _aware(at).astimezone(), _aware(now).astimezone()
    return local.strftime("%H:%M:%S") if local.date() == today.date() else local.strftime("%m-%d %H:%M")


def progress_bar(fraction: float | None, width: int = 10) -> Text:
    """`██████░░░░  60%`; `-` when unknown."""
    if fraction is None:
        return Text("-", style="bright_black")
    f = min(1.0, max(0.0, fraction))
    full = round(f * width)
    return Text.assemble(("█" * full, "cyan"), ("░" * (width - full), "bright_black"), f" {f * 100:3.0f}%")


def count(n: int | None) -> str:
    """`1,234,567`; `-` for None."""
    return "-" if n is None else f"{n:,}"


def nbytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _aware(at: datetime) -> datetime:
    from datetime import UTC

    return at if at.tzinfo else at.replace(tzinfo=UTC)
