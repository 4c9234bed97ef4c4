"""CLI fixtures: a fake control (httpx.MockTransport) and the real app in-process, one app per command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.cli.main import main
from control.settings import Settings

Route = Callable[[httpx.Request], httpx.Response] | dict[str, Any] | list[Any] | httpx.Response


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Wide, colourless output, and a data home no test shares with the developer."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


class FakeControl:
    """Answers control API paths from a table; unknown paths get 404 `{"msg": ...}` like control."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Route]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *answers: Route) -> FakeControl:
        """Answer `method path` with each answer in turn (the last one repeats)."""
        self.routes[(method, path)] = list(answers)
        return self

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        answers = self.routes.get(key)
        if not answers:
            return httpx.Response(404, json={"msg": f"no route {request.method} {request.url.path}"})
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if callable(answer):
            return answer(request)
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def bodies(self, method: str, path: str) -> list[Any]:
        return [
            json.loads(r.content or b"null")
            for r in self.requests
            if (r.method, r.url.path) == (method, path)
        ]


@pytest.fixture
def fake() -> FakeControl:
    return FakeControl()


def run_record(run_id: int = 1, **fields: Any) -> dict[str, Any]:
    """A RunOut as control sends it (camelCase)."""
    record: dict[str, Any] = {
        "id": run_id,
        "nodeId": 3,
        "nodeName": "train-tabular",
        "spaceId": 1,
        "operatorRuntimeType": "TRAIN",
        "adapter": "local",
        "state": "running",
        "reason": "",
        "attempt": 1,
        "progress": 0.42,
        "stage": "epoch 2/5",
        "createdAt": "2026-01-02T10:00:00",
        "startedAt": "2026-01-02T10:00:02",
        "finishedAt": None,
        "history": [],
    }
    record.update(fields)
    return record


class LifespanTransport(httpx.ASGITransport):
    """The real app for one command: built and started on the first request, shut down on close.

    Like the embedded server, each `atom` command gets its own app over the same store.
    """

    def __init__(self, settings: Settings) -> None:
        from control.api.app import create_app  # the server side, only for these tests

        super().__init__(app=create_app(settings))
        self._lifespan: Any = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._lifespan is None:
            self._lifespan = self.app.router.lifespan_context(self.app)  # type: ignore[attr-defined]
            await self._lifespan.__aenter__()
        return await super().handle_async_request(request)

    async def aclose(self) -> None:
        if self._lifespan is not None:
            await self._lifespan.__aexit__(None, None, None)
            self._lifespan = None


@pytest.fixture
def control_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", reconcile_interval=0.2)


@pytest.fixture
def atom(
    control_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run `atom ARGS` against the real app; return (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args), transport=LifespanTransport(control_settings))
        out, err = capsys.readouterr()
        return code, out, err

    return run
