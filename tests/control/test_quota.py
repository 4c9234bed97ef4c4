"""Space quotas with try-confirm-cancel, over the real store (SQLite and MariaDB).

A run reserves its service info's resources before dispatch, confirms when started, releases when
it ends; a run over quota waits `pending` with the reason naming what blocks, and starts by itself
once another run's end frees the quota. Two dispatches racing for the last GPU cannot both get it.
"""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from control import quota, users
from control import schemas as s
from control.access import Role
from control.dispatch.base import Adapter, Admission, Observed, RunDescription
from control.store import models as m
from control.store.engine import Store
from control.store.models import utcnow
from tests.control.factory import LAMP, SP, define_node, ok


def store_of(app: FastAPI) -> Store:
    store: Store = app.state.orchestrator.store
    return store


def new_space(store: Store, name: str, **limits: Any) -> int:
    with store.transaction() as ses:
        space = m.Space(space_name=name, **{f"quota_{k}": v for k, v in limits.items()})
        ses.add(space)
        ses.flush()
        return space.id


def new_run(
    store: Store, space_id: int, *, gpu: int = 0, cpu: int = 1, memory: int = 0, nodes: int = 1
) -> int:
    si = {"siName": "si", "siCpu": cpu, "siGpu": gpu, "siMemory": memory, "siNodeNum": nodes}
    with store.transaction() as ses:
        run = m.Runtime(
            space_id=space_id,
            node_name="quota-run",
            operator_runtime_type="TRAIN",
            state=s.RunState.QUEUED.value,
            token_hash=secrets.token_hex(8),
            spec={"serviceInfo": si},
        )
        ses.add(run)
        ses.flush()
        ses.add(m.Schedule(runtime_id=run.id, adapter="local"))
        return run.id


def try_run(store: Store, run_id: int) -> str:
    with store.transaction() as ses:
        run = ses.get(m.Runtime, run_id)
        assert run is not None
        return quota.try_reserve(ses, run)


def state_of(store: Store, run_id: int) -> str | None:
    with store.transaction() as ses:
        held = quota.reservation_of(ses, run_id)
        return held.state if held else None


def used(store: Store, space_id: int) -> quota.Amount:
    with store.transaction() as ses:
        return quota.usage(ses, space_id)


async def test_try_confirm_cancel_are_idempotent(app: FastAPI) -> None:
    store = store_of(app)
    space = new_space(store, "team-a", gpu=4)
    run = new_run(store, space, gpu=2, cpu=2, memory=512, nodes=1)
    assert try_run(store, run) == "" and try_run(store, run) == ""  # a second try is ok
    assert state_of(store, run) == quota.TRYING
    assert used(store, space) == quota.Amount(cpu=2, gpu=2, memory=512)
    for _ in range(2):
        with store.transaction() as ses:
            quota.confirm(ses, run)
    assert state_of(store, run) == quota.CONFIRMED
    assert try_run(store, run) == "" and state_of(store, run) == quota.CONFIRMED  # a try keeps it
    for _ in range(2):
        with store.transaction() as ses:
            quota.cancel(ses, run)
    assert state_of(store, run) == quota.CANCELLED and used(store, space) == quota.Amount()
    with store.transaction() as ses:  # confirm or cancel of a reservation that does not exist: ok
        quota.confirm(ses, 999_999)
        quota.cancel(ses, 999_999)
        assert ses.scalar(select(m.Reservation).where(m.Reservation.runtime_id == 999_999)) is None
        quota.confirm(ses, run)  # a cancelled reservation is not confirmed again
    assert state_of(store, run) == quota.CANCELLED


CASES: list[tuple[dict[str, int], dict[str, int], dict[str, int], str]] = [
    ({"gpu": 4}, {"gpu": 3}, {"gpu": 2}, "quota: space {} uses 3 of 4 GPUs"),
    ({"gpu": 1}, {"gpu": 1}, {"gpu": 1}, "quota: space {} uses 1 of 1 GPU"),
    ({"cpu": 8}, {"cpu": 3, "nodes": 2}, {"cpu": 4}, "quota: space {} uses 6 of 8 CPUs"),
    ({"memory": 16384}, {"memory": 12288}, {"memory": 8192}, "quota: space {} uses 12 GiB of 16 GiB memory"),
    ({"memory": 1024}, {"memory": 512}, {"memory": 768}, "quota: space {} uses 512 MiB of 1 GiB memory"),
    ({"gpu": 1}, {"gpu": 0}, {"gpu": 2}, "quota: the run needs 2 GPUs, more than space {}'s quota of 1"),
    ({"gpu": 4, "cpu": 2}, {"gpu": 1, "cpu": 2}, {"gpu": 1}, "quota: space {} uses 2 of 2 CPUs"),
]


