"""Exam schedules against the real store (SQLite and MariaDB) with an injected clock and a recording
adapter: bad input refused, each logical date fired once across control restarts, a bounded catch-up,
the skip / queue / replace policies, backfills, the logical date reaching the run, and tenancy."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from control import users
from control.access import Role, Scope
from control.api.app import create_app
from control.settings import Settings
from control.store import models as m
from tests.control.factory import SP, RecordingAdapter, define_node, ok

AG = "/api/v1/agent/runs"
V1 = "/api/v1"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def control(app: FastAPI, clock: Clock) -> RecordingAdapter:
    """Give `app` a recording adapter and the test's clock."""
    fake = RecordingAdapter()
    app.state.orchestrator.adapters["local"] = fake
    app.state.reconciler.clock = clock
    return fake


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2031, 1, 1))


@pytest.fixture
def adapter(app: FastAPI, clock: Clock) -> RecordingAdapter:
    return control(app, clock)


async def one_node_exam(api: httpx.AsyncClient, tmp_path: Path, name: str = "nightly") -> int:
    await define_node(api, data_dir=str(tmp_path), node="solo", finish=False, deploy="NOT_DEPLOY")
    await ok(await api.put(f"{SP}/experiments/scene", json={"experimentName": "scene"}))
    experiment = await ok(await api.get(f"{SP}/experiments/scene"))
    exam = await ok(
        await api.put(f"{SP}/exams/{name}", json={"examName": name, "experimentId": experiment["id"]})
    )
    await ok(await api.patch(f"{SP}/nodes/solo", json={"examId": exam["id"], "nodeStatus": "EDIT_FINISH"}))
    return int(exam["id"])


def exam_runs(app: FastAPI) -> list[dict[str, Any]]:
    with app.state.orchestrator.store.transaction() as ses:
        rows = ses.scalars(select(m.ExamRun).order_by(m.ExamRun.logical_date, m.ExamRun.id))
        return [
            {"id": r.id, "at": r.logical_date, "state": r.state, "trigger": r.trigger, "reason": r.reason}
            for r in rows
        ]


def runs_of(app: FastAPI, exam_run_id: int) -> list[m.Runtime]:
    with app.state.orchestrator.store.transaction() as ses:
        rows = list(ses.scalars(select(m.Runtime).where(m.Runtime.exam_run_id == exam_run_id)))
        ses.expunge_all()
        return rows


async def finish(api: httpx.AsyncClient, app: FastAPI, adapter: RecordingAdapter, exam_run_id: int) -> None:
    """The exam run's agents report running, then succeeded (to `api`'s control, `app`), and that
    control is done with what the reports set off (moving exam runs on)."""
    for run in runs_of(app, exam_run_id):
        token = adapter.launches[run.id].env["ATOM_RUN_TOKEN"]
        for state in ("running", "succeeded"):
            h = {"Authorization": f"Bearer {token}"}
            await ok(await api.post(f"{AG}/{run.id}/state", json={"state": state}, headers=h))
    await asyncio.gather(*list(app.state.orchestrator._background))


async def tick(app: FastAPI) -> None:
    await app.state.reconciler.reconcile_once()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def put_schedule(api: httpx.AsyncClient, exam: int, **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = await ok(await api.put(f"{V1}/exams/{exam}/schedule", json=body))
    return result


async def test_bad_schedules_are_refused_naming_the_field(
    api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path: Path
) -> None:
    exam = await one_node_exam(api, tmp_path)
    url = f"{V1}/exams/{exam}/schedule"
    for body, field, words in (
        ({"cron": "61 * * * *"}, "cron", "out of range"),
        ({"cron": "0 3 * *"}, "cron", "five fields"),
        ({"cron": "0 0 30 2 *"}, "cron", "never fires"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"cron": "0 3 * * *", "start": "2031-02-01", "end": "2031-01-01"}, "end", "before the start"),
        ({"cron": "0 3 * * *", "concurrency": "sometimes"}, "concurrency", ""),
        ({"cron": "0 3 * * *", "every": "day"}, "every", "unknown field"),
    ):
        resp = await api.put(url, json=body)
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["field"] == field and words in resp.json()["msg"], resp.text
    assert (await api.get(url)).status_code == 404
    assert await ok(await api.get(f"{V1}/schedules")) == []
    assert (await api.put(f"{V1}/exams/987654/schedule", json={"cron": "0 3 * * *"})).status_code == 404


