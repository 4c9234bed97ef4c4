"""Runs control recorded but never started (control stopped while starting them, or rows written by
another tool): the reconcile pass ends them legally and goes on; their spec view is a clear 404."""

from __future__ import annotations

import secrets
from datetime import timedelta

import httpx
from fastapi import FastAPI

from control.store import models as m
from control.store.models import utcnow


def orphan(app: FastAPI, *, state: str, age: timedelta) -> int:
    with app.state.orchestrator.store.transaction() as ses:
        run = m.Runtime(
            node_name="lost",
            operator_runtime_type="TRAIN",
            state=state,
            token_hash=secrets.token_hex(8),
            spec={},
            created_at=utcnow() - age,
        )
        ses.add(run)
        ses.flush()
        return run.id


async def test_old_runs_that_never_started_are_ended_and_the_pass_goes_on(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    queued = orphan(app, state="queued", age=timedelta(days=1))
    pending = orphan(app, state="pending", age=timedelta(days=1))
    fresh = orphan(app, state="queued", age=timedelta(seconds=0))
    await app.state.reconciler.reconcile_once()
    got = {r: (await api.get(f"/api/v1/runs/{r}")).json() for r in (queued, pending, fresh)}
    # queued -> failed is not a legal transition (seed 002): a run that never started is stopped
    assert got[queued]["state"] == "stopped" and "never dispatched" in got[queued]["reason"]
    assert got[pending]["state"] == "failed" and "never dispatched" in got[pending]["reason"]
    assert got[fresh]["state"] == "queued"


async def test_spec_of_a_run_recorded_without_one_is_a_404(app: FastAPI, api: httpx.AsyncClient) -> None:
    run_id = orphan(app, state="queued", age=timedelta(0))
    resp = await api.get(f"/api/v1/runs/{run_id}/spec")
    assert resp.status_code == 404
    assert resp.json()["msg"] == f"run {run_id} has no task spec to show (it was recorded without one)"
