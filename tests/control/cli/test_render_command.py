"""`atom render node|service NAME` prints control's YAML as it is (against a fake control)."""

from __future__ import annotations

import pytest

from tests.control.cli.conftest import FakeControl
from tests.control.cli.test_commands import API, atom

YAML = "# `atom render node train` ...\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: train-7\n"


def test_render_node_prints_the_yaml_verbatim(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on(
        "GET", f"{API}/spaces/team-a/nodes/train/render", {"kind": "run", "name": "train-7", "yaml": YAML}
    )
    code, out, err = atom(fake, capsys, "--space", "team-a", "render", "node", "train")
    assert (code, out, err) == (0, YAML, "")


def test_render_service_by_name(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    service = {
        "id": 4,
        "serviceName": "iris-2",
        "spaceId": 1,
        "modelName": "iris",
        "modelVersion": "2",
        "runtimeId": 9,
        "replicas": 1,
        "endpoint": None,
        "trafficWeight": 100,
        "state": "ready",
        "adapter": "kubernetes",
        "createdAt": "2026-01-02T10:00:00",
    }
    fake.on("GET", f"{API}/services", [service])
    fake.on("GET", f"{API}/services/4/render", {"kind": "service", "name": "serving-iris-2", "yaml": YAML})
    code, out, err = atom(fake, capsys, "render", "service", "iris-2")
    assert (code, out, err) == (0, YAML, "")


def test_render_of_an_unknown_node_is_one_line(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = atom(fake, capsys, "render", "node", "nope")
    assert code == 1 and out == "" and err.startswith("error: ") and err.count("\n") == 1
