"""Benchmark: the dashboard's Runs screen with 10,000 runs: first paint and filter latency vs the naive way.

    .venv/bin/python benchmarks/tui_runs.py [--runs 10000] [--repeat 5] [--page-size 100]

Starts `atom`'s control server (uvicorn, its own process, a temporary SQLite store), inserts the
runs in bulk (tests/tui/seed.py `insert_runs`), then drives headless Textual apps (`run_test`)
against it over HTTP and takes the median of `--repeat` runs of:

1. first paint: the app starts and shows Runs -> the first page is in the table (Atom: one request
   of `--page-size` runs, sorted and counted by control);
2. filter latency: one keystroke in the `/` field -> the table shows the new subset (Atom: one
   request with control's `q`; the keystroke alternates `node:ctr-` <-> `node:ctr-t`, 2,500 <-> 1,250
   runs);

against the naive way: fetch all runs through the same API, 1,000 per request, and put every one
in a DataTable (same columns and cells); its filter matches the loaded runs in memory and refills
the table with the matches. Prints the milliseconds and the ratio (naive / Atom).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from textual import events  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import DataTable, Input  # noqa: E402

from control.client import AsyncControlClient  # noqa: E402
from control.schemas import RunOut  # noqa: E402
from tui.app import AtomApp  # noqa: E402
from tui.config import TuiConfig  # noqa: E402
from tui.screens.runs import RunsScreen  # noqa: E402
from tui.widgets.runs_table import RunsTable, cells, layout  # noqa: E402

SIZE = (200, 60)
QUERIES = ("node:ctr-", "node:ctr-t")

SERVER = """
import sys, uvicorn
from control.api.app import create_app
from control.settings import Settings
settings = Settings(home=sys.argv[1], port=int(sys.argv[2]), heartbeat_timeout=1e9)
uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


# -- the server ------------------------------------------------------------------------------------


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    from control.deploy import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(home), str(port)], cwd=REPO)
    url = f"http://127.0.0.1:{port}"

    async def wait() -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                async with AsyncControlClient(url, timeout=2) as client:
                    await client.ensure_space("default")
                    return
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                await asyncio.sleep(0.1)

    asyncio.run(wait())
    return proc, url


def seed(home: Path, runs: int) -> None:
    from control.settings import Settings
    from tests.tui.seed import insert_runs

    insert_runs(Settings(home=home), runs)


# -- timing helpers -------------------------------------------------------------------------------


async def wait_until(probe: Callable[[], bool], timeout: float = 60.0) -> None:  # noqa: ASYNC109
    deadline = time.perf_counter() + timeout
    while not probe():
        if time.perf_counter() > deadline:
            raise TimeoutError("the table did not update")
        await asyncio.sleep(0.0005)


def keystroke(app: App[Any], key: str) -> None:
    """A key as the terminal driver would deliver it (no Pilot waits)."""
    char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    assert app._driver is not None
    app._driver.send_message(event)


# -- Atom's Runs screen ---------------------------------------------------------------------------


class RunsFirst(AtomApp):
    """The dashboard, opening on Runs (`atom tui` opens on the navigator; `2` or `:runs` goes here)."""

    DEFAULT_MODE = "runs"
    CSS_PATH = str(REPO / "tui" / "atom.tcss")


def atom_app(url: str, page_size: int) -> AtomApp:
    config = TuiConfig(url=url, page_size=page_size, live=False)
    return RunsFirst(config, AsyncControlClient(url, timeout=30), owns_client=True)


def runs_screen(app: App[Any]) -> RunsScreen | None:
    screen = app.screen
    if isinstance(screen, RunsScreen) and screen.query(RunsTable):
        return screen
    return None


async def atom_first_paint(url: str, page_size: int) -> float:
    app = atom_app(url, page_size)
    start = time.perf_counter()
    async with app.run_test(size=SIZE):
        await wait_until(lambda: (s := runs_screen(app)) is not None and s.table.row_count >= page_size)
        elapsed = time.perf_counter() - start
    return elapsed


async def atom_filter(url: str, page_size: int, totals: dict[str, int], repeat: int) -> list[float]:
    app = atom_app(url, page_size)
    times = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: (s := runs_screen(app)) is not None and s.table.row_count >= page_size)
        screen = runs_screen(app)
        assert screen is not None
        await pilot.press("slash", *QUERIES[0])
        await wait_until(
            lambda: f"of {totals[QUERIES[0]]:,} runs" in str(screen.query_one("#runs-status").render())
        )
        for i in range(repeat * 2):
            query = QUERIES[(i + 1) % 2]
            key = "t" if query.endswith("t") else "backspace"
            start = time.perf_counter()
            keystroke(app, key)
            await wait_until(
                lambda q=query: (
                    screen.query_text == q  # type: ignore[misc]
                    and screen.table_generation == screen._generation
                    and f"of {totals[q]:,} runs" in str(screen.query_one("#runs-status").render())
                )
            )
            times.append(time.perf_counter() - start)
            await pilot.pause(0.05)
    return times


# -- the naive way ----------------------------------------------------------------------------------


