"""Rich renderables for the CLI: tables of runs, resources, services and apply results.

Pure functions from wire models (or the API's dicts) to `rich` objects; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from control.client import KINDS

if TYPE_CHECKING:
    from control.cli.apply import Outcome
    from control.schemas import MetricPoint, RunOut, ServiceOut

STATE_STYLES: dict[str, str] = {
    "queued": "cyan",
    "pending": "yellow",
    "running": "bold blue",
    "succeeded": "green",
    "failed": "bold red",
    "stopped": "magenta",
    "starting": "yellow",
    "ready": "green",
    "waiting_approval": "cyan",
}
ACTION_STYLES = {"created": "green", "updated": "yellow", "unchanged": "dim"}

#: columns shown by `atom get KIND`: (header, field)
RESOURCE_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "connections": [("type", "connectType"), ("address", "connectAddr"), ("port", "connectPort"),
                    ("space", "connectSpace"), ("password", "hasPassword")],
    "sources": [("role", "sourceType"), ("connection", "connectionName"), ("execute", "operateExecute"),
                ("format", "dataFormat")],
    "operators": [("type", "operatorRuntimeType"), ("module", "moduleName"), ("object", "executeObject"),
                  ("epochs", "operatorEpoch"), ("deploy", "deployType")],
    "models": [("created by", "modelCreateType"), ("connection", "connectionName"), ("latest", "versions"),
               ("score", "modelScore")],
    "service-infos": [("pattern", "siRuntimePattern"), ("replicas", "siNodeNum"), ("cpu", "siCpu"),
                      ("gpu", "siGpu"), ("memory MiB", "siMemory"), ("image", "siImageName")],
    "experiments": [("description", "description")],
    "exams": [("experiment", "experimentId"), ("description", "description")],
    "nodes": [("type", "operatorRuntimeType"), ("status", "nodeStatus"), ("last run", "lastRunState"),
              ("retries", "maxRetries")],
}  # fmt: skip


def state_text(state: object) -> Text:
    value = str(state)
    return Text(value, style=STATE_STYLES.get(value, ""))


def run_state_text(run: RunOut) -> Text:
    """The run's state; a run waiting for its space's quota says why (`pending: quota: ...`)."""
    text = state_text(run.state)
    if str(run.state) == "pending" and run.reason.startswith("quota:"):
        text.append(f": {run.reason}")
    return text


def _aware(dt: datetime) -> datetime:
    """Naive datetimes from the API are UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def fmt_time(dt: datetime | None, now: datetime | None = None) -> str:
    if dt is None:
        return "-"
    local = _aware(dt).astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    return local.strftime("%H:%M:%S") if local.date() == today else local.strftime("%Y-%m-%d %H:%M")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def elapsed(start: datetime | None, end: datetime | None, now: datetime | None = None) -> float | None:
    if start is None:
        return None
    stop = _aware(end) if end else (now or datetime.now(UTC))
    return max(0.0, (stop - _aware(start)).total_seconds())


def progress_text(run: RunOut) -> Text:
    if run.progress is None and not run.stage:
        return Text("-", style="dim")
    parts = Text()
    if run.progress is not None:
        filled = round(run.progress * 10)
        parts.append("█" * filled + "░" * (10 - filled), style=STATE_STYLES.get(str(run.state), ""))
        parts.append(f" {run.progress:4.0%}")
    if run.stage:
        parts.append(f" {run.stage}", style="dim")
    return parts


def runs_table(runs: Sequence[RunOut], *, total: int | None = None, now: datetime | None = None) -> Table:
    caption = f"{len(runs)} of {total} runs" if total is not None and total > len(runs) else None
    table = Table(box=None, header_style="bold", caption=caption, pad_edge=False)
    for header in ("ID", "NODE", "TYPE", "ADAPTER", "STATE", "ATTEMPT", "STARTED", "DURATION", "PROGRESS"):
        table.add_column(header, no_wrap=True, justify="right" if header in ("ID", "ATTEMPT") else "left")
    for run in runs:
        table.add_row(
            str(run.id),
            run.node_name,
            str(run.operator_runtime_type),
            run.adapter,
            run_state_text(run),
            str(run.attempt),
            fmt_time(run.started_at or run.created_at, now),
            fmt_duration(elapsed(run.started_at, run.finished_at, now)),
            progress_text(run),
        )
    return table