async def test_each_logical_date_fires_once_across_restarts_and_catch_up_is_bounded(
    app: FastAPI,
    api: httpx.AsyncClient,
    adapter: RecordingAdapter,
    settings: Settings,
    clock: Clock,
    tmp_path: Path,
) -> None:
    exam = await one_node_exam(api, tmp_path)
    made = await put_schedule(api, exam, cron="0 3 * * *", concurrency="queue")
    assert (made["nextFireAt"], made["timezone"], made["enabled"]) == ("2031-01-01T03:00:00", "UTC", True)

    clock.at = at("2031-01-01T02:59:59")
    await tick(app)
    assert exam_runs(app) == []
    clock.at = at("2031-01-01T03:00:00")
    await tick(app)
    await tick(app)
    [first] = exam_runs(app)
    assert (first["at"], first["state"], first["trigger"]) == (at("2031-01-01T03:00"), "running", "schedule")
    [run] = runs_of(app, first["id"])
    launch = adapter.launches[run.id]  # the logical date reaches the agent three ways
    assert launch.env["ATOM_LOGICAL_DATE"] == "2031-01-01T03:00:00"
    assert run.spec["logicalDate"] == "2031-01-01T03:00:00"
    assert run.run_parameter == {"logicalDate": "2031-01-01T03:00:00"}

    # a control restart at the same moment fires nothing again
    second_app = create_app(settings, reconcile=False)
    second = control(second_app, clock)
    async with second_app.router.lifespan_context(second_app):
        await tick(second_app)
        assert len(exam_runs(second_app)) == 1 and second.launches == {}
        await finish(api, app, adapter, first["id"])

        # down for five days: with a catch-up limit of 2, the two newest dates run (queued one after
        # the other), the three older ones are noted as not run
        second_app.state.orchestrator.settings.schedule_catchup_max = 2
        clock.at = at("2031-01-06T03:30:00")
        await tick(second_app)
        got = exam_runs(second_app)
        assert [(r["at"].day, r["state"]) for r in got] == [(1, "succeeded"), (5, "running"), (6, "queued")]
        view = await ok(await api.get(f"{V1}/exams/{exam}/schedule"))
        assert view["nextFireAt"] == "2031-01-07T03:00:00" and view["lastFireAt"] == "2031-01-06T03:00:00"
        assert "3 missed fire time(s) beyond the catch-up limit of 2" in view["lastSkip"]
        assert view["lastSkip"].startswith("2031-01-02T03:00:00..2031-01-04T03:00:00")
        assert view["queued"] == 1 and view["lastRunState"] == "running"
        fifth = got[1]["id"]
        await tick(second_app)  # the queued one waits while the fifth's run goes
        assert exam_runs(second_app)[2]["state"] == "queued"
        await finish(api, app, second, fifth)
        await tick(second_app)
        sixth = exam_runs(second_app)[2]
        assert (sixth["at"].day, sixth["state"], sixth["trigger"]) == (6, "running", "schedule")
        await finish(api, app, second, sixth["id"])

    # a third control that missed the 7th's tick fires both the 7th and the 8th: nothing skipped
    third_app = create_app(settings, reconcile=False)
    third = control(third_app, clock)
    async with third_app.router.lifespan_context(third_app):
        clock.at = at("2031-01-08T03:00:00")
        await tick(third_app)
        days = [(r["at"].day, r["state"]) for r in exam_runs(third_app)]
        assert days == [(1, "succeeded"), (5, "succeeded"), (6, "succeeded"), (7, "running"), (8, "queued")]
        assert len(third.launches) == 1
    counts = [r["at"] for r in exam_runs(app)]
    assert len(counts) == len(set(counts)) == 5


async def test_policy_skip_notes_the_skipped_fire(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, clock: Clock, tmp_path: Path
) -> None:
    exam = await one_node_exam(api, tmp_path)
    clock.at = at("2031-01-01T00:30:00")
    await put_schedule(api, exam, cron="0 * * * *", concurrency="skip")
    clock.at = at("2031-01-01T01:00:00")
    await tick(app)
    clock.at = at("2031-01-01T02:00:00")
    await tick(app)
    assert [(r["at"].hour, r["state"]) for r in exam_runs(app)] == [(1, "running")]
    view = await ok(await api.get(f"{V1}/exams/{exam}/schedule"))
    assert view["lastSkip"] == "2031-01-01T02:00:00: the previous exam run still runs (policy skip)"
    assert view["nextFireAt"] == "2031-01-01T03:00:00"
    await finish(api, app, adapter, exam_runs(app)[0]["id"])
    clock.at = at("2031-01-01T03:00:00")
    await tick(app)
    assert [(r["at"].hour, r["state"]) for r in exam_runs(app)] == [(1, "succeeded"), (3, "running")]


