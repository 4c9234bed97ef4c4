"""Dashboard fixtures: a live control server (uvicorn thread, real SQLite store, reconcile on),
the app built against it, and Pilot helpers. Every test here is marked `tui`."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from control.client import AsyncControlClient
from control.deploy import free_port
from control.settings import Settings
from tests.e2e.conftest import LiveControl
from tests.tui.seed import NOW, Demo, seed_demo
from tui.app import AtomApp, make_app
from tui.config import TuiConfig

SMALL = (80, 24)
WIDE = (200, 60)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/tui/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.tui)


@pytest.fixture(autouse=True)
def utc_and_no_blink(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times render in UTC and the cursor does not blink, so screens are the same on every run."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr("textual.widgets._input.Input.cursor_blink", False, raising=False)
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.fixture
def tui_settings(tmp_path: Path) -> Settings:
    # the seeded runs have no agent: a long heartbeat timeout keeps reconcile from failing them mid-test
    return Settings(home=tmp_path / "home", port=free_port(), heartbeat_timeout=1e9, reconcile_interval=0.3)


@pytest.fixture
def live(tui_settings: Settings) -> Iterator[LiveControl]:
    with LiveControl(tui_settings) as control:
        yield control
        control.kill_started()


@pytest.fixture
def demo(live: LiveControl, tmp_path: Path) -> Demo:
    """The demo space (see tests/tui/seed.py) in the live control."""

    (tmp_path / "data").mkdir()

    async def seed() -> Demo:
        async with AsyncControlClient(live.url) as client:
            return await seed_demo(client, live.settings, tmp_path / "data")

    return asyncio.run(seed())


TuiFactory = Callable[..., AtomApp]


@pytest.fixture
def make_tui(live: LiveControl) -> TuiFactory:
    """Build the app against the live control. Keyword arguments override `TuiConfig` fields."""

    def build(**overrides: Any) -> AtomApp:
        values: dict[str, Any] = {"url": live.url, "refresh": 0.3}
        values.update(overrides)
        config = TuiConfig(**values)
        return make_app(config, AsyncControlClient(live.url, timeout=10), owns_client=True)

    return build


@pytest.fixture
def snap_tui(live: LiveControl, demo: Demo) -> TuiFactory:
    """Apps for snapshots: fixed clock, no live refresh, the same URL in the header every time."""

    def build(**overrides: Any) -> AtomApp:
        values: dict[str, Any] = {"url": "http://atom.example:8470", "live": False, "clock": lambda: NOW}
        values.update(overrides)
        return make_app(TuiConfig(**values), AsyncControlClient(live.url, timeout=10), owns_client=True)

    return build


async def until(
    pilot: Any,
    probe: Callable[[], Any],
    *,
    timeout: float = 30.0,  # noqa: ASYNC109
    what: str = "the screen to update",
) -> Any:
    """Let the app run until `probe()` is truthy (polling between frames; no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = probe()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.05)


def settle(pilot: Any) -> Awaitable[None]:
    """A pause long enough for workers started by the last key to land (snapshot stability)."""
    result: Awaitable[None] = pilot.pause(0.3)
    return result


def screen_text(app: Any) -> str:
    """What the terminal shows right now, as plain text (what a user reads)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)
