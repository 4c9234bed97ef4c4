"""Which agents ship their output: runs on a target whose disk is not control's (every adapter but
`local`) get `ATOM_LOG_SHIP=1`; local runs, services, and nodes that set it themselves keep theirs."""

from __future__ import annotations

from pathlib import Path

from control.dispatch.base import LOG_SHIP_ENV, Adapter, Admission, Observed, RunDescription
from control.dispatch.local import LocalAdapter


class Target(Adapter):
    """A remote target that records what it was asked to start (nothing runs)."""

    name = "target"

    def __init__(self) -> None:
        self.started: list[RunDescription] = []

    async def _start(self, desc: RunDescription, admission: Admission) -> str:
        self.started.append(desc)
        return f"job-{desc.ident}"

    async def _stop(self, external_id: str, *, grace: float) -> None:
        return None

    async def _describe(self, external_id: str) -> Observed:
        return Observed(alive=True)


def desc(kind: str = "run", **env: str) -> RunDescription:
    return RunDescription(
        kind=kind, ident=7, name="n", command=["true"], env={"ATOM_RUN_ID": "7", **env}, log_path=Path("x")
    )


async def test_runs_on_remote_targets_ship_their_output() -> None:
    target = Target()
    given = desc()
    await target.start(given)
    await target.start(desc(kind="service"))
    await target.start(desc(**{LOG_SHIP_ENV: "0"}))
    run, service, declined = target.started
    assert run.env == {"ATOM_RUN_ID": "7", LOG_SHIP_ENV: "1"}
    assert LOG_SHIP_ENV not in given.env  # the caller's description is left as it was
    assert LOG_SHIP_ENV not in service.env
    assert declined.env[LOG_SHIP_ENV] == "0"


def test_local_agents_write_controls_log_file_themselves() -> None:
    assert LocalAdapter.ships_logs is False and Target.ships_logs is True
    local = LocalAdapter.__new__(LocalAdapter)
    assert LOG_SHIP_ENV not in local._with_shipping(desc()).env
