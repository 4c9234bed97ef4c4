"""Cron fire times, what is due, the catch-up bound and the concurrency decision: pure, no clock read."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from control.errors import InvalidSpec
from control.pipeline.schedules import (
    BACKFILL_MAX,
    Action,
    Cron,
    backfill_dates,
    check_window,
    decide,
    due,
    parse_cron,
    parse_zone,
    plan,
    to_utc,
)
from control.schemas.pipeline import ConcurrencyPolicy

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def local_day(zone: str, day: date) -> tuple[datetime, datetime]:
    """[midnight, next midnight) of `day` in `zone`, as naive UTC."""
    z = ZoneInfo(zone)
    start = to_utc(day, z)
    end = to_utc(day + timedelta(days=1), z)
    assert start is not None and end is not None
    return start, end - timedelta(microseconds=1)


def fires_on(expr: str, zone: str, day: date) -> list[datetime]:
    first, last = local_day(zone, day)
    return Cron.of(expr, zone).between(first, last, limit=1000)


def wall(times: list[datetime], zone: str) -> list[str]:
    return [t.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).strftime("%H:%M %Z") for t in times]


def test_fire_times_are_read_in_the_schedules_zone() -> None:
    cron = Cron.of("0 3 * * *", BERLIN)
    assert cron.next_after(datetime(2026, 1, 10, 12)) == datetime(2026, 1, 11, 2)  # CET, UTC+1
    assert cron.next_after(datetime(2026, 7, 10, 12)) == datetime(2026, 7, 11, 1)  # CEST, UTC+2
    assert Cron.of("0 3 * * *", "UTC").next_after(datetime(2026, 7, 10, 12)) == datetime(2026, 7, 11, 3)
    # at a fire time: `inclusive` takes it, otherwise the next one
    assert cron.next_after(datetime(2026, 1, 11, 2), inclusive=True) == datetime(2026, 1, 11, 2)
    assert cron.next_after(datetime(2026, 1, 11, 2)) == datetime(2026, 1, 12, 2)
    assert Cron.of("@daily", NEW_YORK).next_after(datetime(2026, 1, 10, 12)) == datetime(2026, 1, 11, 5)


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [(BERLIN, date(2026, 3, 29), date(2026, 10, 25)), (NEW_YORK, date(2026, 3, 8), date(2026, 11, 1))],
)
def test_a_dst_day_neither_fires_twice_nor_skips(zone: str, spring: date, autumn: date) -> None:
    # a fixed wall-clock time fires once on both change days, also when it falls in the gap or the repeat
    for day in (spring, autumn):
        for expr in ("30 2 * * *", "0 3 * * *", "30 1 * * *", "0 12 * * *"):
            assert len(fires_on(expr, zone, day)) == 1, (expr, day)
    # 02:30 does not exist on the spring day: it fires when the clock shows 03:30
    assert wall(fires_on("30 2 * * *", zone, spring), zone)[0].startswith("03:30")
    # 01:30 (Berlin 02:30) repeats in autumn: the first occurrence fires, once
    repeated = "30 2 * * *" if zone == BERLIN else "30 1 * * *"
    autumn_fires = fires_on(repeated, zone, autumn)
    assert len(autumn_fires) == 1
    offset = autumn_fires[0].replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).utcoffset()
    assert offset == ZoneInfo(zone).utcoffset(datetime(2026, 7, 1))  # still summer time
    # an hourly schedule counts real hours: 23 on the short day, 25 on the long one, an hour apart
    short, long = fires_on("0 * * * *", zone, spring), fires_on("0 * * * *", zone, autumn)
    assert (len(short), len(long)) == (23, 25)
    for times in (short, long):
        assert all(b - a == timedelta(hours=1) for a, b in zip(times, times[1:], strict=False))
    # and days around the change are whole: every local midnight once
    days = Cron.of("0 0 * * *", zone).between(
        *local_day(zone, spring - timedelta(days=2))[:1],
        local_day(zone, spring + timedelta(days=2))[1],
        limit=10,
    )
    assert len(days) == 5 and len(set(days)) == 5


def test_start_and_end_bound_the_fire_times() -> None:
    cron = Cron.of("0 6 * * *", "UTC", start=datetime(2026, 5, 3, 6), end=datetime(2026, 5, 5, 6))
    assert cron.next_after(datetime(2026, 1, 1)) == datetime(2026, 5, 3, 6)  # the start itself counts
    assert cron.between(datetime(2026, 1, 1), datetime(2027, 1, 1), limit=100) == [
        datetime(2026, 5, 3, 6),
        datetime(2026, 5, 4, 6),
        datetime(2026, 5, 5, 6),
    ]
    assert cron.next_after(datetime(2026, 5, 5, 6)) is None  # past the end
    with pytest.raises(InvalidSpec) as err:
        check_window(datetime(2026, 5, 5), datetime(2026, 5, 4))
    assert err.value.errors[0]["field"] == "end"


def test_due_fires_every_missed_time_up_to_the_catch_up_bound() -> None:
    cron = Cron.of("0 * * * *", "UTC")
    nothing = due(cron, next_fire_at=datetime(2026, 1, 1, 5), now=datetime(2026, 1, 1, 4, 59), catchup_max=10)
    assert nothing.fires == [] and nothing.next_fire_at == datetime(2026, 1, 1, 5)
    one = due(cron, next_fire_at=datetime(2026, 1, 1, 5), now=datetime(2026, 1, 1, 5), catchup_max=10)
    assert one.fires == [datetime(2026, 1, 1, 5)] and one.next_fire_at == datetime(2026, 1, 1, 6)
    # 24 hours down, at most 3 run: the newest ones; the 21 older ones are counted, not run
    late = due(cron, next_fire_at=datetime(2026, 1, 1, 5), now=datetime(2026, 1, 2, 4, 30), catchup_max=3)
    assert late.fires == [datetime(2026, 1, 2, 2), datetime(2026, 1, 2, 3), datetime(2026, 1, 2, 4)]
    assert (late.dropped, late.dropped_first, late.dropped_last) == (
        21,
        datetime(2026, 1, 1, 5),
        datetime(2026, 1, 2, 1),
    )
    assert late.next_fire_at == datetime(2026, 1, 2, 5)
    ended = Cron.of("0 * * * *", "UTC", end=datetime(2026, 1, 1, 6))
    assert due(
        ended, next_fire_at=datetime(2026, 1, 1, 6), now=datetime(2026, 1, 1, 9), catchup_max=5
    ) == due(ended, next_fire_at=datetime(2026, 1, 1, 6), now=datetime(2026, 1, 1, 7), catchup_max=5)
    assert (
        due(
            ended, next_fire_at=datetime(2026, 1, 1, 6), now=datetime(2026, 1, 1, 9), catchup_max=5
        ).next_fire_at
        is None
    )


def test_concurrency_decisions() -> None:
    for policy in ConcurrencyPolicy:
        assert decide(policy, previous_going=False) is Action.LAUNCH
    assert decide("skip", previous_going=True) is Action.SKIP
    assert decide("queue", previous_going=True) is Action.QUEUE
    assert decide("replace", previous_going=True) is Action.REPLACE
    three = [datetime(2026, 1, 1, h) for h in (1, 2, 3)]
    assert plan("skip", three, previous_going=False) == [Action.LAUNCH, Action.SKIP, Action.SKIP]
    assert plan("skip", three, previous_going=True) == [Action.SKIP] * 3
    assert plan("queue", three, previous_going=False) == [Action.LAUNCH, Action.QUEUE, Action.QUEUE]
    assert plan("queue", three, previous_going=True) == [Action.QUEUE] * 3
    # replace runs only the newest due time (each older one would be replaced at once)
    assert plan("replace", three, previous_going=False) == [Action.SKIP, Action.SKIP, Action.LAUNCH]
    assert plan("replace", three, previous_going=True) == [Action.SKIP, Action.SKIP, Action.REPLACE]


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("61 * * * *", "out of range"),
        ("* * *", "five fields"),
        ("0 3 * * * *", "five fields"),
        ("0 0 30 2 *", "never fires"),
        ("@sometimes", "nickname"),
        ("", "five fields"),
        ("0 3 * * mo", "mo"),
    ],
)
def test_bad_cron_expressions_are_refused_naming_the_field(expr: str, why: str) -> None:
    with pytest.raises(InvalidSpec) as err:
        parse_cron(expr, field="schedule.cron")
    assert err.value.errors[0]["field"] == "schedule.cron"
    assert why in str(err.value), str(err.value)


def test_cron_forms_that_are_accepted() -> None:
    assert parse_cron("0  3 * *   *") == "0 3 * * *"
    assert parse_cron("@DAILY") == "@daily"
    assert parse_cron("*/15 8-18 * * mon-fri") == "*/15 8-18 * * mon-fri"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/UTC", "Europe/Berlin "])
def test_unknown_time_zones_are_refused(name: str) -> None:
    with pytest.raises(InvalidSpec) as err:
        parse_zone(name, field="schedule.timezone")
    assert err.value.errors[0]["field"] == "schedule.timezone"


def test_naive_start_and_end_are_in_the_schedules_zone() -> None:
    z = ZoneInfo(BERLIN)
    assert to_utc(date(2026, 7, 1), z) == datetime(2026, 6, 30, 22)
    assert to_utc(datetime(2026, 1, 1, 3), z) == datetime(2026, 1, 1, 2)
    assert to_utc(datetime(2026, 1, 1, 3, tzinfo=UTC), z) == datetime(2026, 1, 1, 3)


def test_backfill_dates_and_their_limit() -> None:
    cron = Cron.of("0 3 * * *", BERLIN, start=datetime(2030, 1, 1))  # its start does not bound a backfill
    first, _ = local_day(BERLIN, date(2026, 1, 1))
    _, last = local_day(BERLIN, date(2026, 1, 7))
    dates = backfill_dates(cron, first, last)
    assert wall(dates, BERLIN) == ["03:00 CET"] * 7 and dates[0] == datetime(2026, 1, 1, 2)
    with pytest.raises(InvalidSpec) as err:
        backfill_dates(Cron.of("* * * * *", "UTC"), datetime(2026, 1, 1), datetime(2026, 1, 2))
    assert err.value.errors[0]["field"] == "to" and str(BACKFILL_MAX) in str(err.value)
    with pytest.raises(InvalidSpec):
        backfill_dates(cron, last, first)


@pytest.mark.parametrize(
    ("expr", "zone"), [("* * * * *", BERLIN), ("30 * * * *", NEW_YORK), ("30 2 * * *", BERLIN)]
)
def test_a_long_downtime_jumps_to_the_newest_fire_times(expr: str, zone: str) -> None:
    cron = Cron.of(expr, zone)
    begin = datetime(2010 if expr.startswith("30 2") else 2025, 1, 1)  # over 2000 fire times ago
    now = datetime(2026, 11, 1, 7, 45)  # just after a daylight saving change
    first = cron.next_after(begin, inclusive=True)
    late = due(cron, next_fire_at=first, now=now, catchup_max=5)
    newest: list[datetime] = []  # the truth, walked back from a day (or more) before now
    for fire in cron.after(now - timedelta(days=8)):
        if fire > now:
            break
        newest.append(fire)
    assert late.fires == newest[-5:] and late.dropped_last == newest[-6]
    assert late.dropped_first == first and late.dropped >= 2000 and not late.exact
    assert late.next_fire_at == cron.next_after(now)
