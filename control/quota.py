"""Space quotas held with try-confirm-cancel (seed 004's resource manager).

Before a run is dispatched it *tries* a reservation of its service info's resources (CPU, GPU,
memory, totals over its nodes) against its space's quota; the check and the insert happen in one
transaction that holds the space row, so two controls dispatching at once cannot both take the
last GPU. The reservation is *confirmed* once the adapter has started the run and *cancelled*
when the run ends (any terminal state), is stopped, or goes back to waiting. All three calls are
idempotent: a try for a run that already holds its reservation is ok, and a confirm or cancel of
a reservation that does not exist is ok.

A run that does not fit waits `pending` with the reason `quota: space X uses 3 of 4 GPUs`; the
reconcile loop retries it, so it starts by itself once capacity frees. Reservations live in the
store, so they survive a control restart; `stale_tries` and `ended_holders` let the reconcile
loop settle what a crash left between the steps (see `control.reconcile`).

Fault injection: set `ATOM_TEST_CRASH_AT` to one of `CRASH_POINTS` and the control process
kills itself (SIGKILL) when it gets there; the restart tests use it to stop control exactly
between two steps.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from control import schemas as s
from control.schemas.resources import request_of
from control.store import models as m
from control.store.models import utcnow

TRYING, CONFIRMED, CANCELLED = "TRYING", "CONFIRMED", "CANCELLED"
HELD = (TRYING, CONFIRMED)

CRASH_ENV = "ATOM_TEST_CRASH_AT"
CRASH_POINTS = (
    "quota.after_try",  # the reservation is TRYING, the adapter has not been called
    "quota.after_start",  # the adapter started the run; neither its start nor the confirm is stored
    "quota.before_cancel",  # a run's end is being stored, its reservation not yet cancelled
)


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when `ATOM_TEST_CRASH_AT` names `name` (fault injection)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Amount:
    """CPUs, GPUs and memory (MiB) held or asked for."""

    cpu: float = 0.0
    gpu: int = 0
    memory: int = 0

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.cpu + other.cpu, self.gpu + other.gpu, self.memory + other.memory)


def amount_of(run: m.Runtime) -> Amount:
    """What `run` asks for: its service info's totals over all its nodes (none: 1 CPU)."""
    raw = (run.spec or {}).get("serviceInfo")
    try:
        si = s.ServiceInfoSpec.model_validate(raw) if raw else None
    except ValidationError:
        si = None
    req = request_of(si)
    return Amount(cpu=req.total_cpu, gpu=req.total_gpu, memory=req.total_memory_mib)


def mib_text(mib: float) -> str:
    """`512 MiB`, `16 GiB`, `1.5 GiB`."""
    if mib >= 1024:
        return f"{mib / 1024:.4g} GiB"
    return f"{mib:.4g} MiB"


def usage(session: Session, space_id: int, *, exclude: int | None = None) -> Amount:
    """What the space's held (TRYING and CONFIRMED) reservations add up to."""
    query = select(m.Reservation).where(m.Reservation.space_id == space_id, m.Reservation.state.in_(HELD))
    if exclude is not None:
        query = query.where(m.Reservation.runtime_id != exclude)
    total = Amount()
    for r in session.scalars(query.execution_options(populate_existing=True)):
        total = total + Amount(r.cpu, r.gpu, r.memory)
    return total


def lock_space(session: Session, space_id: int) -> m.Space | None:
    """The space row, held until the transaction ends (SELECT ... FOR UPDATE; on SQLite a no-op
    write takes the database's single write lock, and reads after it see every committed row).
    A space this transaction already holds is not locked and read again."""
    txn = session.get_transaction()
    held: tuple[object, set[int]] | None = session.info.get("locked_spaces")
    if txn is not None and held is not None and held[0] is txn and space_id in held[1]:
        return session.get(m.Space, space_id)
    if txn is not None and (held is None or held[0] is not txn):
        held = (txn, set())
        session.info["locked_spaces"] = held
    if held is not None:
        held[1].add(space_id)
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(m.Space)
            .where(m.Space.id == space_id)
            .values(quota_gpu=m.Space.quota_gpu, update_time=m.Space.update_time)
        )
        query = select(m.Space).where(m.Space.id == space_id)
    else:
        query = select(m.Space).where(m.Space.id == space_id).with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def _units(noun: str, count: float) -> str:
    return noun if noun == "memory" or count == 1 else f"{noun}s"


def _number(value: float) -> str:
    return f"{value:g}"


def blocked_by(space: m.Space, used: Amount, want: Amount) -> str:
    """Why `want` does not fit beside `used` under the space's quota ("" when it fits); names the
    first resource that blocks: GPU, then CPU, then memory."""
    name = space.space_name
    checks: tuple[tuple[float | None, float, float, Callable[[float], str], str], ...] = (
        (space.quota_gpu, used.gpu, want.gpu, _number, "GPU"),
        (space.quota_cpu, used.cpu, want.cpu, _number, "CPU"),
        (space.quota_memory, used.memory, want.memory, mib_text, "memory"),
    )
    for limit, have, asked, show, noun in checks:
        if limit is None or not asked or have + asked <= limit + 1e-9:
            continue
        if asked > limit + 1e-9:
            return (
                f"quota: the run needs {show(asked)} {_units(noun, asked)}, "
                f"more than space {name}'s quota of {show(limit)}"
            )
        return f"quota: space {name} uses {show(have)} of {show(limit)} {_units(noun, limit)}"
    return ""


def reservation_of(session: Session, run_id: int) -> m.Reservation | None:
    query = select(m.Reservation).where(m.Reservation.runtime_id == run_id)
    return session.scalar(query.execution_options(populate_existing=True))


