"""Data for dashboard tests: a small realistic space through the API, and runs with fixed times
written straight into the store (so snapshots and the 10,000-run tests see stable values)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from control.client import AsyncControlClient
from control.schemas import NodeRelationIn
from control.settings import Settings
from control.store import models as m
from control.store.engine import Store
from tests.e2e.conftest import make_tabular

NOW = datetime(2026, 11, 20, 9, 30, 0, tzinfo=UTC)
"""The dashboard's clock in snapshot tests."""

STATES = ["succeeded", "succeeded", "failed", "running", "succeeded", "stopped", "queued", "pending"]
NODES = ["prep", "train", "score", "adhoc", "feat-daily", "ctr-train", "ctr-eval", "embed"]
TYPES = ["PYTHON_DATA", "TRAIN", "REASONING", "TRAIN", "FEATURES", "TRAIN", "REASONING", "TRAIN"]


@dataclass
class Demo:
    """What `seed_demo` made, by name."""

    ids: dict[str, int] = field(default_factory=dict)
    runs: list[int] = field(default_factory=list)
    log_run: int = 0
    """A run with a log file and metric points."""


async def seed_demo(
    client: AsyncControlClient, settings: Settings, data_dir: Path, *, space: str = "default"
) -> Demo:
    """One experiment with an exam of three chained nodes, a loose node, connections, sources, an
    operator, a model with two versions, two services and a dozen runs."""
    demo = Demo()
    make_tabular(data_dir)
    await client.ensure_space(space)

    async def make(kind: str, body: dict[str, Any]) -> int:
        row = await client.create(space, kind, body)
        name = next(v for k, v in body.items() if k.endswith("Name"))
        demo.ids[f"{kind}:{name}"] = int(row["id"])
        return int(row["id"])

    await make("connections", {"connectName": "lake", "connectType": "FILE", "connectAddr": str(data_dir)})
    await make(
        "connections",
        {
            "connectName": "warehouse",
            "connectType": "MYSQL",
            "connectAddr": "127.0.0.1",
            "connectPort": 3306,
            "connectAccount": "analyst",
            "connectPassword": "s3cret-Pa55",
            "connectSpace": "ctr",
        },
    )
    src = [
        await make(
            "sources",
            {
                "sourceName": "clicks",
                "connectionName": "lake",
                "sourceType": "source",
                "operateExecute": "train.csv",
                "dataFormat": "csv",
            },
        ),
        await make(
            "sources",
            {
                "sourceName": "holdout",
                "connectionName": "lake",
                "sourceType": "test_source",
                "operateExecute": "test.csv",
                "dataFormat": "csv",
            },
        ),
        await make(
            "sources",
            {
                "sourceName": "scores",
                "connectionName": "lake",
                "sourceType": "sink",
                "operateExecute": "scores.csv",
                "dataFormat": "csv",
            },
        ),
    ]
    ops = {
        "TRAIN": await make(
            "operators",
            {
                "operatorName": "ctr-train",
                "operatorRuntimeType": "TRAIN",
                "moduleName": "runtime_agent.examples.train_example",
                "executeObject": "TrainExample",
                "operatorEpoch": 3,
                "deployType": "TOUCH_DEPLOY",
                "operatorConf": {"labelColumn": "label"},
            },
        ),
        "PYTHON_DATA": await make(
            "operators",
            {
                "operatorName": "ctr-prep",
                "operatorRuntimeType": "PYTHON_DATA",
                "moduleName": "tests.e2e.operators",
                "executeObject": "CopyRows",
            },
        ),
        "REASONING": await make(
            "operators",
            {
                "operatorName": "ctr-score",
                "operatorRuntimeType": "REASONING",
                "moduleName": "runtime_agent.examples.train_example",
                "executeObject": "TabularReasoning",
            },
        ),
    }
    model = await make("models", {"modelName": "ctr", "connectionName": "lake"})
    si = await make("service-infos", {"siName": "small", "siCpu": 1, "siMemory": 1024})
    exp = await make("experiments", {"experimentName": "ctr", "description": "click-through rate"})
    exam = await make("exams", {"examName": "daily", "experimentId": exp})
    nodes = {}
    types = {"prep": "PYTHON_DATA", "train": "TRAIN", "score": "REASONING", "adhoc": "TRAIN"}
    for name in ("prep", "train", "score"):
        nodes[name] = await make(
            "nodes", {"nodeName": name, "operatorRuntimeType": types[name], "examId": exam}
        )
    nodes["adhoc"] = await make("nodes", {"nodeName": "adhoc", "operatorRuntimeType": "TRAIN"})
    chain = [("prep", "train"), ("train", "score"), ("score", None), ("adhoc", None)]
    for name, nxt in chain:
        await client.create_node_relation(
            NodeRelationIn(
                node_id=nodes[name],
                next_node_id=nodes[nxt] if nxt else None,
                operator_id=ops[types[name]],
                data_source_ids=src,
                model_id=model,
                service_info_id=si,
            )
        )
    for name in ("prep", "train", "score"):
        await client.patch(space, "nodes", name, {"nodeStatus": "EDIT_FINISH"})

    demo.runs = insert_runs(settings, 12, space=space, node_ids=nodes, start=NOW - timedelta(hours=3))
    demo.log_run = demo.runs[-1]
    write_log_and_metrics(settings, demo.log_run)
    add_versions_and_services(settings, space=space, model_id=model, run_ids=demo.runs)
    return demo


