"""What `atom apply` does for pipelines: checks the DAG against the space, links names to ids,
keeps edges consistent while relations are rewritten, and sets exam schedules last."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from control.cli._spec import Entity, Spec, SpecError
from control.cli._spec_pipeline import check_dag, server_dag
from control.errors import ControlAPIError
from control.schemas import NodeRelationIn

if TYPE_CHECKING:
    from control.cli.apply import Outcome
    from control.client import AsyncControlClient

Known = dict[tuple[str, str, str], dict[str, Any] | None]


async def _list_or_empty(client: AsyncControlClient, space: str, kind: str) -> list[dict[str, Any]]:
    try:
        return await client.list(space, kind)
    except ControlAPIError as exc:
        if exc.status_code == 404:  # the space does not exist yet
            return []
        raise


async def check_graph(client: AsyncControlClient, spec: Spec) -> None:
    """Check the spec's nodes over each space's DAG on the server: no cycle, every input upstream.

    Raises:
        SpecError: one line per problem, naming the file, the entry and the field.
    """
    problems: list[str] = []
    for space in dict.fromkeys(n.space for n in spec.of("nodes")):
        nodes, sources, exams = await asyncio.gather(
            *(_list_or_empty(client, space, kind) for kind in ("nodes", "sources", "exams"))
        )
        check_dag(spec, space, server_dag(nodes, sources, exams), problems)
    if problems:
        raise SpecError(problems)


def resolve_links(entity: Entity, known: Known) -> list[str]:
    """Put the ids of what `entity` names (its experiment, its exam) into its body and compare fields.

    Returns the fields whose target does not exist yet (a dry run): they count as changed.
    """
    unknown = []
    for id_field, (kind, name) in entity.links.items():
        item = known.get((entity.space, kind, name))
        if item is None:
            unknown.append(id_field)
            entity.compare.pop(id_field, None)
        else:
            entity.body[id_field] = entity.compare[id_field] = int(item["id"])
    return unknown


def same_value(have: Any, want: Any) -> bool:
    """Equal once null members of objects are left out on both sides (a view names every field of a
    nested object such as `searchConf`, nulls included; a spec only those it sets)."""
    return _no_nulls(have) == _no_nulls(want)


def _no_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


def next_ids(relation: dict[str, Any] | None) -> list[int]:
    """The next nodes of a relation view (`nextNodeIds`, or the seed's single `nextNodeId`)."""
    if not relation:
        return []
    ids = [int(i) for i in relation.get("nextNodeIds") or []]
    first = relation.get("nextNodeId")
    return ids if ids or first is None else [int(first)]


def same_next(current: dict[str, Any], wanted: NodeRelationIn) -> bool:
    return set(next_ids(current)) == set(wanted.all_next_ids())


def kept_next_ids(existing: dict[str, Any] | None, wanted: NodeRelationIn) -> list[int] | None:
    """The next nodes to keep for a first write that only drops edges, or None when none is dropped."""
    now = next_ids((existing or {}).get("relation"))
    keep = set(wanted.all_next_ids())
    if not now or set(now) <= keep:
        return None
    return [i for i in now if i in keep]


# -- schedules --------------------------------------------------------------------------------

SCHEDULE_FIELDS = {"cron": "cron", "timezone": "timezone", "concurrency": "concurrency", "enabled": "enabled",
                   "start": "startAt", "end": "endAt"}  # fmt: skip
"""Spec field -> the schedule view's field."""


def _utc(value: Any, zone: str) -> datetime | None:
    """A start or end as the view holds it: naive UTC (a naive value is read in the schedule's zone)."""
    if value is None:
        return None
    at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(zone))
    return at.astimezone(UTC).replace(tzinfo=None)


def schedule_diff(wanted: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The schedule fields that differ from the server's view (start and end compared as instants)."""
    changed = []
    for key, view_key in SCHEDULE_FIELDS.items():
        if key in ("start", "end"):
            have = current.get(view_key)
            same = _utc(wanted.get(key), wanted.get("timezone") or "UTC") == _utc(have, "UTC")
        else:
            same = wanted.get(key) == current.get(view_key)
        if not same:
            changed.append(key)
    return changed


async def _schedule_or_none(client: AsyncControlClient, exam_id: int) -> dict[str, Any] | None:
    try:
        found = await client.schedule(exam_id)
    except ControlAPIError as exc:
        if exc.status_code == 404:
            return None
        raise
    if found is None:
        return None
    return found.wire() if hasattr(found, "wire") else dict(found)


async def apply_schedules(
    client: AsyncControlClient, exams: list[Entity], known: Known, dry_run: bool
) -> list[Outcome]:
    """Set each exam's `schedule:` when the server's differs; one outcome per scheduled exam."""
    from control.cli.apply import Outcome, _tense

    outcomes: list[Outcome] = []
    for exam in exams:
        if exam.schedule is None:
            continue
        item = known.get((exam.space, "exams", exam.name))
        current = await _schedule_or_none(client, int(item["id"])) if item is not None else None
        changed = schedule_diff(exam.schedule, current) if current is not None else []
        action = "created" if current is None else "updated" if changed else "unchanged"
        if not dry_run and action != "unchanged":
            assert item is not None  # the exam was written before its schedule
            await client.set_schedule(int(item["id"]), exam.schedule)
        outcomes.append(
            Outcome("schedules", exam.name, exam.space, _tense(action, dry_run), ", ".join(changed))
        )
    return outcomes