def run_summary(run: RunOut, *, now: datetime | None = None) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("run", str(run.id)),
        ("node", f"{run.node_name}" + (f" (#{run.node_id})" if run.node_id else "")),
        ("type", str(run.operator_runtime_type)),
        ("adapter", run.adapter + (f"  {run.external_id}" if run.external_id else "")),
        ("state", state_text(run.state)),
        ("reason", run.reason or "-"),
        ("attempt", str(run.attempt)),
        ("created", fmt_time(run.created_at, now)),
        ("started", fmt_time(run.started_at, now)),
        ("finished", fmt_time(run.finished_at, now)),
        ("duration", fmt_duration(elapsed(run.started_at, run.finished_at, now))),
        ("progress", progress_text(run)),
    ]
    if run.rows_read is not None:
        rows.append(("rows read", f"{run.rows_read:,}"))
    rows += dispatch_rows(run.dispatch)
    if run.heartbeat_at is not None:
        rows.append(("heartbeat", fmt_time(run.heartbeat_at, now)))
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def dispatch_rows(info: dict[str, Any]) -> list[tuple[str, str | Text]]:
    """`resources` asked and `granted` by the adapter (or why the run waits), for `describe run`."""
    rows: list[tuple[str, str | Text]] = []
    asked = info.get("resources") or {}
    if asked:
        parts = [f"{asked.get('cpu', 0):g} CPU"]
        if asked.get("gpu"):
            parts.append(f"{asked['gpu']} GPU")
        if asked.get("memoryMib"):
            parts.append(f"{asked['memoryMib']} MiB")
        if asked.get("nodes", 1) > 1:
            parts.append(f"x {asked['nodes']} nodes")
        workers = info.get("workers")
        rows.append(("resources", ", ".join(parts) + (f"; {workers} training worker(s)" if workers else "")))
    granted = info.get("granted") or {}
    if "entrypoint" in granted:
        ep = granted["entrypoint"]
        mib = int(ep.get("memory", 0)) // (1024 * 1024)
        rows.append(
            ("granted", f"Ray job entrypoint: {ep.get('CPU', 0):g} CPU, {ep.get('GPU', 0):g} GPU, {mib} MiB")
        )
    elif granted:
        gpus = ",".join(granted.get("gpus") or []) or "none"
        cores = ",".join(str(c) for c in granted.get("cpus") or []) or "all"
        memory = f"{granted['memoryMib']} MiB" if granted.get("memoryMib") else "not limited"
        rows.append(("granted", f"GPUs {gpus}; cores {cores}; memory {memory}"))
    if info.get("waiting"):
        rows.append(("waiting", Text(str(info["waiting"]), style="yellow")))
    return rows


def history_table(run: RunOut, *, now: datetime | None = None) -> Table:
    table = Table(title="state history", title_justify="left", box=None, header_style="bold", pad_edge=False)
    for header in ("AT", "FROM", "TO", "REASON"):
        table.add_column(header, no_wrap=header != "REASON")
    for t in run.history:
        table.add_row(
            fmt_time(t.at, now),
            state_text(t.from_state) if t.from_state else Text("-", style="dim"),
            state_text(t.to_state),
            t.reason,
        )
    return table


def metrics_table(points: Iterable[MetricPoint]) -> Table:
    by_name: dict[str, list[MetricPoint]] = {}
    for p in sorted(points, key=lambda p: (p.step, p.at)):
        by_name.setdefault(p.name, []).append(p)
    table = Table(title="metrics", title_justify="left", box=None, header_style="bold", pad_edge=False)
    for header in ("NAME", "LAST", "MIN", "MAX", "POINTS", "LAST STEP"):
        table.add_column(header, justify="left" if header == "NAME" else "right")
    for name, series in sorted(by_name.items()):
        values = [p.value for p in series]
        table.add_row(
            name,
            f"{values[-1]:.4g}",
            f"{min(values):.4g}",
            f"{max(values):.4g}",
            str(len(values)),
            str(series[-1].step),
        )
    return table


def services_table(services: Sequence[ServiceOut]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("ID", "NAME", "MODEL", "ENDPOINT", "STATE", "WEIGHT", "RESTARTS", "ACCESS"):
        right = header in ("ID", "WEIGHT", "RESTARTS")
        table.add_column(header, no_wrap=True, justify="right" if right else "left")
    for s in services:
        state = state_text(s.state)
        if s.reason and str(s.state) in ("failed", "starting"):  # why it failed, or why it restarts
            state.append(f" ({s.reason})", style="dim")
        table.add_row(
            str(s.id),
            s.service_name,
            f"{s.model_name}@{s.model_version}",
            s.front_endpoint or s.endpoint or "-",  # the model's stable endpoint first
            state,
            f"{s.traffic_weight}%",
            str(s.restarts),
            "public" if s.public else "key set" if s.has_key else "token",
        )
    return table


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):  # a model's versions: show the latest
        if not value:
            return "-"
        last = value[-1]
        return str(last.get("modelVersion", last)) if isinstance(last, dict) else str(last)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def resources_table(kind: str, items: Sequence[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", justify="right", no_wrap=True)
    table.add_column("NAME", no_wrap=True)
    columns = RESOURCE_COLUMNS.get(kind, [])
    for header, _ in columns:
        table.add_column(header.upper(), overflow="fold")
    for item in items:
        name = item.get(KINDS.get(kind, "name"), "-")
        table.add_row(_cell(item.get("id")), str(name), *(_cell(item.get(f)) for _, f in columns))
    return table


def apply_table(outcomes: Sequence[Outcome]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    spaces = {o.space for o in outcomes}
    if len(spaces) > 1:
        table.add_column("SPACE", no_wrap=True)
    for header in ("KIND", "NAME", "ACTION", "CHANGED"):
        table.add_column(header, no_wrap=header != "CHANGED")
    for o in outcomes:
        style = ACTION_STYLES.get(o.action.removeprefix("would be "), "")
        cells: list[str | Text] = [o.kind, o.name, Text(o.action, style=style), o.detail or ""]
        table.add_row(*([o.space] if len(spaces) > 1 else []), *cells)
    return table


def kv_table(rows: Sequence[tuple[str, str]], *, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(key, value)
    return table
