"""The agent classifies the failure that ended a run (user, spec, connection, timeout) and reports
whether the operator opted in to retries of its own errors."""

from __future__ import annotations

import errno
from typing import Any

import httpx
import pandas as pd
import pytest

import runtime_agent.testing as testing
from connectors.errors import (
    AuthenticationFailed,
    ConnectorConfigError,
    SourceUnavailable,
    TargetNotFound,
)
from control.schemas import RunState
from control.schemas.pipeline import FailureClass
from runtime_agent.api import Operator
from runtime_agent.callbacks import RecordingCallbacks
from runtime_agent.errors import CodeFetchError, OperatorFailed, OperatorLoadError, SpecError
from runtime_agent.failures import classify, classify_exception
from runtime_agent.testing import AgentRunner
from tests.runtime_agent.operators import EmitsThenFails


class RetriesItsErrors(EmitsThenFails):
    retry_on_user_error = True


class StoreGoesAway(Operator):
    def operate_execute(self, batch: pd.DataFrame, ctx: Any) -> None:
        raise SourceUnavailable("MYSQL db:3306 cannot be reached: connection refused")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OperatorFailed("operate_execute", ValueError("bad column")), FailureClass.USER),
        (OperatorLoadError("no module named 'nope'"), FailureClass.SPEC),
        (CodeFetchError("no such tag v9"), FailureClass.SPEC),
        (SpecError("bad spec file"), FailureClass.SPEC),
        (ConnectorConfigError("no paging key"), FailureClass.SPEC),
        (AuthenticationFailed("wrong password"), FailureClass.SPEC),
        (TargetNotFound("no table t"), FailureClass.SPEC),
        (SourceUnavailable("refused"), FailureClass.CONNECTION),
        (ConnectionResetError(errno.ECONNRESET, "reset by peer"), FailureClass.CONNECTION),
        (OSError(errno.EHOSTUNREACH, "no route to host"), FailureClass.CONNECTION),
        (httpx.ConnectError("control is down"), FailureClass.CONNECTION),
        (TimeoutError(), FailureClass.TIMEOUT),
        (httpx.ReadTimeout("slow"), FailureClass.TIMEOUT),
        (OSError(errno.ENOSPC, "disk full"), FailureClass.USER),
        (RuntimeError("agent bug"), FailureClass.USER),
    ],
)
def test_exceptions_are_classified(exc: BaseException, kind: FailureClass) -> None:
    assert classify_exception(exc) == kind


def test_the_opt_in_only_touches_user_errors() -> None:
    user = OperatorFailed("operate_execute", ValueError("x"))
    assert classify(user).retryable is None
    assert classify(user, operator_conf={"retryOnUserError": True}).retryable is True
    assert classify(user, operator_conf={"retryOnUserError": "true"}).retryable is True
    assert classify(user, operator_conf={"retryOnUserError": False}).retryable is None
    assert classify(user, op=RetriesItsErrors()).retryable is True
    spec = classify(OperatorLoadError("nope"), operator_conf={"retryOnUserError": True})
    assert spec.failure_class == FailureClass.SPEC and spec.retryable is None


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[RecordingCallbacks]:
    made: list[RecordingCallbacks] = []

    class Keeps(RecordingCallbacks):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            made.append(self)

    monkeypatch.setattr(testing, "RecordingCallbacks", Keeps)
    return made


@pytest.mark.parametrize(
    ("operator", "conf", "expected"),
    [
        (EmitsThenFails(), {}, (FailureClass.USER, None)),
        (EmitsThenFails(), {"retryOnUserError": True}, (FailureClass.USER, True)),
        (RetriesItsErrors(), {}, (FailureClass.USER, True)),
        (StoreGoesAway(), {}, (FailureClass.CONNECTION, None)),
    ],
)
async def test_a_failed_run_reports_its_class(
    tmp_path: Any,
    recorded: list[RecordingCallbacks],
    operator: Operator,
    conf: dict[str, Any],
    expected: tuple[FailureClass, bool | None],
) -> None:
    result = await AgentRunner(
        operator,
        sources={"source": pd.DataFrame({"x": range(10)})},
        runtime_type="PYTHON",
        operator_conf=conf,
        workdir=tmp_path,
    ).arun()
    assert result.state == RunState.FAILED
    (callbacks,) = recorded
    assert callbacks.failures == [expected]
