"""The runs list query: filters, the `q` text filter, sort keys; the same SQL on SQLite and MySQL.

`q` is whitespace-separated terms, ANDed. A bare term matches (case-insensitive substring) the
node name, state, adapter or operator runtime type, or equals the run id when it is digits.
`state:`, `node:`, `type:` and `adapter:` terms match one field only (node by prefix, the
others exactly). Node filters use ranges, not LIKE, so `ix_runtimes_node_name` serves them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, literal_column, or_, select
from sqlalchemy.orm import Session, defer

from control import schemas as s
from control.store import models as m
from control.store.models import Stamp, utcnow
from control.store.repo import count

R = m.Runtime

#: field-qualified terms: `state:running`, `node:train`, `type:TRAIN`, `adapter:local`
FIELDS = ("state", "node", "type", "adapter")

#: columns no list row needs (the frozen spec can be large)
_HEAVY = (R.spec, R.envs, R.run_parameter, R.source_progress, R.token_hash)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(col: Any, text: str) -> ColumnElement[bool]:
    return func.lower(col).like(f"%{_escape_like(text.lower())}%", escape="\\")


def _prefix(col: Any, text: str) -> ColumnElement[bool]:
    """`col` starts with `text`, as a range (an index serves it; LIKE would not on SQLite)."""
    if not text:
        return col.is_not(None)
    upper = text[:-1] + chr(ord(text[-1]) + 1)
    return and_(col >= text, col < upper)


def term_filter(term: str) -> ColumnElement[bool] | None:
    """The condition one `q` term adds; None for a term that filters nothing (`state:` alone)."""
    field, sep, value = term.partition(":")
    field = field.lower()
    if sep and field in FIELDS:
        if not value:
            return None
        if field == "node":
            return _prefix(R.node_name, value.lower())
        if field == "state":
            return R.state == value.lower()
        if field == "type":
            return R.operator_runtime_type == value.upper()
        return R.adapter == value.lower()
    low = term.lower()
    matches = [_contains(R.node_name, term), _contains(R.adapter, term)]
    # states and runtime types are closed sets: match them here, then compare with IN (indexable)
    states = [v.value for v in s.RunState if low in v.value.lower()]
    types = [v.value for v in s.OperatorRuntimeType if low in v.value.lower()]
    if states:
        matches.append(R.state.in_(states))
    if types:
        matches.append(R.operator_runtime_type.in_(types))
    if term.isdigit():
        matches.append(R.id == int(term))
    return or_(*matches)


def text_filter(q: str | None) -> list[ColumnElement[bool]]:
    """The conditions of a whole `q` (terms ANDed)."""
    found = [term_filter(term) for term in (q or "").split()]
    return [c for c in found if c is not None]


def duration(dialect: str, now: datetime) -> ColumnElement[Any]:
    """(finished_at or `now`) - started_at, as a number that sorts like the duration; NULL if not started."""
    end = func.coalesce(R.finished_at, literal(now, Stamp))
    if dialect == "sqlite":  # stamps are ISO text there; julianday() reads them
        return func.julianday(end) - func.julianday(R.started_at)
    return func.timestampdiff(literal_column("MICROSECOND"), R.started_at, end)


def sort_key(key: s.RunSort, dialect: str, now: datetime) -> tuple[Any, bool]:
    """(expression, nullable) for a sort key."""
    columns: dict[s.RunSort, tuple[Any, bool]] = {
        s.RunSort.ID: (R.id, False),
        s.RunSort.NODE: (R.node_name, False),
        s.RunSort.OPERATOR: (R.operator_runtime_type, False),
        s.RunSort.ADAPTER: (R.adapter, False),
        s.RunSort.STATE: (R.state, False),
        s.RunSort.ATTEMPT: (R.attempt, False),
        s.RunSort.CREATED: (R.created_at, False),
        s.RunSort.STARTED: (R.started_at, True),
        s.RunSort.FINISHED: (R.finished_at, True),
        s.RunSort.PROGRESS: (R.progress, True),
    }
    if key == s.RunSort.DURATION:
        return duration(dialect, now), True
    return columns[key]


def ordering(key: s.RunSort, *, desc: bool, dialect: str, now: datetime | None = None) -> list[Any]:
    """ORDER BY terms: the key (NULLs last either way), then id newest first."""
    expr, nullable = sort_key(key, dialect, now or utcnow())
    terms: list[Any] = []
    if nullable:  # portable NULLS LAST (MySQL has no NULLS LAST)
        terms.append(case((expr.is_(None), 1), else_=0))
    if key != s.RunSort.ID:
        terms.append(expr.desc() if desc else expr.asc())
        terms.append(R.id.desc())
    else:
        terms.append(R.id.desc() if desc else R.id.asc())
    return terms


def filters(
    *,
    space_id: int | None = None,
    space_ids: Collection[int] | None = None,
    node: str | None = None,
    state: s.RunState | None = None,
    q: str | None = None,
) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a runs list (ANDed)."""
    conditions: list[ColumnElement[bool]] = []
    if space_id is not None:
        conditions.append(R.space_id == space_id)
    if space_ids is not None:
        conditions.append(R.space_id.in_(sorted(space_ids)))
    if node is not None:
        conditions.append(R.node_name == node)
    if state is not None:
        conditions.append(R.state == state.value)
    return conditions + text_filter(q)


def page_query(
    conditions: list[ColumnElement[bool]],
    *,
    sort: s.RunSort,
    desc: bool,
    dialect: str,
    limit: int,
    offset: int,
) -> Select[Any]:
    """The ids of one page, sorted: only ids are sorted, so the sort stays narrow whatever the row size."""
    return (
        select(R.id)
        .where(*conditions)
        .order_by(*ordering(sort, desc=desc, dialect=dialect))
        .limit(limit)
        .offset(offset)
    )


def list_runs(
    *,
    session: Session,
    space_id: int | None = None,
    space_ids: Collection[int] | None = None,
    node: str | None = None,
    state: s.RunState | None = None,
    q: str | None = None,
    sort: s.RunSort = s.RunSort.ID,
    desc: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[m.Runtime], int]:
    """One page of runs and how many match in all.

    Args:
        space_id: only runs of this space.
        space_ids: only runs of these spaces (the caller's; None: every run, with or without a space).
        node: only runs of the node with exactly this name.
        state: only runs in this state.
        q: the text filter (see the module docstring).
        sort: the sort key; ties are broken by id, newest first.
        desc: largest first (NULLs last either way).
    """
    conditions = filters(space_id=space_id, space_ids=space_ids, node=node, state=state, q=q)
    total = count(session=session, stmt=select(R.id).where(*conditions))
    if total == 0 or offset >= total:
        return [], total
    dialect = session.get_bind().dialect.name
    query = page_query(conditions, sort=sort, desc=desc, dialect=dialect, limit=limit, offset=offset)
    page_ids: list[int] = list(session.scalars(query).all())
    rows = session.scalars(select(R).where(R.id.in_(page_ids)).options(*(defer(c) for c in _HEAVY))).all()
    by_id = {r.id: r for r in rows}
    return [by_id[i] for i in page_ids if i in by_id], total