class NaiveRuns(App[None]):
    """Every run in one DataTable; the filter matches the loaded runs and refills the table."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.runs: list[RunOut] = []
        self.loaded = False
        self.shown_query: str | None = None
        self.widths = {c.key: w for c, w in layout(SIZE[0] - 2)}

    def compose(self) -> ComposeResult:
        yield Input(id="filter")
        yield DataTable(id="table", cursor_type="row")

    async def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key in self.widths:
            table.add_column(key, key=key)
        self.run_worker(self.load_all())

    async def load_all(self) -> None:
        async with AsyncControlClient(self.url, timeout=60) as client:
            offset = 0
            while True:
                page = await client.list_runs(space="default", limit=1000, offset=offset)
                self.runs += page.items
                offset += len(page.items)
                if offset >= page.total or not page.items:
                    break
        self.fill(self.runs)
        self.loaded = True

    def fill(self, runs: list[RunOut]) -> None:
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        table = self.query_one(DataTable)
        with self.batch_update():
            table.clear()
            table.add_rows(cells(run, now, self.widths) for run in runs)

    def on_input_changed(self, event: Input.Changed) -> None:
        terms = event.value.split()

        def match(run: RunOut) -> bool:
            fields = (run.node_name, run.state.value, run.adapter, run.operator_runtime_type.value)
            for term in terms:
                field, _, text = term.partition(":")
                if text and field == "node":
                    if not run.node_name.startswith(text):
                        return False
                elif not any(term.lower() in f.lower() for f in fields):
                    return False
            return True

        self.fill([r for r in self.runs if match(r)])
        self.shown_query = event.value


async def naive_first_paint(url: str, runs: int) -> float:
    app = NaiveRuns(url)
    start = time.perf_counter()
    async with app.run_test(size=SIZE):
        await wait_until(lambda: app.loaded and app.query_one(DataTable).row_count == runs, timeout=300)
        elapsed = time.perf_counter() - start
    return elapsed


async def naive_filter(url: str, runs: int, totals: dict[str, int], repeat: int) -> list[float]:
    app = NaiveRuns(url)
    times = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.loaded and app.query_one(DataTable).row_count == runs, timeout=300)
        app.query_one(Input).focus()
        await pilot.press(*QUERIES[0])
        await wait_until(lambda: app.shown_query == QUERIES[0])
        for i in range(repeat * 2):
            query = QUERIES[(i + 1) % 2]
            start = time.perf_counter()
            keystroke(app, "t" if query.endswith("t") else "backspace")
            await wait_until(
                lambda q=query: (
                    app.shown_query == q  # type: ignore[misc]
                    and app.query_one(DataTable).row_count == totals[q]
                )
            )
            times.append(time.perf_counter() - start)
            await pilot.pause(0.05)
    return times


# -- main -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="repetitions; the median counts")
    parser.add_argument("--page-size", type=int, default=100, help="the dashboard's page_size")
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="atom-bench-tui-") as tmp:
        home = Path(tmp) / "home"
        proc, url = start_server(home)
        try:
            t0 = time.perf_counter()
            seed(home, args.runs)
            print(f"{args.runs:,} runs inserted in {time.perf_counter() - t0:.1f} s; control at {url}")
            totals = asyncio.run(count(url))
            results = asyncio.run(measure(url, args, totals))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    report(args, results, totals)


async def count(url: str) -> dict[str, int]:
    async with AsyncControlClient(url) as client:
        return {q: (await client.list_runs(space="default", q=q, limit=1)).total for q in QUERIES}


async def measure(
    url: str, args: argparse.Namespace, totals: dict[str, int]
) -> dict[str, tuple[float, float]]:
    atom_paint = [await atom_first_paint(url, args.page_size) for _ in range(args.repeat)]
    naive_paint = [await naive_first_paint(url, args.runs) for _ in range(args.repeat)]
    atom_keys = await atom_filter(url, args.page_size, totals, args.repeat)
    naive_keys = await naive_filter(url, args.runs, totals, args.repeat)
    return {
        "first paint (app start -> first page in the table)": (
            statistics.median(atom_paint),
            statistics.median(naive_paint),
        ),
        "filter (one keystroke in / -> table updated)": (
            statistics.median(atom_keys),
            statistics.median(naive_keys),
        ),
    }


def report(args: argparse.Namespace, results: dict[str, tuple[float, float]], totals: dict[str, int]) -> None:
    table = Table(title=f"Runs screen with {args.runs:,} runs (median of {args.repeat})")
    table.add_column("measure")
    table.add_column("Atom (paged, server-side q)", justify="right")
    table.add_column("naive (all runs, 1000/request)", justify="right")
    table.add_column("naive / Atom", justify="right")
    rows = []
    for label, (atom, naive) in results.items():
        row = (label, f"{atom * 1000:.0f} ms", f"{naive * 1000:.0f} ms", f"{naive / atom:.1f}x")
        table.add_row(*row)
        rows.append(row)
    console = Console(width=max(120, Console().width))
    console.print(table)
    notes = [
        f"page size {args.page_size}; filter keystrokes alternate {QUERIES[0]!r} "
        f"({totals[QUERIES[0]]:,} runs) and {QUERIES[1]!r} ({totals[QUERIES[1]]:,} runs); "
        f"terminal {SIZE[0]}x{SIZE[1]}, headless.",
        "control runs in its own process on the same machine (SQLite store, loopback HTTP).",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"load average at the end {os.getloadavg()[0]:.1f}.",
    ]
    for note in notes:
        console.print(f"- {note}")
    if args.out:
        head = "| measure | Atom | naive | naive / Atom |\n|---|---:|---:|---:|\n"
        body = "".join(f"| {' | '.join(r)} |\n" for r in rows)
        args.out.write_text(
            f"# Runs screen with {args.runs:,} runs\n\n`.venv/bin/python benchmarks/tui_runs.py`\n\n"
            + head
            + body
            + "\n"
            + "".join(f"- {n}\n" for n in notes)
        )
        console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