async def test_a_run_over_quota_gets_the_reason_and_no_reservation(app: FastAPI) -> None:
    store = store_of(app)
    for i, (limits, first, second, reason) in enumerate(CASES):
        space = new_space(store, f"team-{i}", **limits)
        assert try_run(store, new_run(store, space, **first)) == ""
        late = new_run(store, space, **second)
        assert try_run(store, late) == reason.format(f"team-{i}")
        assert state_of(store, late) is None


async def test_tries_in_one_transaction_lock_the_space_once_and_still_count_each_other(app: FastAPI) -> None:
    store = store_of(app)  # the exam engine prepares every run it claimed in one transaction
    space = new_space(store, "team-batch", gpu=2)
    runs = [new_run(store, space, gpu=1) for _ in range(3)]
    with store.transaction() as ses:
        got = [quota.try_reserve(ses, ses.get_one(m.Runtime, r)) for r in runs]
    assert got == ["", "", "quota: space team-batch uses 2 of 2 GPUs"]
    assert used(store, space) == quota.Amount(cpu=2, gpu=2)


async def test_no_quota_means_no_limit_and_usage_is_still_counted(app: FastAPI) -> None:
    store = store_of(app)
    space = new_space(store, "open")
    runs = [new_run(store, space, gpu=8, cpu=64) for _ in range(3)]
    assert [try_run(store, r) for r in runs] == ["", "", ""]
    assert used(store, space) == quota.Amount(cpu=192, gpu=24)


async def test_ended_runs_and_stale_tries_are_settled(app: FastAPI) -> None:
    store = store_of(app)
    space = new_space(store, "team-c", gpu=2)
    ended, never_started, started = (new_run(store, space, gpu=0) for _ in range(3))
    for run in (ended, never_started, started):
        assert try_run(store, run) == ""
    with store.transaction() as ses:  # ended without its reservation cancelled (another tool, a crash)
        ses.execute(update(m.Runtime).where(m.Runtime.id == ended).values(state="failed"))
        ses.execute(update(m.Runtime).where(m.Runtime.id == started).values(heartbeat_at=utcnow()))
        ses.execute(update(m.Reservation).values(updated_at=utcnow() - timedelta(minutes=5)))
    with store.transaction() as ses:
        assert quota.ended_holders(ses) == 1
        assert quota.stale_tries(ses, older_than=60, busy=set()) == ([started], [never_started])
    assert state_of(store, ended) == quota.CANCELLED
    assert state_of(store, started) == quota.CONFIRMED
    assert state_of(store, never_started) == quota.CANCELLED
    with store.transaction() as ses:  # the released run waits to be dispatched again
        row = ses.get(m.Runtime, never_started)
        sched = ses.scalar(select(m.Schedule).where(m.Schedule.runtime_id == never_started))
        assert row is not None and sched is not None
        assert row.state == "pending" and row.reason.startswith("quota: released")
        assert (sched.info or {}).get("waiting")
    assert try_run(store, never_started) == "" and state_of(store, never_started) == quota.TRYING


