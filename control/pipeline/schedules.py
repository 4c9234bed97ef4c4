"""Cron schedules: fire times, what is due, the catch-up bound and the concurrency decision. Pure.

A schedule is a cron expression (five fields, or `@daily`, `@hourly` ...) read in an IANA time
zone, between an optional start and end. An expression with fixed hours
names wall-clock times in that zone: each fires once, converted to UTC with `zoneinfo`, so on a
daylight saving change nothing fires twice and nothing is skipped: a local time that occurs twice
(autumn) fires at its first occurrence; one that does not exist (spring) fires at the instant the
wall clock shows after the gap (`30 2 * * *` in Europe/Berlin fires at 03:30 CEST that day). An
expression whose hour field is `*` (or `*/n`, `@hourly`) counts real hours: it fires in both
occurrences of a repeated hour, and once per real hour across a gap.
The logical date of a fire is its fire time (UTC), as Cube Studio's "execution time".

Nothing here reads a clock: every function takes `now`, so tests inject time.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from control.errors import InvalidSpec
from control.schemas.pipeline import ConcurrencyPolicy

#: cron nicknames croniter reads
NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: the most fire times one backfill may create
BACKFILL_MAX = 1000


def parse_cron(expr: str, *, field: str = "cron") -> str:
    """`expr` normalised (single spaces), if croniter reads it as five fields or a nickname.

    Raises:
        InvalidSpec: names `field`: not five fields, a value out of range, or a date that never comes.
    """
    text = " ".join(str(expr).split())
    if text.startswith("@"):
        if text.lower() not in NICKNAMES:
            raise InvalidSpec(
                f"{field} {expr!r}: unknown nickname; use one of {', '.join(NICKNAMES)} or five fields",
                field=field,
                field_msg=f"unknown nickname {text!r}",
            )
        text = text.lower()
    elif len(text.split(" ")) != 5:
        raise InvalidSpec(
            f"{field} {expr!r}: expected five fields (minute hour day-of-month month day-of-week), "
            f"got {len(text.split()) if text else 0}",
            field=field,
            field_msg="expected five fields: minute hour day-of-month month day-of-week",
        )
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError as exc:
        why = str(exc).replace(f"[{text}] ", "")
        if "find next date" in why:
            why = "it never fires"
        raise InvalidSpec(f"{field} {expr!r}: {why}", field=field, field_msg=why) from None
    return text


def parse_zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """The IANA time zone `name` (e.g. `Europe/Berlin`, `UTC`).

    Raises:
        InvalidSpec: names `field` when zoneinfo does not know it.
    """
    try:
        if not name or name != name.strip() or ".." in name or name.startswith("/"):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin"
        raise InvalidSpec(f"{field}: {msg}", field=field, field_msg=msg) from None


EARLIEST, LATEST = datetime(1970, 1, 1), datetime(9000, 1, 1)
"""The range a start, an end or a backfill's bounds may name."""


def to_utc(value: date | datetime | None, zone: ZoneInfo, *, field: str = "start") -> datetime | None:
    """A start or end as a naive UTC datetime (the store's form); naive values are in `zone`,
    a bare date is its midnight there.

    Raises:
        InvalidSpec: names `field` when the moment is before 1970 or after 9000.
    """
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    try:
        at = value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        at = datetime.min
    if not EARLIEST <= at <= LATEST:
        msg = f"{value.isoformat()} is out of range: give a date between {EARLIEST:%Y} and {LATEST:%Y}"
        raise InvalidSpec(f"{field}: {msg}", field=field, field_msg=msg)
    return at


def check_window(start: datetime | None, end: datetime | None, *, field: str = "end") -> None:
    """Refuse an end before the start (both naive UTC)."""
    if start is not None and end is not None and end < start:
        raise InvalidSpec(
            f"{field}: the end ({end:%Y-%m-%d %H:%M} UTC) is before the start ({start:%Y-%m-%d %H:%M} UTC)",
            field=field,
            field_msg="before the start",
        )


@dataclass(frozen=True)
class Cron:
    """A parsed schedule: its expression, zone and window (naive UTC bounds, inclusive)."""

    expr: str
    zone: ZoneInfo
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def of(cls, expr: str, zone: str, start: datetime | None = None, end: datetime | None = None) -> Cron:
        return cls(parse_cron(expr), parse_zone(zone), start, end)

    @property
    def hourly(self) -> bool:
        """The hour field is `*` (or `*/n`): the expression counts real hours, not wall-clock times."""
        fields = self.expr.split(" ")
        return self.expr == "@hourly" or (len(fields) == 5 and fields[1].startswith("*"))

    def _local(self, at: datetime) -> datetime:
        """The naive wall-clock time in the zone of the naive UTC instant `at`."""
        return at.replace(tzinfo=UTC).astimezone(self.zone).replace(tzinfo=None)

    def _utc(self, wall: datetime) -> datetime:
        """The naive UTC instant of the naive wall-clock time `wall` (first occurrence; after a gap)."""
        return wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC).replace(tzinfo=None)

    def after(self, at: datetime, *, inclusive: bool = False) -> Iterator[datetime]:
        """Fire times (naive UTC, strictly increasing) after `at` (or at it, with `inclusive`),
        from the start on, up to the end."""
        floor = at if self.start is None or self.start <= at else self.start
        inclusive = inclusive or floor != at
        hourly = self.hourly
        try:
            last = floor - timedelta(microseconds=1) if inclusive else floor
            if hourly:  # every hour counts, both of a repeated one: iterate real instants
                it = croniter(self.expr, last.replace(tzinfo=UTC).astimezone(self.zone))
            else:
                it = croniter(self.expr, self._local(last))
        except (OverflowError, CroniterError):
            return
        while True:
            try:
                nxt = it.get_next(datetime)
                fire = nxt.astimezone(UTC).replace(tzinfo=None) if hourly else self._utc(nxt)
            except (OverflowError, CroniterError):  # past year 9999
                return
            if fire <= last:  # a wall time in a gap or a repeated hour: already fired
                continue
            if self.end is not None and fire > self.end:
                return
            last = fire
            yield fire

    def back_from(self, at: datetime, count: int) -> datetime:
        """A moment at least `count` fire times before `at` (or the end, if earlier), give or take
        a daylight saving shift: where a walk forward to `at` may start."""
        anchor = at if self.end is None or self.end > at else self.end
        try:
            wall = self._local(anchor)
            it = croniter(self.expr, wall + timedelta(minutes=1))
            for _ in range(count):
                wall = it.get_prev(datetime)
            return self._utc(wall) - timedelta(hours=3)
        except (OverflowError, CroniterError):
            return EARLIEST

    def next_after(self, at: datetime, *, inclusive: bool = False) -> datetime | None:
        """The first fire time after `at` (None: none before the end)."""
        return next(self.after(at, inclusive=inclusive), None)

    def between(self, first: datetime, last: datetime, *, limit: int) -> list[datetime]:
        """Fire times in [first, last], at most `limit` + 1 (so a caller can tell it was cut)."""
        out: list[datetime] = []
        for fire in self.after(first, inclusive=True):
            if fire > last or len(out) > limit:
                break
            out.append(fire)
        return out