def insert_runs(
    settings: Settings,
    count: int,
    *,
    space: str = "default",
    node_ids: dict[str, int] | None = None,
    start: datetime = NOW - timedelta(days=2),
    step: timedelta = timedelta(minutes=1),
    batch: int = 5000,
) -> list[int]:
    """`count` runs with fixed, increasing times and cycling states, inserted in bulk."""
    store = Store(settings.database_url)
    try:
        with store.transaction() as ses:
            space_id = ses.scalars(select(m.Space.id).where(m.Space.space_name == space)).one()
            first = (
                ses.scalars(select(m.Runtime.id).order_by(m.Runtime.id.desc()).limit(1)).first() or 0
            ) + 1
            rows: list[dict[str, Any]] = []
            transitions: list[dict[str, Any]] = []
            for i in range(count):
                node = NODES[i % len(NODES)]
                state = STATES[i % len(STATES)]
                created = start + step * i
                started = None if state in ("queued", "pending") else created + timedelta(seconds=3)
                ended = state in ("succeeded", "failed", "stopped")
                finished = started + timedelta(seconds=40 + (i * 37) % 900) if ended and started else None
                rows.append(
                    {
                        "id": first + i,
                        "space_id": space_id,
                        "node_id": (node_ids or {}).get(node),
                        "node_name": node,
                        "operator_runtime_type": TYPES[i % len(TYPES)],
                        "adapter": "local",
                        "state": state,
                        "reason": "exit code 1: ValueError: column 'f0' has negative values"
                        if state == "failed"
                        else "",
                        "attempt": 1 + (i % 5 == 2),
                        "progress": {"running": 0.42, "succeeded": 1.0}.get(state),
                        "stage": "train" if state == "running" else None,
                        "rows_read": 480 * (i % 7 + 1) if started else None,
                        "token_hash": secrets.token_hex(8),
                        "spec": {},
                        "envs": {},
                        "run_parameter": {},
                        "log_path": "",
                        "stop_requested": False,
                        "created_at": created,
                        "started_at": started,
                        "finished_at": finished,
                        "heartbeat_at": started,
                    }
                )
                path = [("queued", created)]
                if started:
                    path += [("pending", created + timedelta(seconds=1)), ("running", started)]
                elif state == "pending":
                    path.append(("pending", created + timedelta(seconds=1)))
                if finished:
                    path.append((state, finished))
                prev = None
                for to_state, at in path:
                    reason = {
                        "queued": "started by user",
                        "pending": "dispatched to local",
                        "running": "agent up",
                    }
                    transitions.append(
                        {
                            "runtime_id": first + i,
                            "from_state": prev,
                            "to_state": to_state,
                            "reason": reason.get(to_state, rows[-1]["reason"] or "operator finished"),
                            "at": at,
                        }
                    )
                    prev = to_state
                if len(rows) >= batch:
                    ses.execute(insert(m.Runtime), rows)
                    rows = []
            if rows:
                ses.execute(insert(m.Runtime), rows)
            for i in range(0, len(transitions), batch):
                ses.execute(insert(m.RunTransition), transitions[i : i + batch])
        return list(range(first, first + count))
    finally:
        store.dispose()


