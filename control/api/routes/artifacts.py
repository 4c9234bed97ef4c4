"""A run's artifacts: the agent reports the datasets and files it left (run token), users list them.

`POST /api/v1/runs/{run_id}/artifacts` stores `{"artifacts": [{name, kind, uri, value}]}` by (run,
name), so a report sent again replaces what it sent before; `model` and `metrics` are recorded by
control when the run succeeds. `GET` lists every artifact of the run (a run in another space: 404).
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from control import runs
from control.api.deps import Caller, Orch, RunToken
from control.api.params import RunId
from control.api.tenancy import run_of
from control.pipeline import artifacts
from control.schemas.artifacts import ArtifactBatch, ArtifactOut

router = APIRouter(prefix="/api/v1", tags=["artifacts"])


@router.post("/runs/{run_id}/artifacts")
async def report_artifacts(
    run_id: RunId, batch: ArtifactBatch, token: RunToken, orch: Orch
) -> dict[str, int]:
    """The outputs the agent committed (run token); each is stored by (run, name)."""

    def store(ses: Session) -> int:
        run = runs.agent_run(session=ses, run_id=run_id, token=token)
        return len(artifacts.report(ses, run, batch.artifacts))

    return {"stored": await orch.db(store)}


@router.get("/runs/{run_id}/artifacts", response_model=list[ArtifactOut])
async def run_artifacts(run_id: RunId, orch: Orch, who: Caller) -> list[ArtifactOut]:
    """Every output the run left (model version, metrics, sink datasets, declared files)."""
    return await orch.db(lambda ses: artifacts.artifacts_of(ses, run_of(ses, who, run_id)))
