"""The audit trail: who created, changed, started, stopped, approved or deleted what, and when.

`record` adds one row in the caller's transaction, so an action and its record land together
or not at all. Details are scrubbed of anything that looks like a secret before they are kept.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.orm import Session

from control.access import Principal
from control.store import models as m

#: keys whose values are never kept (passwords, tokens, keys), matched case-insensitively
SECRET_KEY = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)
MAX_DETAIL_CHARS = 2000


def scrub(value: Any) -> Any:
    """`value` with every secret-looking key's value replaced by "***", strings cut short."""
    if isinstance(value, dict):
        return {
            str(k): ("***" if SECRET_KEY.search(str(k)) and v not in (None, "") else scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value[:50]]
    if isinstance(value, str) and len(value) > MAX_DETAIL_CHARS:
        return value[:MAX_DETAIL_CHARS] + "…"
    return value


def record(
    session: Session,
    who: Principal | str,
    action: str,
    kind: str,
    name: str | int = "",
    *,
    space_id: int | None = None,
    **detail: Any,
) -> m.AuditEvent:
    """Add an audit event (`action`: create, change, delete, start, stop, approve, login, ...)."""
    event = m.AuditEvent(
        space_id=space_id,
        actor=who if isinstance(who, str) else who.name,
        action=action,
        kind=kind,
        name=str(name)[:255],
        detail=scrub(detail),
    )
    session.add(event)
    return event