async def test_policy_replace_stops_the_previous_run(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, clock: Clock, tmp_path: Path
) -> None:
    exam = await one_node_exam(api, tmp_path)
    clock.at = at("2031-01-01T00:30:00")
    await put_schedule(api, exam, cron="0 * * * *", concurrency="replace")
    clock.at = at("2031-01-01T01:00:00")
    await tick(app)
    [old_run] = runs_of(app, exam_runs(app)[0]["id"])
    clock.at = at("2031-01-01T02:00:00")
    await tick(app)
    await asyncio.gather(*list(app.state.orchestrator._background))  # the target's stop
    old, new = exam_runs(app)
    assert (old["state"], old["reason"]) == ("stopped", "replaced by the run of 2031-01-01T02:00:00")
    assert new["state"] == "running" and new["at"] == at("2031-01-01T02:00:00")
    assert runs_of(app, old["id"])[0].state == "stopped" and adapter.stopped == [f"fake:{old_run.id}"]
    assert runs_of(app, new["id"])[0].id in adapter.launches


async def test_backfill_creates_the_missing_dates_once_and_runs_them_in_order(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, clock: Clock, tmp_path: Path
) -> None:
    exam = await one_node_exam(api, tmp_path)
    url = f"{V1}/exams/{exam}/backfill"
    assert (
        await api.post(url, json={"from": "2031-01-01", "to": "2031-01-03"})
    ).status_code == 404  # no schedule
    clock.at = at("2031-01-10T12:00:00")
    await put_schedule(api, exam, cron="0 3 * * *", timezone="Europe/Berlin", start="2032-01-01")
    made = await ok(await api.post(url, json={"from": "2031-01-01", "to": "2031-01-03"}), 201)
    assert [(c["logicalDate"], c["state"], c["trigger"]) for c in made["created"]] == [
        ("2031-01-01T02:00:00", "running", "backfill"),  # 03:00 in Berlin
        ("2031-01-02T02:00:00", "queued", "backfill"),
        ("2031-01-03T02:00:00", "queued", "backfill"),
    ]
    assert made["existing"] == 0 and len(adapter.launches) == 1
    [run] = runs_of(app, made["created"][0]["id"])
    assert adapter.launches[run.id].env["ATOM_LOGICAL_DATE"] == "2031-01-01T02:00:00"

    again = await ok(await api.post(url, json={"from": "2031-01-01", "to": "2031-01-03"}), 201)
    assert again == {"created": [], "existing": 3}
    wider = await ok(await api.post(url, json={"from": "2031-01-03", "to": "2031-01-04T03:00:00"}), 201)
    assert [c["logicalDate"] for c in wider["created"]] == ["2031-01-04T02:00:00"] and wider["existing"] == 1

    for day in (1, 2, 3, 4):
        current = next(r for r in exam_runs(app) if r["at"].day == day)
        assert current["state"] == "running", exam_runs(app)
        await finish(api, app, adapter, current["id"])
        await tick(app)
    assert [r["state"] for r in exam_runs(app)] == ["succeeded"] * 4

    for body, field in (
        ({"from": "2031-01-03", "to": "2031-01-01"}, "to"),
        ({"from": "2031-01-01"}, "to"),
        ({"from": "yesterday", "to": "2031-01-01"}, "from"),
    ):
        resp = await api.post(url, json=body)
        assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == field, resp.text
    await put_schedule(api, exam, cron="* * * * *")
    resp = await api.post(url, json={"from": "2031-01-01", "to": "2031-01-02"})
    assert resp.status_code == 422 and "more than 1000" in resp.json()["msg"]
    assert len(exam_runs(app)) == 4  # nothing stored by a refused backfill


async def test_schedules_change_disable_delete_and_list(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, clock: Clock, tmp_path: Path
) -> None:
    exam = await one_node_exam(api, tmp_path)
    clock.at = at("2031-06-01T12:00:00")
    made = await put_schedule(api, exam, cron="30 2 * * *", timezone="Europe/Berlin", end="2031-06-03")
    assert made["nextFireAt"] == "2031-06-02T00:30:00" and made["endAt"] == "2031-06-03T21:59:59.999999"
    off = await put_schedule(api, exam, cron="30 2 * * *", timezone="Europe/Berlin", enabled=False)
    assert off["nextFireAt"] is None
    clock.at = at("2031-06-05T00:00:00")
    await tick(app)
    assert exam_runs(app) == []
    on = await put_schedule(api, exam, cron="30 2 * * *", timezone="Europe/Berlin")
    assert (
        on["nextFireAt"] == "2031-06-05T00:30:00"
    )  # the missed 2nd to 4th are not fired: backfill runs those
    listed = await ok(await api.get(f"{V1}/schedules"))
    assert [(s["examName"], s["space"], s["cron"], s["concurrency"]) for s in listed] == [
        ("nightly", "default", "30 2 * * *", "skip")
    ]
    assert await ok(await api.get(f"{V1}/schedules", params={"space": "default"})) == listed
    await ok(await api.delete(f"{V1}/exams/{exam}/schedule"), 204)
    assert await ok(await api.get(f"{V1}/schedules")) == []
    clock.at = at("2031-06-07T00:00:00")
    await tick(app)
    assert exam_runs(app) == []


