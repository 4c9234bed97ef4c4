"""Schemathesis against the real app (in-process ASGI) on SQLite and MariaDB: no 5xx, no undocumented status.

Two ways in: the implied local admin (no users, no token: every route is reachable), and the
bootstrap admin token (`ATOM_API_TOKEN`) sent as a bearer header. Bounded in examples: under a
minute per backend (35-55 s on two shared cores).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import status_code_conformance

from control.api.app import create_app
from control.settings import Settings

pytestmark = pytest.mark.slow  # minutes of generated calls: started first (tests/conftest.py)

ADMIN_TOKEN = "atom_schemathesis_admin_token"
CHECKS = [not_a_server_error, status_code_conformance]
#: examples per operation in the fuzzing phase, by way in (the token run repeats the routes behind
#: a second guard)
EXAMPLES = {"local-admin": 4, "admin-token": 4}
#: the coverage phase (each field's boundary and negative values) runs once per backend, as the local
#: admin; other HTTP methods than the documented ones are not tried
PHASES = {
    "local-admin": {
        "examples": {"enabled": False},
        "coverage": {"enabled": True, "unexpected-methods": []},
        "stateful": {"enabled": False},
    },
    "admin-token": {
        "examples": {"enabled": False},
        "coverage": {"enabled": False},
        "stateful": {"enabled": False},
    },
}


@pytest.fixture(params=["local-admin", "admin-token"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fuzzed_app(tmp_path: Path, db_url: str, mode: str) -> Iterator[FastAPI]:
    token = ADMIN_TOKEN if mode == "admin-token" else None
    app = create_app(
        Settings(
            home=tmp_path / "home",
            db_url=db_url,
            api_token=token,
            # the local admin stays implied after a generated POST /api/v1/users made a user
            auth_required=None if token else False,
            heartbeat_timeout=30,
            dispatch_adapters={},  # generated runs are planned and refused, never started
        ),
        reconcile=False,
    )
    yield app
    app.state.orchestrator.store.dispose()


@pytest.fixture
def api_schema(fuzzed_app: FastAPI, mode: str) -> schemathesis.BaseSchema:
    config = SchemathesisConfig.from_dict(
        {"phases": PHASES[mode], "generation": {"max-examples": EXAMPLES[mode]}, "seed": 13}
    )
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    derandomize=True,
)
def test_api(case: schemathesis.Case, mode: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if mode == "admin-token" else None
    case.call_and_validate(headers=headers, checks=CHECKS)