def write_log_and_metrics(settings: Settings, run_id: int, *, lines: int = 60, steps: int = 30) -> Path:
    """A log file and loss/accuracy curves for one run."""
    log = settings.home / "runs" / str(run_id) / "agent.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        for i in range(lines):
            stamp = f"2026-11-20 09:{i // 60:02d}:{i % 60:02d}"
            fh.write(f"{stamp} INFO runtime_agent: epoch {i // 20} batch {i} loss {1 / (1 + i * 0.1):.4f}\n")
    store = Store(settings.database_url)
    try:
        with store.transaction() as ses:
            run = ses.get(m.Runtime, run_id)
            assert run is not None
            run.log_path = str(log)
            run.spec = json.loads(json.dumps(_spec(run.node_name)))
            for step in range(steps):
                at = NOW - timedelta(minutes=30) + timedelta(seconds=step * 10)
                ses.add(
                    m.RunMetric(
                        runtime_id=run_id, step=step, name="loss", value=1.2 / (1 + step * 0.25), at=at
                    )
                )
                ses.add(
                    m.RunMetric(
                        runtime_id=run_id, step=step, name="accuracy", value=0.5 + 0.45 * step / steps, at=at
                    )
                )
    finally:
        store.dispose()
    return log


def add_versions_and_services(settings: Settings, *, space: str, model_id: int, run_ids: list[int]) -> None:
    store = Store(settings.database_url)
    try:
        with store.transaction() as ses:
            space_id = ses.scalars(select(m.Space.id).where(m.Space.space_name == space)).one()
            versions = []
            for n, (score, result) in enumerate(
                [(0.871, "NOT_CONTAIN_OPTIMAL"), (0.912, "CONTAIN_OPTIMAL")], 1
            ):
                v = m.ModelVersion(
                    model_id=model_id,
                    model_version=f"v{n}",
                    model_score=score,
                    model_address=f"file://models/ctr/v{n}.tar.gz",
                    runtime_id=run_ids[n],
                    operator_result=result,
                    metrics={"auc": score},
                    serving_object="x:Y",
                    create_time=NOW - timedelta(hours=2 - n),
                )
                ses.add(v)
                versions.append(v)
            ses.flush()
            for v, state, weight, endpoint in (
                (versions[0], "ready", 100, "http://127.0.0.1:18501"),
                (versions[1], "waiting_approval", 0, None),
            ):
                ses.add(
                    m.Service(
                        space_id=space_id,
                        service_name=f"reasoning-ctr-{v.model_version[1:]}",
                        model_id=model_id,
                        model_version_id=v.id,
                        serving_object="x:Y",
                        replicas=1,
                        endpoint=endpoint,
                        traffic_weight=weight,
                        state=state,
                        token_hash=secrets.token_hex(8),
                        reason="TOUCH_DEPLOY: approve to start" if state == "waiting_approval" else "",
                        created_at=NOW - timedelta(minutes=50),
                    )
                )
    finally:
        store.dispose()


def _spec(node: str) -> dict[str, Any]:
    conn = {"connectName": "lake", "connectType": "FILE", "connectAddr": "/data/lake"}
    return {
        "runId": 0,
        "nodeName": node,
        "operator": {
            "operatorName": "ctr-train",
            "operatorRuntimeType": "TRAIN",
            "moduleName": "runtime_agent.examples.train_example",
            "executeObject": "TrainExample",
            "operatorEpoch": 3,
            "deployType": "TOUCH_DEPLOY",
        },
        "sources": [
            {
                "sourceName": "clicks",
                "sourceType": "source",
                "operateExecute": "train.csv",
                "connection": conn,
            },
            {
                "sourceName": "holdout",
                "sourceType": "test_source",
                "operateExecute": "test.csv",
                "connection": conn,
            },
        ],
        "model": {"modelName": "ctr", "connection": conn},
    }