@dataclass(frozen=True)
class Due:
    """What a schedule must do at `now`."""

    fires: list[datetime]
    """Logical dates to fire now, oldest first (at most the catch-up bound)."""
    dropped: int = 0
    """Missed logical dates beyond the catch-up bound (the oldest ones): not run. When `exact` is
    False, at least this many (control was down for longer than `WALK_MAX` fire times)."""
    dropped_first: datetime | None = None
    dropped_last: datetime | None = None
    next_fire_at: datetime | None = None
    """The first fire time after `now` (None once past the end)."""
    exact: bool = True


WALK_MAX = 2000
"""Missed fire times walked one by one; after a longer downtime the walk jumps to the newest ones."""


def due(cron: Cron, *, next_fire_at: datetime | None, now: datetime, catchup_max: int) -> Due:
    """The fire times from `next_fire_at` up to `now`, keeping the newest `catchup_max`.

    A schedule whose `next_fire_at` is still ahead (or None) has nothing due. Time and memory stay
    bounded however long control was down (a minutely schedule after a month: a few thousand steps).
    """
    if next_fire_at is None or next_fire_at > now:
        return Due([], next_fire_at=next_fire_at)
    keep = max(1, catchup_max)
    kept: deque[datetime] = deque(maxlen=keep)
    dropped, first, last = 0, None, None
    for walked, fire in enumerate(cron.after(next_fire_at, inclusive=True)):
        if fire > now:
            break
        if walked >= WALK_MAX + keep:  # a long downtime: jump to the newest fire times
            tail = cron.between(cron.back_from(now, keep + 1), now, limit=10 * (keep + 1) + 10_000)
            tail = [f for f in tail if f > kept[-1]] if kept else tail
            gone = ([*kept] + tail)[:-keep]
            return Due(
                tail[-keep:],
                dropped + len(gone),
                first,
                gone[-1] if gone else last,
                cron.next_after(now),
                False,
            )
        if len(kept) == keep:  # memory stays bounded however long control was down
            last = kept[0]
            first = first or last
            dropped += 1
        kept.append(fire)
    return Due(list(kept), dropped, first, last, cron.next_after(now))


class Action(enum.StrEnum):
    """What a fire does, given the schedule's policy and whether its previous exam run still goes."""

    LAUNCH = "launch"
    SKIP = "skip"
    QUEUE = "queue"
    REPLACE = "replace"


def decide(policy: ConcurrencyPolicy | str, *, previous_going: bool) -> Action:
    """LAUNCH when nothing goes; else the policy's action (skip, queue, or replace the previous)."""
    if not previous_going:
        return Action.LAUNCH
    return Action(ConcurrencyPolicy(policy).value)


def plan(policy: ConcurrencyPolicy | str, fires: list[datetime], *, previous_going: bool) -> list[Action]:
    """The action of each due fire, oldest first: after the first launches, the next ones find it going.

    With `replace`, only the newest fire runs: the older due ones are skipped (each would be replaced
    at once by the next).
    """
    out: list[Action] = []
    going = previous_going
    policy = ConcurrencyPolicy(policy)
    for i, _ in enumerate(fires):
        if policy is ConcurrencyPolicy.REPLACE and i < len(fires) - 1:
            out.append(Action.SKIP)
            continue
        action = decide(policy, previous_going=going)
        out.append(action)
        going = going or action is not Action.SKIP
    return out


def backfill_dates(cron: Cron, first: datetime, last: datetime) -> list[datetime]:
    """The logical dates in [first, last] (naive UTC), ignoring the schedule's own start and end.

    Raises:
        InvalidSpec: `to` before `from`, or more than `BACKFILL_MAX` dates.
    """
    if last < first:
        raise InvalidSpec("to: before from", field="to", field_msg="before from")
    window = Cron(cron.expr, cron.zone)
    dates = window.between(first, last, limit=BACKFILL_MAX)
    if len(dates) > BACKFILL_MAX:
        raise InvalidSpec(
            f"from..to holds more than {BACKFILL_MAX} fire times of {cron.expr!r}: "
            "backfill a shorter range at a time",
            field="to",
            field_msg=f"more than {BACKFILL_MAX} fire times",
        )
    return dates
