"""operatorResult: the version whose score beats every earlier one is CONTAIN_OPTIMAL, the others flip to
NOT_CONTAIN_OPTIMAL (higher is better, or lower with modelConf scoreMode min); an evaluate node's score
re-ranks them; the score gate refuses a deploy that does not beat the served version. Real store
(SQLite and MariaDB)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session

from control import runs
from control import schemas as s
from control.pipeline import best_version
from control.store import models as m
from control.store import repo


def new_model(ses: Session, name: str = "churn") -> m.Model:
    space = repo.ensure_space(session=ses, name="default")[0]
    model = m.Model(space_id=space.id, model_name=name)
    ses.add(model)
    ses.flush()
    return model


def train_run(
    ses: Session, model: m.Model, *, model_conf: dict[str, Any] | None = None, exam: bool = False
) -> m.Runtime:
    run = m.Runtime(
        space_id=model.space_id,
        node_name="train",
        operator_runtime_type="TRAIN",
        state="running",
        token_hash="-",
        exam_id=7 if exam else None,
        spec={},
    )
    ses.add(run)
    ses.flush()
    run.spec = {
        "runId": run.id,
        "nodeName": "train",
        "operator": {
            "operatorName": "op",
            "operatorRuntimeType": "TRAIN",
            "moduleName": "m",
            "executeObject": "C",
            "modelConf": model_conf or {},
            "deployType": "AUTO_DEPLOY",
        },
        "model": {"modelId": model.id, "modelName": model.model_name},
    }
    ses.flush()
    return run


def register(ses: Session, model: m.Model, score: float, **kw: Any) -> m.ModelVersion:
    run = train_run(ses, model, **kw)
    report = s.ModelVersionReport(model_address=f"file:///{run.id}", model_score=score)
    return runs.register_model_version(session=ses, run=run, report=report)


def results(ses: Session, model: m.Model) -> list[str]:
    versions = ses.scalars(
        select(m.ModelVersion).where(m.ModelVersion.model_id == model.id).order_by(m.ModelVersion.id)
    )
    return [v.operator_result for v in versions]


OPT, NOT = "CONTAIN_OPTIMAL", "NOT_CONTAIN_OPTIMAL"


async def test_best_so_far_flips(app: FastAPI) -> None:
    with app.state.orchestrator.store.transaction() as ses:
        model = new_model(ses)
        register(ses, model, 0.5)
        assert results(ses, model) == [OPT] and model.operator_result == OPT
        register(ses, model, 0.7)
        assert results(ses, model) == [NOT, OPT] and model.operator_result == OPT
        register(ses, model, 0.6)  # worse than v2: v2 stays the best, the model's latest is not
        assert results(ses, model) == [NOT, OPT, NOT] and model.operator_result == NOT
        register(ses, model, 0.7)  # a tie keeps the earlier version
        assert results(ses, model) == [NOT, OPT, NOT, NOT]


async def test_min_mode_for_a_loss(app: FastAPI) -> None:
    conf = {"scoreMode": "min", "scoreMetric": "loss"}
    with app.state.orchestrator.store.transaction() as ses:
        model = new_model(ses)
        register(ses, model, 0.5, model_conf=conf)
        register(ses, model, 0.3, model_conf=conf)
        assert results(ses, model) == [NOT, OPT]
        register(ses, model, 0.4, model_conf=conf)
        assert results(ses, model) == [NOT, OPT, NOT]


async def test_evaluated_score_reranks(app: FastAPI) -> None:
    with app.state.orchestrator.store.transaction() as ses:
        model = new_model(ses)
        v1 = register(ses, model, 0.9)
        v2 = register(ses, model, 0.8)
        assert results(ses, model) == [OPT, NOT]
        best_version.record_evaluation(ses, v2, 0.95, run_id=99)  # the test set liked v2 better
        assert results(ses, model) == [NOT, OPT]
        assert v2.metrics["evaluatedScore"] == 0.95 and v2.metrics["evaluatedByRun"] == 99
        assert best_version.effective_score(v1) == 0.9


async def test_gate_compares_with_the_served_version(app: FastAPI) -> None:
    with app.state.orchestrator.store.transaction() as ses:
        model = new_model(ses)
        v1 = register(ses, model, 0.86, exam=True)
        run1 = ses.get(m.Runtime, v1.runtime_id)
        assert run1 is not None
        assert best_version.gate(ses, run1, v1, {}) is None  # nothing served yet
        assert v1.metrics["deployDecision"] == "version 1 scored 0.86: no version served, deployed"
        ses.add(
            m.Service(
                space_id=model.space_id,
                service_name="churn-1",
                model_id=model.id,
                model_version_id=v1.id,
                serving_object="op:Serve",
                state="ready",
                token_hash="-",
            )
        )
        ses.flush()
        again = best_version.gate(
            ses, run1, v1, {"scoreGate": False}
        )  # evaluated again: one service is enough
        assert again == "version 1 is already served by churn-1: not deployed again"
        v2 = register(ses, model, 0.81, exam=True)
        run2 = ses.get(m.Runtime, v2.runtime_id)
        assert run2 is not None
        why = best_version.gate(ses, run2, v2, {})
        assert why == "version 2 scored 0.81, not above served version 1's 0.86: not deployed"
        assert v2.metrics["deployDecision"] == why
        assert best_version.gate(ses, run2, v2, {"scoreGate": False}) is None  # the gate turned off
        v3 = register(ses, model, 0.9, exam=True)
        run3 = ses.get(m.Runtime, v3.runtime_id)
        assert run3 is not None
        assert best_version.gate(ses, run3, v3, {}) is None
        assert v3.metrics["deployDecision"].endswith("above served version 1's 0.86: deployed")
        solo = register(ses, model, 0.1)  # a run outside any exam is not gated unless asked
        solo_run = ses.get(m.Runtime, solo.runtime_id)
        assert solo_run is not None
        assert best_version.gate(ses, solo_run, solo, {}) is None
        assert best_version.gate(ses, solo_run, solo, {"scoreGate": "true"}) is not None


async def test_services_are_named_as_seed_001_says(app: FastAPI) -> None:
    """`{service type}-{model}-{the version's digits}`, `serving` when the service info names no type."""
    orch = app.state.orchestrator
    with orch.store.transaction() as ses:
        model = new_model(ses, name="Churn_Torch")
        version = register(ses, model, 0.9, model_conf={"servingObject": "op:Serve"})
        run = ses.get(m.Runtime, version.runtime_id)
        assert run is not None
        service = orch._plan_service(ses, run)
        assert service is not None and service.service_name == "serving-churn-torch-1"
        run.spec = {**run.spec, "serviceInfo": {"siType": "Triton", "siNodeNum": 2}}
        later = register(ses, model, 0.95, model_conf={"servingObject": "op:Serve"})
        later_run = ses.get(m.Runtime, later.runtime_id)
        assert later_run is not None
        later_run.spec = {**later_run.spec, "serviceInfo": {"siType": "Triton", "siNodeNum": 2}}
        second = orch._plan_service(ses, later_run)
        assert second is not None and (second.service_name, second.replicas) == ("triton-churn-torch-2", 2)


def add_service(ses: Session, version: m.ModelVersion, state: str = "ready") -> m.Service:
    model = ses.get(m.Model, version.model_id)
    assert model is not None
    svc = m.Service(
        space_id=model.space_id,
        service_name=f"serving-{model.model_name}-{version.model_version}",
        model_id=model.id,
        model_version_id=version.id,
        runtime_id=version.runtime_id,
        serving_object="op:Serve",
        state=state,
        token_hash="-",
    )
    ses.add(svc)
    ses.flush()
    return svc


async def test_a_ready_version_replaces_the_older_services_of_its_model(app: FastAPI) -> None:
    """AUTO_DEPLOY: the older live services of the model are stopped with the reason; GREY_DEPLOY
    keeps them beside the new one; another model's services and ended ones are left alone."""
    orch = app.state.orchestrator
    with orch.store.transaction() as ses:
        churn, iris = new_model(ses), new_model(ses, name="iris")
        one = add_service(ses, register(ses, churn, 0.8))
        failed = add_service(ses, register(ses, churn, 0.5), "failed")
        two = add_service(ses, register(ses, churn, 0.85))
        other = add_service(ses, register(ses, iris, 0.7))
        ids = [one.id, failed.id, two.id, other.id]
    assert await orch.settle_ready(ids[2]) == [ids[0]]
    with orch.store.transaction() as ses:
        grey_version = register(ses, ses.get(m.Model, churn.id), 0.9)  # type: ignore[arg-type]
        run = ses.get(m.Runtime, grey_version.runtime_id)
        assert run is not None
        run.spec = {**run.spec, "operator": {**run.spec["operator"], "deployType": "GREY_DEPLOY"}}
        three = add_service(ses, grey_version)
        three.traffic_weight = 10
        ids.append(three.id)
    assert await orch.settle_ready(ids[4]) == []  # grey: the older one stays, at 90%
    with orch.store.transaction() as ses:
        rows = {i: ses.get(m.Service, i) for i in ids}
        states = {i: (r.state, r.reason, r.traffic_weight) for i, r in rows.items() if r is not None}
    assert states[ids[0]] == ("stopped", "replaced by serving-churn-3 (version 3)", 0)
    assert [states[i][0] for i in ids[1:]] == ["failed", "ready", "ready", "ready"]
    assert (states[ids[2]][2], states[ids[4]][2]) == (90, 10)
