"""`atom schedule`, `atom schedules` and `atom backfill` against the real app (SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from control.cli.schedules import relative
from control.client import AsyncControlClient
from control.settings import Settings
from tests.control.cli.conftest import LifespanTransport

Atom = Callable[..., tuple[int, str, str]]


def make_exam(settings: Settings) -> None:
    """An exam with no nodes: its exam runs are refused when they start (they fail, naming why)."""

    async def make() -> None:
        async with AsyncControlClient("http://atom.test", transport=LifespanTransport(settings)) as c:
            await c.ensure_space("default")
            await c.put("default", "experiments", "scene", {"experimentName": "scene"})
            scene = await c.get("default", "experiments", "scene")
            await c.put("default", "exams", "nightly", {"examName": "nightly", "experimentId": scene["id"]})

    asyncio.run(make())


def test_schedule_list_and_backfill(atom: Atom, control_settings: Settings) -> None:
    make_exam(control_settings)
    code, out, err = atom("schedule", "nightly", "--cron", "0 25 * * *", "--tz", "Europe/Berlin")
    assert code == 1 and "cron" in err and "out of range" in err, err
    code, out, err = atom("schedule", "nightly", "--cron", "0 3 * * *", "--tz", "Mars/Base")
    assert code == 1 and "unknown time zone 'Mars/Base'" in err, err
    code, out, err = atom("schedules")
    assert code == 0 and out == "" and "no schedules in space default" in err

    code, out, err = atom(
        "schedule", "nightly", "--cron", "0 3 * * *", "--tz", "Europe/Berlin", "--concurrency", "queue"
    )
    assert code == 0, err
    row = out.splitlines()[1].split()
    assert row[:5] == ["nightly", "default", "0", "3", "*"] and "Europe/Berlin" in row and "queue" in row
    assert " 03:00 CE" in out and "in " in out

    code, out, err = atom("schedule", "nightly", "--disable")  # the other settings stay
    assert code == 0 and "disabled" in out and "queue" in out and "0 3 * * *" in out, err
    code, out, err = atom("schedules")
    assert code == 0 and "nightly" in out and "disabled" in out

    code, out, err = atom("backfill", "nightly", "--from", "2026-01-01", "--to", "2026-01-03")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["EXAM", "RUN", "LOGICAL", "DATE", "STATE", "TRIGGER"]
    assert [line.split()[1:4] for line in lines[1:]] == [[f"2026-01-0{d}", "03:00", "CET"] for d in (1, 2, 3)]
    assert all(line.split()[-1] == "backfill" for line in lines[1:])
    assert "3 exam run(s) created" in err
    code, out, err = atom("backfill", "nightly", "--from", "2026-01-01", "--to", "2026-01-03")
    assert code == 0 and "nothing to backfill: all 3 logical date(s)" in out, (out, err)
    code, out, err = atom("backfill", "nightly", "--from", "2026-01-03", "--to", "2026-01-01")
    assert code == 1 and "to" in err and "before from" in err

    code, out, err = atom("schedule", "nightly", "--delete")
    assert code == 0 and "deleted" in out
    code, out, err = atom("schedule", "nightly")
    assert code == 1 and "has no schedule" in err


def test_relative_times() -> None:
    now = datetime(2026, 1, 1, 12)
    assert relative(datetime(2026, 1, 1, 15), now) == "in 3 h"
    assert relative(datetime(2026, 1, 1, 12, 12), now) == "in 12 min"
    assert relative(datetime(2025, 12, 29, 12), now) == "3 d ago"
    assert relative(None, now) == ""
