"""`atom quickstart`'s steps against a fake control and a fake V2 service (the real flow: tests/e2e)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.cli.main import main
from tests.control.cli.conftest import run_record

SERVICE = {
    "id": 5, "serviceName": "reasoning-quickstart-1", "spaceId": 1, "modelName": "quickstart",
    "modelVersion": "1",
    "runtimeId": 1, "replicas": 1, "endpoint": "http://127.0.0.1:18500", "trafficWeight": 100,
    "state": "starting", "reason": "", "adapter": "local", "createdAt": "2026-01-02T10:02:00",
}  # fmt: skip


class FakeStack:
    """Just enough of control (a store of named resources, one run, one service) and of a V2 server."""

    def __init__(self, run_states: list[str]) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.runs = iter(run_states)
        self.run_state = "queued"
        self.service_polls = 0
        self.infer_body: dict[str, Any] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        body = json.loads(request.content) if request.content else None
        if m := re.fullmatch(r"/api/v1/spaces/default/([a-z-]+)/([a-z0-9-]+)", path):
            key = (m[1], m[2])
            if method == "GET":
                found = self.items.get(key)
                return httpx.Response(200, json=found) if found else httpx.Response(404, json={"msg": "no"})
            if method in ("PUT", "PATCH"):
                self.items[key] = {**self.items.get(key, {"id": next(self.ids)}), **body}
                return httpx.Response(200, json=self.items[key])
        if path == "/api/v1/spaces/default":
            return httpx.Response(200, json={"id": 1, "spaceName": "default", "description": ""})
        if path.endswith("/node/createNodeRelation"):
            return httpx.Response(
                200, json={"id": 1, "maxServiceInfoId": None, "minServiceInfoId": None, **body}
            )
        if path.endswith("/taskEvent/startNodeTask"):
            return httpx.Response(200, json={"runIds": [1], "msg": "started"})
        if path == "/api/v1/runs/1":
            self.run_state = next(self.runs, self.run_state)
            done = "2026-01-02T10:00:12" if self.run_state in ("succeeded", "failed") else None
            reason = "operator raised ValueError" if self.run_state == "failed" else ""
            return httpx.Response(200, json=run_record(1, nodeName="quickstart", state=self.run_state,
                                                       finishedAt=done, reason=reason))  # fmt: skip
        if path == "/api/v1/runs/1/logs":
            return httpx.Response(200, json={"offset": 0, "nextOffset": 0, "text": "", "eof": True})
        if path == "/api/v1/services":
            self.service_polls += 1
            return httpx.Response(
                200, json=[{**SERVICE, "state": "ready" if self.service_polls > 1 else "starting"}]
            )
        if path == "/v2/models/quickstart/infer":
            self.infer_body = body
            n = body["inputs"][0]["shape"][0]
            outputs = [{"name": "prediction", "shape": [n], "datatype": "INT64", "data": [1] * n}]
            return httpx.Response(200, json={"model_name": "quickstart", "outputs": outputs})
        return httpx.Response(404, json={"msg": f"fake: no {method} {path}"})


def test_quickstart_applies_trains_waits_and_predicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeStack(["pending", "running", "running", "succeeded"])
    code = main(["quickstart", "--rows", "100", "--epochs", "2", "--dir", str(tmp_path)],
                transport=httpx.MockTransport(fake))  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert fake.items["operators", "quickstart"]["operatorEpoch"] == 2
    assert fake.items["connections", "quickstart"]["connectAddr"] == str(tmp_path.resolve())
    assert fake.items["nodes", "quickstart"]["nodeStatus"] == "EDIT_FINISH"
    assert fake.infer_body is not None
    assert [i["name"] for i in fake.infer_body["inputs"]] == [f"f{i}" for i in range(8)]  # no label sent
    assert "✓ run 1 quickstart succeeded" in out
    assert re.search(r"^ROW\s+PREDICTION\s+TRUE", out, re.M)
    for timing in (
        "start -> running",
        "training (running -> succeeded)",
        "succeeded -> service ready",
        "total",
    ):
        assert timing in out
    assert (tmp_path / "train.csv").exists() and (tmp_path / "quickstart.yaml").exists()


def test_quickstart_exits_1_with_the_runs_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeStack(["pending", "failed"])
    code = main(["quickstart", "--rows", "50", "--dir", str(tmp_path)], transport=httpx.MockTransport(fake))
    _, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines()[0] == "run 1 failed: operator raised ValueError"
    assert fake.infer_body is None