async def test_tenancy(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path: Path
) -> None:
    exam = await one_node_exam(api, tmp_path)
    await put_schedule(api, exam, cron="0 3 * * *")
    tokens: dict[str, str] = {}
    with app.state.orchestrator.store.transaction() as ses:
        space = ses.scalar(select(m.Space).where(m.Space.space_name == "default"))
        assert space is not None
        for name in ("alice", "mallory", "root"):
            user = users.create_user(ses, name, admin=name == "root")
            tokens[name] = users.issue_token(ses, user, "cli", expires_at=None).secret
            if name == "alice":
                users.set_member(ses, space, user, Role.MEMBER)
                tokens["alice-read"] = users.issue_token(
                    ses, user, "ro", scope=Scope.READ, expires_at=None
                ).secret

    def h(who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {tokens[who]}"}

    url = f"{V1}/exams/{exam}/schedule"
    hidden, missing = (
        await api.get(url, headers=h("mallory")),
        await api.get(f"{V1}/exams/987654/schedule", headers=h("mallory")),
    )
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["msg"] == missing.json()["msg"].replace("987654", str(exam))
    assert (await api.put(url, json={"cron": "0 4 * * *"}, headers=h("mallory"))).status_code == 404
    assert (
        await api.post(
            f"{V1}/exams/{exam}/backfill",
            json={"from": "2031-01-01", "to": "2031-01-01"},
            headers=h("mallory"),
        )
    ).status_code == 404
    assert await ok(await api.get(f"{V1}/schedules", headers=h("mallory"))) == []
    assert (
        await api.get(f"{V1}/schedules", params={"space": "default"}, headers=h("mallory"))
    ).status_code == 404

    assert (await ok(await api.get(url, headers=h("alice-read"))))["cron"] == "0 3 * * *"
    assert len(await ok(await api.get(f"{V1}/schedules", headers=h("alice-read")))) == 1
    for resp in (
        await api.put(url, json={"cron": "0 4 * * *"}, headers=h("alice-read")),
        await api.delete(url, headers=h("alice-read")),
    ):
        assert resp.status_code == 403, resp.text
    assert (await ok(await api.put(url, json={"cron": "0 4 * * *"}, headers=h("alice"))))[
        "cron"
    ] == "0 4 * * *"
    assert (await ok(await api.get(url, headers=h("root"))))["cron"] == "0 4 * * *"
    assert await ok(await api.get(f"{V1}/schedules", headers=h("root"))) != []


async def test_two_controls_ticking_at_once_fire_once(
    app: FastAPI,
    api: httpx.AsyncClient,
    adapter: RecordingAdapter,
    settings: Settings,
    clock: Clock,
    tmp_path: Path,
) -> None:
    exam = await one_node_exam(api, tmp_path)
    await put_schedule(api, exam, cron="0 3 * * *", concurrency="queue")
    other_app = create_app(settings, reconcile=False)
    other = control(other_app, clock)
    async with other_app.router.lifespan_context(other_app):
        clock.at = at("2031-01-03T03:00:00")
        await asyncio.gather(tick(app), tick(other_app), tick(app), tick(other_app))
        got = exam_runs(app)
        assert [(r["at"].day, r["state"]) for r in got] == [(1, "running"), (2, "queued"), (3, "queued")]
        assert len(adapter.launches) + len(other.launches) == 1


async def test_policy_queue_waits_at_most_the_catch_up_limit(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, clock: Clock, tmp_path: Path
) -> None:
    exam = await one_node_exam(api, tmp_path)
    app.state.orchestrator.settings.schedule_catchup_max = 2
    clock.at = at("2031-01-01T00:30:00")
    await put_schedule(api, exam, cron="0 * * * *", concurrency="queue")
    for hour in (1, 2, 3, 4):
        clock.at = datetime(2031, 1, 1, hour)
        await tick(app)
    assert [(r["at"].hour, r["state"]) for r in exam_runs(app)] == [
        (1, "running"),
        (2, "queued"),
        (3, "queued"),
    ]
    view = await ok(await api.get(f"{V1}/exams/{exam}/schedule"))
    assert (
        view["lastSkip"]
        == "2031-01-01T04:00:00: 2 exam runs already wait (policy queue, at most the catch-up limit)"
    )
    assert view["queued"] == 2 and view["lastRunState"] == "running"
