"""`atom runs`, `logs`, `describe`, `start`, `stop`, `services`, `predict` against a fake control."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from control.cli.main import main
from tests.control.cli.conftest import FakeControl, run_record

API = "/api/v1"
LAMP = "/lamp/atom/service/operator"


def atom(fake: FakeControl, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args), transport=fake.transport)
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_table(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    done = run_record(2, state="succeeded", progress=1.0, stage=None, finishedAt="2026-01-02T10:01:32")
    fake.on("GET", f"{API}/runs", {"items": [run_record(1), done], "total": 5})
    code, out, err = atom(
        fake, capsys, "--space", "team-a", "runs", "--node", "train-tabular", "--limit", "2"
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID",
        "NODE",
        "TYPE",
        "ADAPTER",
        "STATE",
        "ATTEMPT",
        "STARTED",
        "DURATION",
        "PROGRESS",
    ]
    assert lines[1].split()[:6] == ["1", "train-tabular", "TRAIN", "local", "running", "1"]
    assert "42% epoch 2/5" in lines[1]
    assert lines[2].split()[:5] == ["2", "train-tabular", "TRAIN", "local", "succeeded"]
    assert "1m30s" in lines[2] and "100%" in lines[2]
    assert "2 of 5 runs" in out
    (request,) = fake.requests
    assert dict(request.url.params) == {
        "space": "team-a",
        "node": "train-tabular",
        "limit": "2",
        "offset": "0",
    }


def test_runs_empty_and_watch(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("GET", f"{API}/runs", {"items": [], "total": 0})
    code, out, err = atom(fake, capsys, "runs", "--state", "failed")
    assert (code, out) == (0, "")
    assert err == "no runs in space 'default' matching the filters\n"

    fake.requests.clear()
    fake.on("GET", f"{API}/runs", {"items": [run_record(1)], "total": 1},
            {"items": [run_record(1, state="succeeded")], "total": 1})  # fmt: skip
    code, out, _ = atom(fake, capsys, "runs", "-w", "--interval", "0", "--watch-count", "3")
    assert code == 0
    assert len(fake.requests) == 3
    assert "succeeded" in out


def test_runs_state_colour(fake: FakeControl) -> None:
    from control.cli import render
    from control.schemas import RunOut

    runs = [RunOut.model_validate(run_record(1, state=s)) for s in ("failed", "succeeded")]
    table = render.runs_table(runs)
    styles = [cell.style for cell in table.columns[4].cells]  # type: ignore[union-attr]
    assert styles == [render.STATE_STYLES["failed"], render.STATE_STYLES["succeeded"]]


def test_logs_pages_by_offset(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    path = f"{API}/runs/7/logs"

    def page(request: httpx.Request) -> httpx.Response:
        text = "line one\nline two\nline three\n"
        offset, limit = int(request.url.params["offset"]), 9
        chunk = text[offset : offset + limit]
        return httpx.Response(200, json={"offset": offset, "nextOffset": offset + len(chunk), "text": chunk,
                                         "eof": offset + len(chunk) >= len(text)})  # fmt: skip

    fake.on("GET", path, page)
    code, out, err = atom(fake, capsys, "logs", "7")
    assert (code, out, err) == (0, "line one\nline two\nline three\n", "")
    assert [int(r.url.params["offset"]) for r in fake.requests] == [0, 9, 18, 27, 29]


def test_logs_follow_waits_for_eof(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    path = f"{API}/runs/7/logs"
    fake.on(
        "GET",
        path,
        {"offset": 0, "nextOffset": 6, "text": "start\n", "eof": False},
        {"offset": 6, "nextOffset": 6, "text": "", "eof": False},  # nothing new yet: -f keeps waiting
        {"offset": 6, "nextOffset": 11, "text": "done\n", "eof": True},
        {"offset": 11, "nextOffset": 11, "text": "", "eof": True},
    )
    code, out, _ = atom(fake, capsys, "logs", "7", "-f", "--interval", "0")
    assert (code, out) == (0, "start\ndone\n")
    assert len(fake.requests) == 4

    fake.requests.clear()
    fake.on("GET", path, {"offset": 0, "nextOffset": 0, "text": "", "eof": False})
    assert atom(fake, capsys, "logs", "7")[0] == 0  # without -f: what is there now, then stop
    assert len(fake.requests) == 1


def test_describe_run_shows_history_and_metrics(
    fake: FakeControl, capsys: pytest.CaptureFixture[str]
) -> None:
    history = [
        {"fromState": None, "toState": "queued", "reason": "startNodeTask", "at": "2026-01-02T10:00:00"},
        {
            "fromState": "queued",
            "toState": "pending",
            "reason": "started by local adapter",
            "at": "2026-01-02T10:00:01",
        },
        {
            "fromState": "pending",
            "toState": "failed",
            "reason": "heartbeat lost",
            "at": "2026-01-02T10:03:00",
        },
    ]
    fake.on("GET", f"{API}/runs/4", run_record(4, state="failed", reason="heartbeat lost", history=history))
    at = "2026-01-02T10:01:00"
    points = [{"step": s, "name": "loss", "value": v, "at": at} for s, v in [(1, 0.9), (2, 0.5), (3, 0.6)]]
    fake.on("GET", f"{API}/runs/4/metrics", points)
    code, out, _ = atom(fake, capsys, "describe", "run", "4")
    assert code == 0
    assert "reason    heartbeat lost" in out
    assert "state history" in out and "started by local adapter" in out
    loss = next(line for line in out.splitlines() if line.startswith("loss"))
    assert loss.split() == ["loss", "0.6", "0.5", "0.9", "3", "3"]


def test_describe_run_shows_where_it_went(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    ray = {
        "resources": {"cpu": 2, "gpu": 1, "memoryMib": 4096, "gpuMemoryMib": 0, "nodes": 1},
        "workers": 1,
        "granted": {"entrypoint": {"CPU": 2.0, "GPU": 1.0, "memory": 4096 * 1024 * 1024}},
    }
    record = run_record(5, state="running", adapter="ray", externalId="atom-run-5-1a2b3c4d", dispatch=ray)
    fake.on("GET", f"{API}/runs/5", record)
    fake.on("GET", f"{API}/runs/5/metrics", [])
    code, out, _ = atom(fake, capsys, "describe", "run", "5")
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert code == 0
    assert "adapter ray atom-run-5-1a2b3c4d" in lines
    assert "resources 2 CPU, 1 GPU, 4096 MiB; 1 training worker(s)" in lines
    assert "granted Ray job entrypoint: 2 CPU, 1 GPU, 4096 MiB" in lines

    local = {"resources": {"cpu": 1, "gpu": 1, "memoryMib": 1024, "nodes": 1}, "workers": 1}
    local["granted"] = {"gpus": ["1"], "cpus": [0], "memoryMib": 1024}
    fake.on("GET", f"{API}/runs/6", run_record(6, state="running", externalId="pid:42:7", dispatch=local))
    fake.on("GET", f"{API}/runs/6/metrics", [])
    out = atom(fake, capsys, "describe", "run", "6")[1]
    assert "granted GPUs 1; cores 0; memory 1024 MiB" in " ".join(out.split())

    waiting = {"waiting": "waiting for 1 GPU (0 free)"}
    fake.on("GET", f"{API}/runs/8", run_record(8, state="pending", dispatch=waiting))
    fake.on("GET", f"{API}/runs/8/metrics", [])
    out = atom(fake, capsys, "describe", "run", "8")[1]
    assert "waiting waiting for 1 GPU (0 free)" in " ".join(out.split())


def test_start_node_with_env_and_params(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("GET", f"{API}/spaces/default/nodes/train-tabular", {"id": 3, "nodeName": "train-tabular"})
    fake.on("POST", f"{LAMP}/taskEvent/startNodeTask", {"runIds": [11], "msg": "started"})
    code, out, _ = atom(fake, capsys, "start", "node", "train-tabular", "--env", "A=1", "--param", "lr=0.1")
    assert code == 0
    assert out == "started node train-tabular: run 11\n"
    (body,) = fake.bodies("POST", f"{LAMP}/taskEvent/startNodeTask")
    assert body == {"taskId": 3, "taskType": "NODE", "envs": {"A": "1"}, "runParameter": {"lr": "0.1"}}


def test_start_wait_exits_1_with_reason_and_log_tail(
    fake: FakeControl, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.on("GET", f"{API}/spaces/default/nodes/n", {"id": 3})
    fake.on("POST", f"{LAMP}/taskEvent/startNodeTask", {"runIds": [11]})
    fake.on("GET", f"{API}/runs/11", run_record(11, state="pending"),
            run_record(11, state="failed", reason="operator raised ValueError: bad label"))  # fmt: skip
    fake.on("GET", f"{API}/runs/11/logs",
            {"offset": 0, "nextOffset": 30, "text": "loading\nTraceback\nValueError\n", "eof": True},
            {"offset": 30, "nextOffset": 30, "text": "", "eof": True})  # fmt: skip
    code, out, err = atom(fake, capsys, "start", "node", "n", "--wait")
    assert code == 1
    assert "✗ run 11 train-tabular failed" in out
    assert err.splitlines()[0] == "run 11 failed: operator raised ValueError: bad label"
    assert err.splitlines()[-1] == "  ValueError"


def test_start_wait_succeeds(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("GET", f"{API}/spaces/default/nodes/n", {"id": 3})
    fake.on("POST", f"{LAMP}/taskEvent/startNodeTask", {"runIds": [11]})
    fake.on(
        "GET",
        f"{API}/runs/11",
        run_record(11),
        run_record(11, state="succeeded", finishedAt="2026-01-02T10:00:12"),
    )
    code, out, err = atom(fake, capsys, "start", "node", "n", "--wait")
    assert (code, err) == (0, "")
    assert "✓ run 11 train-tabular succeeded in 10.0s" in out


def test_stop(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("POST", f"{API}/runs/5/stop", run_record(5, state="stopped", reason="no longer needed"))
    code, out, _ = atom(fake, capsys, "stop", "5", "--reason", "no longer needed")
    assert (code, out) == (0, "run 5: stopped (no longer needed)\n")
    assert fake.bodies("POST", f"{API}/runs/5/stop") == [{"reason": "no longer needed"}]


SERVICE = {
    "id": 2, "serviceName": "reasoning-tabular-1", "spaceId": 1, "modelName": "tabular", "modelVersion": "1",
    "runtimeId": 11, "replicas": 1, "endpoint": "http://127.0.0.1:18500", "trafficWeight": 100,
    "state": "ready", "reason": "", "adapter": "local", "createdAt": "2026-01-02T10:02:00",
}  # fmt: skip


def test_services_table(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("GET", f"{API}/services", [SERVICE])
    code, out, _ = atom(fake, capsys, "services")
    assert code == 0
    assert out.splitlines()[0].split() == ["ID", "NAME", "MODEL", "ENDPOINT", "STATE", "WEIGHT", "RESTARTS",
                                          "ACCESS"]  # fmt: skip
    assert out.splitlines()[1].split() == ["2", "reasoning-tabular-1", "tabular@1", "http://127.0.0.1:18500",
                                          "ready", "100%", "0", "token"]  # fmt: skip


def test_services_stop_by_name_stops_every_live_one_of_it(
    fake: FakeControl, capsys: pytest.CaptureFixture[str]
) -> None:
    older = {**SERVICE, "id": 1, "state": "stopped"}
    grey = {**SERVICE, "id": 3, "serviceName": "reasoning-tabular-2", "modelVersion": "2"}
    grey["state"] = "starting"
    other = {**SERVICE, "id": 4, "serviceName": "reasoning-iris-1", "modelName": "iris"}
    fake.on("GET", f"{API}/services", [older, SERVICE, grey, other])
    for sid in (2, 3, 4):
        fake.on("POST", f"{API}/services/{sid}/stop", {**SERVICE, "id": sid, "state": "stopped"})
    code, out, _ = atom(fake, capsys, "services", "stop", "tabular")
    assert code == 0
    assert out.splitlines() == [
        "service reasoning-tabular-1 (id 2) stopped",
        "service reasoning-tabular-2 (id 3) stopped",
    ]
    code, out, _ = atom(fake, capsys, "services", "stop", "--all")
    assert code == 0 and len(out.splitlines()) == 3  # the stopped one is left alone
    stops = [r.url.path for r in fake.requests if r.method == "POST"]
    assert stops == [f"{API}/services/{i}/stop" for i in (2, 3, 2, 3, 4)]


def test_services_traffic_commands(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    grey = {
        **SERVICE,
        "id": 3,
        "serviceName": "reasoning-tabular-2",
        "modelVersion": "2",
        "trafficWeight": 10,
    }
    fake.on("GET", f"{API}/services", [SERVICE, grey])
    split = [{**SERVICE, "trafficWeight": 70}, {**grey, "trafficWeight": 30, "mirrorPercent": 0}]
    fake.on("PUT", f"{API}/services/3/traffic", split)
    code, out, _ = atom(fake, capsys, "services", "weight", "reasoning-tabular-2", "30%")
    assert code == 0 and out.splitlines() == ["reasoning-tabular-1: 70%", "reasoning-tabular-2: 30%"]
    assert fake.bodies("PUT", f"{API}/services/3/traffic") == [{"trafficWeight": 30}]
    fake.on("POST", f"{API}/services/3/promote", {**grey, "trafficWeight": 100})
    code, out, _ = atom(fake, capsys, "services", "promote", "reasoning-tabular-2")
    assert (code, out) == (
        0,
        "service reasoning-tabular-2 takes every request; the model's other versions are stopped\n",
    )
    fake.on("POST", f"{API}/services/3/rollback", {**SERVICE, "trafficWeight": 100})
    code, out, _ = atom(fake, capsys, "services", "rollback", "reasoning-tabular-2")
    assert (code, out) == (0, "service reasoning-tabular-2 stopped; reasoning-tabular-1 takes its requests\n")
    for bad in ("150", "x"):
        code, _, err = atom(fake, capsys, "services", "mirror", "reasoning-tabular-2", bad)
        assert code == 2 and "give a percentage from 0 to 100" in err


def test_services_stop_needs_a_name_or_all(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = atom(fake, capsys, "services", "stop")
    assert code == 2 and "name one service (id or name), or give --all" in err
    code, _, err = atom(fake, capsys, "services", "stop", "x", "--all")
    assert code == 2


def test_predict_sends_a_v2_request_and_shows_outputs(
    fake: FakeControl, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake.on("GET", f"{API}/services", [SERVICE])

    def infer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        n = body["inputs"][0]["shape"][0]
        return httpx.Response(200, json={"model_name": "tabular", "outputs": [
            {"name": "label", "shape": [n], "datatype": "INT64", "data": [1] * n},
            {"name": "proba", "shape": [n, 2], "datatype": "FP64", "data": [0.2, 0.8] * n},
        ]})  # fmt: skip

    fake.on("POST", "/v2/models/tabular/infer", infer)
    csv = tmp_path / "rows.csv"
    csv.write_text("f0,f1,label\n0.5,1.5,1\n-1.0,2.0,0\n")
    code, out, err = atom(fake, capsys, "predict", "tabular", "--csv", str(csv), "--label", "label")
    assert (code, err) == (0, "")
    (body,) = fake.bodies("POST", "/v2/models/tabular/infer")
    assert body == {
        "inputs": [
            {"name": "f0", "shape": [2], "datatype": "FP64", "data": [0.5, -1.0]},
            {"name": "f1", "shape": [2], "datatype": "FP64", "data": [1.5, 2.0]},
        ],
        "parameters": {"content_type": "pd"},
    }
    lines = out.splitlines()
    assert lines[0].split() == ["ROW", "LABEL", "PROBA", "TRUE"]
    assert lines[1].split() == ["0", "1", "[0.2,", "0.8]", "1", "✓"]
    assert lines[2].split() == ["1", "1", "[0.2,", "0.8]", "0", "✗"]


def test_predict_json_records_by_service_id(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("GET", f"{API}/services/2", SERVICE)
    fake.on("POST", "/v2/models/tabular/infer", {"outputs": [{"name": "y", "shape": [1], "datatype": "FP64",
                                                              "data": [0.25]}]})  # fmt: skip
    code, out, _ = atom(fake, capsys, "predict", "2", "--json", '{"f0": 0.5, "f1": 3}')
    assert code == 0
    assert out.splitlines()[1].split() == ["0", "0.25"]
    (body,) = fake.bodies("POST", "/v2/models/tabular/infer")
    assert [(i["name"], i["datatype"], i["data"]) for i in body["inputs"]] == [
        ("f0", "FP64", [0.5]),
        ("f1", "INT64", [3]),
    ]

    code, out, _ = atom(fake, capsys, "predict", "2", "--json", '[{"f0": 0.5}]', "--raw")
    assert code == 0
    assert json.loads(out)["outputs"][0]["data"] == [0.25]


def test_predict_falls_back_to_the_service_name(
    fake: FakeControl, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.on("GET", f"{API}/services/2", SERVICE)
    reply = {"outputs": [{"name": "y", "shape": [1], "datatype": "INT64", "data": [1]}]}
    fake.on("POST", "/v2/models/reasoning-tabular-1/infer", reply)
    v2 = '{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}'
    code, out, _ = atom(fake, capsys, "predict", "2", "--json", v2)
    assert code == 0 and json.loads(out) == reply  # a raw V2 body gets the raw response
    assert [r.url.path for r in fake.requests[1:]] == [
        "/v2/models/tabular/infer",
        "/v2/models/reasoning-tabular-1/infer",
    ]