def limited(space: m.Space) -> bool:
    """The space has a quota on at least one resource (a limit set later counts the runs already
    holding reservations, but does not stop a try that read the space before it was set)."""
    return (space.quota_cpu, space.quota_gpu, space.quota_memory) != (None, None, None)


def try_reserve(session: Session, run: m.Runtime) -> str:
    """Reserve `run`'s resources in its space (TRYING), if they fit beside what is held.

    Idempotent: a run that already holds its reservation keeps it. A run without a space, or one
    that already ended, reserves nothing.

    Returns:
        "" when the run holds its reservation, else why it must wait (`quota: space X uses 3 of 4 GPUs`).
    """
    if run.space_id is None:
        return ""
    space = session.get(m.Space, run.space_id)
    if space is not None and limited(space):  # else there is nothing to race for: no lock
        space = lock_space(session, run.space_id)
    session.flush()  # the run's changes in this transaction (its bound spec) are kept:
    session.refresh(run, ["state"])  # only whether it ended meanwhile is read again
    if space is None or s.RunState(run.state).is_terminal():
        return ""
    held = reservation_of(session, run.id)
    if held is not None and held.state in HELD:
        return ""
    want = amount_of(run)
    why = blocked_by(space, usage(session, space.id, exclude=run.id), want) if limited(space) else ""
    if why:
        return why
    if held is None:
        session.add(
            m.Reservation(
                runtime_id=run.id,
                space_id=space.id,
                cpu=want.cpu,
                gpu=want.gpu,
                memory=want.memory,
                state=TRYING,
            )
        )
    else:  # released earlier (it went back to waiting): take it again
        held.space_id, held.cpu, held.gpu, held.memory = space.id, want.cpu, want.gpu, want.memory
        held.state = TRYING
        held.updated_at = utcnow()
    session.flush()
    return ""


def confirm(session: Session, run_id: int) -> None:
    """The run started: its TRYING reservation becomes CONFIRMED (a missing one is ok)."""
    _move(session, run_id, m.Reservation.state == TRYING, CONFIRMED)


def cancel(session: Session, run_id: int) -> None:
    """Release the run's reservation (it ended, was stopped, or waits again); a missing one is ok."""
    _move(session, run_id, m.Reservation.state != CANCELLED, CANCELLED)


def _move(session: Session, run_id: int, when: ColumnElement[bool], state: str) -> None:
    """One UPDATE of the run's reservation where `when` holds (no read first)."""
    session.execute(
        update(m.Reservation)
        .where(m.Reservation.runtime_id == run_id, when)
        .values(state=state, updated_at=utcnow())
    )


def ended_holders(session: Session) -> int:
    """Cancel every held reservation whose run has ended (a crash between its end and the
    cancel, or a run ended by another tool); returns how many."""
    ended = [st.value for st in s.RunState if st.is_terminal()]
    rows = session.scalars(
        select(m.Reservation)
        .join(m.Runtime, m.Runtime.id == m.Reservation.runtime_id)
        .where(m.Reservation.state.in_(HELD), m.Runtime.state.in_(ended))
    ).all()
    for held in rows:
        held.state = CANCELLED
        held.updated_at = utcnow()
    session.flush()
    return len(rows)


def stale_tries(session: Session, *, older_than: float, busy: set[int]) -> tuple[list[int], list[int]]:
    """Settle TRYING reservations older than `older_than` seconds whose dispatch is not under way.

    A run whose start was recorded, or whose agent has called (it reported running, or sent a
    heartbeat), did start: its reservation is confirmed. One that shows neither never reached its
    adapter (control stopped between the try and the start): its reservation is released and the
    run waits for its dispatch again, which the reconcile loop retries (taking the quota again).

    Args:
        busy: runs being dispatched by this process right now (left alone).

    Returns:
        (confirmed run ids, released run ids).
    """
    now = utcnow()
    confirmed: list[int] = []
    released: list[int] = []
    for held in session.scalars(select(m.Reservation).where(m.Reservation.state == TRYING)).all():
        if held.runtime_id in busy or (now - held.updated_at).total_seconds() < older_than:
            continue
        run = session.get(m.Runtime, held.runtime_id)
        sched = session.scalar(
            select(m.Schedule).where(m.Schedule.runtime_id == held.runtime_id).order_by(m.Schedule.id.desc())
        )
        if run is None or s.RunState(run.state).is_terminal():
            continue  # `ended_holders` cancels it
        started = (sched is not None and sched.external_id) or run.heartbeat_at is not None
        if started or run.state == s.RunState.RUNNING.value:
            held.state = CONFIRMED
            confirmed.append(run.id)
        else:
            held.state = CANCELLED
            reason = "quota: released after control stopped before dispatching it; dispatching again"
            if sched is not None:
                sched.info = {**(sched.info or {}), "waiting": reason}
                sched.last_sync_at = now
            if run.state == s.RunState.QUEUED.value:
                run.state = s.RunState.PENDING.value  # queued -> pending: legal (control.states)
                session.add(
                    m.RunTransition(
                        runtime_id=run.id,
                        from_state=s.RunState.QUEUED.value,
                        to_state=s.RunState.PENDING.value,
                        reason=reason,
                    )
                )
            run.reason = reason
            released.append(run.id)
        held.updated_at = now
    session.flush()
    return confirmed, released


def settle(session: Session, *, tries: bool, older_than: float, busy: set[int]) -> str:
    """One reconcile pass over reservations: `ended_holders`, then (when `tries`) `stale_tries`.

    Returns:
        what changed, for the log ("" when nothing did).
    """
    ended = ended_holders(session)
    confirmed, released = stale_tries(session, older_than=older_than, busy=busy) if tries else ([], [])
    if not (ended or confirmed or released):
        return ""
    return f"{ended} ended run(s) released; run(s) {confirmed} confirmed; run(s) {released} dispatched again"