def test_two_racing_tries_cannot_both_take_the_last_gpu(db_url: str) -> None:
    store = Store(db_url)
    try:
        space = new_space(store, "race", gpu=3)
        assert try_run(store, new_run(store, space, gpu=2)) == ""
        for _ in range(3):  # a few rounds: the losers of one round are released before the next
            racers = [new_run(store, space, gpu=1) for _ in range(4)]
            gate = threading.Barrier(len(racers))
            answers: dict[int, str] = {}

            def race(run_id: int, gate: threading.Barrier, answers: dict[int, str]) -> None:
                gate.wait()
                answers[run_id] = try_run(store, run_id)

            threads = [threading.Thread(target=race, args=(r, gate, answers)) for r in racers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            winners = [r for r in racers if answers[r] == ""]
            assert len(winners) == 1, answers
            assert {answers[r] for r in racers if r not in winners} == {"quota: space race uses 3 of 3 GPUs"}
            assert used(store, space).gpu == 3
            with store.transaction() as ses:
                quota.cancel(ses, winners[0])
    finally:
        store.dispose()


class CountingAdapter(Adapter):
    """Starts nothing; every run it starts stays alive until the test ends it through the API."""

    name = "local"

    async def _start(self, desc: RunDescription, admission: Admission) -> str:
        return f"fake:{desc.ident}"

    async def _stop(self, external_id: str, *, grace: float) -> None:
        return None

    async def _describe(self, external_id: str) -> Observed:
        return Observed(alive=True)


async def test_a_waiting_run_starts_by_itself_when_another_ends(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    app.state.orchestrator.adapters["local"] = CountingAdapter()
    reconciler = app.state.reconciler
    await define_node(api, data_dir=str(tmp_path), node="first")
    await define_node(api, data_dir=str(tmp_path), node="second")
    await ok(await api.put(f"{SP}/service-infos/small", json={"siName": "small", "siCpu": 1, "siMemory": 0}))
    await ok(await api.put(f"{SP}/quota", json={"cpu": 1}))

    async def start(node: str) -> int:
        n = await ok(await api.get(f"{SP}/nodes/{node}"))
        (run_id,) = (await ok(await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": n["id"]})))[
            "runIds"
        ]
        return int(run_id)

    first = await start("first")
    second = await start("second")
    run = await ok(await api.get(f"/api/v1/runs/{second}"))
    assert (run["state"], run["reason"]) == ("pending", "quota: space default uses 1 of 1 CPU")
    got = await ok(await api.get(f"{SP}/quota"))
    assert got["limits"] == {"cpu": 1.0, "gpu": None, "memory": None}
    assert got["used"] == {"cpu": 1.0, "gpu": 0, "memory": 0} and got["waiting"] == 1
    assert [(r["runId"], r["state"]) for r in got["reservations"]] == [(first, "CONFIRMED")]

    await reconciler.reconcile_once()  # still full: it goes on waiting
    run = await ok(await api.get(f"/api/v1/runs/{second}"))
    assert (run["state"], run["reason"]) == ("pending", "quota: space default uses 1 of 1 CPU")

    await ok(await api.post(f"/api/v1/runs/{first}/stop", json={"reason": "make room"}))
    await reconciler.reconcile_once()
    run = await ok(await api.get(f"/api/v1/runs/{second}"))
    assert run["state"] == "pending" and run["reason"].startswith("started by local adapter"), run["reason"]
    got = await ok(await api.get(f"{SP}/quota"))
    assert [(r["runId"], r["state"]) for r in got["reservations"]] == [(second, "CONFIRMED")]
    await ok(await api.post(f"/api/v1/runs/{second}/stop", json={"reason": "done"}))
    got = await ok(await api.get(f"{SP}/quota"))
    assert got["used"] == {"cpu": 0.0, "gpu": 0, "memory": 0} and got["reservations"] == []


async def test_setting_a_quota_is_for_site_admins_and_is_audited(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    got = await ok(await api.put(f"{SP}/quota", json={"gpu": 4, "cpu": 8, "memory": 16384}))
    assert got["limits"] == {"cpu": 8.0, "gpu": 4, "memory": 16384}
    got = await ok(await api.put(f"{SP}/quota", json={"gpu": None, "cpu": 8, "memory": None}))
    assert got["limits"] == {"cpu": 8.0, "gpu": None, "memory": None}
    assert (await api.put(f"{SP}/quota", json={"gpu": -1})).status_code == 422
    assert (await api.get("/api/v1/spaces/nowhere/quota")).status_code == 404
    with store_of(app).transaction() as ses:
        events = ses.scalars(select(m.AuditEvent).where(m.AuditEvent.kind == "quota")).all()
        assert [(e.action, e.name, e.actor) for e in events] == [("change", "default", "local-admin")] * 2


async def test_members_read_the_quota_only_site_admins_set_it(app: FastAPI, api: httpx.AsyncClient) -> None:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    await ok(await api.put(f"{SP}/quota", json={"gpu": 2}))
    with store_of(app).transaction() as ses:
        space = ses.scalar(select(m.Space).where(m.Space.space_name == "default"))
        assert space is not None
        made = {n: users.create_user(ses, n, "pw-" + n) for n in ("alice", "bob")}
        users.set_member(ses, space, made["alice"], Role.OWNER)
        token = {n: users.issue_token(ses, u, "cli", expires_at=None).secret for n, u in made.items()}

    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token[name]}"}

    got = await ok(await api.get(f"{SP}/quota", headers=auth("alice")))
    assert got["limits"]["gpu"] == 2
    refused = await api.put(f"{SP}/quota", json={"gpu": 9}, headers=auth("alice"))
    assert refused.status_code == 403 and "only a site admin" in refused.json()["msg"]
    for method in ("GET", "PUT"):  # bob is no member: the space is as missing as one that is not there
        resp = await api.request(method, f"{SP}/quota", json={"gpu": 9}, headers=auth("bob"))
        missing = await api.request(
            method, "/api/v1/spaces/nowhere/quota", json={"gpu": 9}, headers=auth("bob")
        )
        assert resp.status_code == missing.status_code == 404
        assert resp.json()["msg"].replace("default", "X") == missing.json()["msg"].replace("nowhere", "X")
    assert (await api.get(f"{SP}/quota")).status_code == 401  # users exist: a token is needed
