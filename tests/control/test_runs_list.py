"""GET /api/v1/runs: the `q` text filter, sort keys (NULLs last), paging and totals, on SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, text

from control import schemas as s
from control.client import AsyncControlClient
from control.errors import ControlAPIError
from control.store import models as m
from control.store import run_list
from control.store.engine import Store
from control.store.models import utcnow
from tests.control.factory import ok

RUNS = "/api/v1/runs"


def add_runs(app: FastAPI, rows: list[dict[str, Any]]) -> list[int]:
    """Insert runtimes straight into the store (ids in list order)."""
    with app.state.orchestrator.store.transaction() as ses:
        objs = [
            m.Runtime(
                node_name=r.get("node", "n"),
                operator_runtime_type=r.get("type", "TRAIN"),
                adapter=r.get("adapter", "local"),
                state=r.get("state", "queued"),
                attempt=r.get("attempt", 1),
                progress=r.get("progress"),
                started_at=r.get("started"),
                finished_at=r.get("finished"),
                token_hash="x",
                spec={},
            )
            for r in rows
        ]
        ses.add_all(objs)
        ses.flush()
        return [o.id for o in objs]


@pytest.fixture
def seeded(app: FastAPI) -> dict[str, int]:
    now = utcnow()
    names = ["train-alpha", "train-beta", "infer-alpha", "etl-gamma", "train-alpha", "etl-9"]
    rows: list[dict[str, Any]] = [
        {
            "node": names[0],
            "state": "succeeded",
            "started": now - timedelta(minutes=30),
            "finished": now - timedelta(minutes=25),
            "progress": 1.0,
        },
        {
            "node": names[1],
            "state": "failed",
            "started": now - timedelta(minutes=30),
            "finished": now - timedelta(minutes=29),
            "progress": 0.4,
            "attempt": 3,
        },
        {
            "node": names[2],
            "type": "REASONING",
            "adapter": "ray",
            "state": "running",
            "started": now - timedelta(hours=2),
            "progress": 0.5,
        },
        {"node": names[3], "type": "PYTHON_DATA", "state": "queued"},
        {"node": names[4], "state": "running", "started": now - timedelta(minutes=1), "attempt": 2},
        {"node": names[5], "type": "PYTHON_DATA", "state": "stopped", "adapter": "ray"},
    ]
    ids = add_runs(app, rows)
    return {f"r{i}": run_id for i, run_id in enumerate(ids)}


async def _ids(api: httpx.AsyncClient, **params: Any) -> list[int]:
    page = await ok(await api.get(RUNS, params=params))
    return [r["id"] for r in page["items"]]


async def test_text_filter_terms_are_anded(api: httpx.AsyncClient, seeded: dict[str, int]) -> None:
    r = seeded
    assert await _ids(api, q="alpha") == [r["r4"], r["r2"], r["r0"]]
    assert await _ids(api, q="ALPHA train") == [r["r4"], r["r0"]]  # case-insensitive, ANDed
    assert await _ids(api, q="  train   run  ") == [r["r4"]]  # "run" is in "running"
    assert await _ids(api, q="reasoning") == [r["r2"]]  # the operator runtime type
    assert await _ids(api, q="ray") == [r["r5"], r["r2"]]  # the adapter
    assert await _ids(api, q="nothing-like-this") == []
    page = await ok(await api.get(RUNS, params={"q": "alpha", "limit": 1}))
    assert page["total"] == 3 and len(page["items"]) == 1


async def test_digits_match_the_run_id_or_a_name(api: httpx.AsyncClient, seeded: dict[str, int]) -> None:
    r = seeded
    assert r["r1"] in await _ids(api, q=str(r["r1"]))
    assert r["r5"] in await _ids(api, q="9")  # etl-9 by name
    assert await _ids(api, q=f"{r['r1']} beta") == [r["r1"]]


async def test_field_terms_match_one_field(api: httpx.AsyncClient, seeded: dict[str, int]) -> None:
    r = seeded
    assert await _ids(api, q="state:running") == [r["r4"], r["r2"]]
    assert await _ids(api, q="state:RUNNING node:train") == [r["r4"]]
    assert await _ids(api, q="node:train-") == [r["r4"], r["r1"], r["r0"]]  # prefix
    assert await _ids(api, q="node:alpha") == []  # a prefix, not a substring
    assert await _ids(api, q="type:python_data") == [r["r5"], r["r3"]]
    assert await _ids(api, q="adapter:ray state:stopped") == [r["r5"]]
    assert await _ids(api, q="state:run") == []  # exact
    assert len(await _ids(api, q="state:")) == 6  # half-typed: no constraint
    assert await _ids(api, q="n_a") == []  # LIKE wildcards are literal ("train-alpha" has "n-a")
    assert await _ids(api, q="%") == []
    assert await _ids(api, q="n_d") == [r["r5"], r["r3"]]  # PYTHON_DATA


async def test_q_combines_with_the_other_filters(api: httpx.AsyncClient, seeded: dict[str, int]) -> None:
    r = seeded
    assert await _ids(api, q="alpha", state="running") == [r["r4"], r["r2"]]
    assert await _ids(api, q="alpha", node="train-alpha") == [r["r4"], r["r0"]]


async def test_sort_keys_and_direction(api: httpx.AsyncClient, seeded: dict[str, int]) -> None:
    r = seeded
    assert await _ids(api) == [r[f"r{i}"] for i in (5, 4, 3, 2, 1, 0)]  # id, newest first
    assert await _ids(api, sort="id", desc="false") == [r[f"r{i}"] for i in range(6)]
    # ties (two train-alpha runs) go newest first whichever the direction
    assert await _ids(api, sort="node", desc="false") == [r[f"r{i}"] for i in (5, 3, 2, 4, 0, 1)]
    assert await _ids(api, sort="node") == [r[f"r{i}"] for i in (1, 4, 0, 2, 3, 5)]
    assert (await _ids(api, sort="attempt"))[:2] == [r["r1"], r["r4"]]
    assert await _ids(api, sort="operator", desc="false", q="ray") == [r["r5"], r["r2"]]
    assert await _ids(api, sort="state", desc="false", q="alpha") == [r["r4"], r["r2"], r["r0"]]
    assert (await _ids(api, sort="created"))[0] == r["r5"]


async def test_nullable_keys_sort_nulls_last(api: httpx.AsyncClient, seeded: dict[str, int]) -> None:
    r = seeded
    # (finished or now) - started: r2 2 h (still running), r0 5 min, r1 1 min, r4 ~1 min running
    by_duration = await _ids(api, sort="duration")
    assert by_duration[:2] == [r["r2"], r["r0"]]
    assert set(by_duration[2:4]) == {r["r1"], r["r4"]}
    assert by_duration[4:] == [r["r5"], r["r3"]]  # never started: last, id desc
    ascending = await _ids(api, sort="duration", desc="false")
    assert ascending[2:4] == [r["r0"], r["r2"]] and ascending[4:] == [r["r5"], r["r3"]]
    assert await _ids(api, sort="progress") == [r[f"r{i}"] for i in (0, 2, 1, 5, 4, 3)]
    assert await _ids(api, sort="progress", desc="false") == [r[f"r{i}"] for i in (1, 2, 0, 5, 4, 3)]
    assert (await _ids(api, sort="finished"))[:2] == [r["r0"], r["r1"]]
    assert (await _ids(api, sort="started", desc="false"))[0] == r["r2"]


async def test_unknown_sort_key_names_the_valid_ones(api: httpx.AsyncClient) -> None:
    resp = await api.get(RUNS, params={"sort": "colour"})
    assert resp.status_code == 422
    body = resp.json()
    assert "'duration'" in body["msg"] and "'progress'" in body["msg"]
    assert [e["field"] for e in body["errors"]] == ["sort"]
    too_many = await api.get(RUNS, params={"limit": 1001})
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "limit"


async def test_paging_total_counts_all_matches(api: httpx.AsyncClient, app: FastAPI) -> None:
    ids = add_runs(
        app, [{"node": f"n-{i:02d}", "state": "succeeded" if i % 2 else "failed"} for i in range(25)]
    )
    page = await ok(await api.get(RUNS, params={"q": "state:succeeded", "limit": 5, "offset": 10}))
    assert page["total"] == 12
    assert [x["id"] for x in page["items"]] == [i for i in reversed(ids) if (ids.index(i)) % 2][10:15]
    beyond = await ok(await api.get(RUNS, params={"q": "state:succeeded", "offset": 50}))
    assert beyond == {"items": [], "total": 12}


async def test_client_passes_q_sort_desc(app: FastAPI, seeded: dict[str, int]) -> None:
    r = seeded
    transport = httpx.ASGITransport(app=app)
    async with AsyncControlClient("http://control", transport=transport) as client:
        page = await client.list_runs(q="train", sort="duration", desc=False)
        ids = [x.id for x in page.items]
        assert set(ids[:2]) == {r["r1"], r["r4"]} and ids[2] == r["r0"] and page.total == 3
        plain = await client.list_runs(limit=2)
        assert [x.id for x in plain.items] == [r["r5"], r["r4"]] and plain.total == 6
        with pytest.raises(ControlAPIError) as err:
            await client.list_runs(sort="colour")
        assert err.value.status_code == 422 and set(err.value.fields) == {"sort"}


def _plan(store, query) -> str:  # type: ignore[no-untyped-def]
    sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        return " | ".join(str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))


def test_ten_thousand_runs_use_indexes_on_sqlite(tmp_path) -> None:
    """The TUI pages 100 at a time and filters per keystroke: the common shapes must not sort the table."""
    store = Store(f"sqlite:///{tmp_path / 'atom.db'}")
    now = utcnow()
    with store.transaction() as ses:
        ses.execute(
            insert(m.Runtime),
            [
                {
                    "node_name": f"{('train', 'infer', 'etl')[i % 3]}-{i % 40}",
                    "operator_runtime_type": "TRAIN",
                    "adapter": "local",
                    "state": ("running", "succeeded", "failed", "queued")[i % 4],
                    "reason": "",
                    "attempt": 1,
                    "token_hash": "x",
                    "spec": {},
                    "envs": {},
                    "run_parameter": {},
                    "log_path": "",
                    "stop_requested": False,
                    "created_at": now,
                    "started_at": now - timedelta(seconds=i) if i % 4 != 3 else None,
                }
                for i in range(10_000)
            ],
        )
    with store.engine.connect() as conn:
        conn.execute(text("ANALYZE"))

    def plan(sort: str = "id", **filters: Any) -> str:
        query = run_list.page_query(
            run_list.filters(**filters),
            sort=s.RunSort(sort),
            desc=True,
            dialect="sqlite",
            limit=100,
            offset=0,
        )
        return _plan(store, query)

    assert "TEMP B-TREE" not in plan()  # the primary key
    assert "ix_runtimes_node_name" in plan(q="node:train-1") and "SCAN" not in plan(q="node:train-1")
    assert "ix_runtimes_node_name" in plan(sort="node") and "TEMP B-TREE" not in plan(sort="node")
    assert "ix_runtimes_state" in plan(q="state:failed")
    assert "ix_runtimes_created_at" in plan(sort="created")
    with store.transaction() as ses:
        rows, total = run_list.list_runs(
            session=ses, q="node:train state:running", sort=s.RunSort.DURATION, limit=100
        )
        assert total == 834 and len(rows) == 100
        assert [r.started_at for r in rows] == sorted((r.started_at for r in rows), reverse=False)
    store.dispose()
