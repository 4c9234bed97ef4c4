"""The planner: runtime pattern -> adapter, per-space and global defaults; unconfigured patterns refused."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from control import schemas as s
from control.dispatch.planner import place
from control.errors import InvalidSpec
from control.settings import Settings
from tests.control.factory import LAMP, SP, define_node, ok


def _spec(pattern: str | None) -> s.TaskSpec:
    si = None if pattern is None else {"siName": "x", "siRuntimePattern": pattern}
    return s.TaskSpec.model_validate(
        {
            "runId": 1,
            "nodeName": "n",
            "operator": {
                "operatorName": "o",
                "operatorRuntimeType": "TRAIN",
                "moduleName": "m",
                "executeObject": "C",
            },
            "serviceInfo": si,
        }
    )


def test_the_pattern_names_the_adapter(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    both = ("local", "ray")
    assert place(settings, space="default", spec=_spec("COMMAND"), available=both).adapter == "local"
    assert place(settings, space="default", spec=_spec("RAY"), available=both).adapter == "ray"
    assert place(settings, space="default", spec=_spec(None), available=both).adapter == "local"


def test_space_and_global_defaults(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        dispatch_default_pattern="RAY",
        dispatch_space_patterns={"batch": "COMMAND"},
        dispatch_space_adapters={"research": {"COMMAND": "ray"}},
    )
    both = ("local", "ray")
    assert place(settings, space="other", spec=_spec(None), available=both).pattern == "RAY"
    assert place(settings, space="batch", spec=_spec(None), available=both).adapter == "local"
    assert place(settings, space="research", spec=_spec("COMMAND"), available=both).adapter == "ray"
    assert place(settings, space="other", spec=_spec("COMMAND"), available=both).adapter == "local"


@pytest.fixture
def settings(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Control's settings on a host with no Kubernetes cluster configured."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return Settings(home=tmp_path / "home", db_url=db_url, heartbeat_timeout=30, reconcile_interval=0.2)


def test_an_unconfigured_pattern_is_refused_with_the_setting_to_change(tmp_path: Path) -> None:
    # KUBERNETES maps to the kubernetes adapter, which control builds only where it finds a cluster
    with pytest.raises(InvalidSpec) as err:
        place(Settings(home=tmp_path), space="default", spec=_spec("KUBERNETES"), available=("local", "ray"))
    assert "runtime pattern KUBERNETES is not configured" in str(err.value)
    assert "ATOM_K8S_KUBECONFIG" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InvalidSpec) as err:
        settings = Settings(home=tmp_path, dispatch_adapters={"COMMAND": "local"})
        place(settings, space="default", spec=_spec("RAY"), available=("local", "ray"))
    assert "runtime pattern RAY is not configured" in str(err.value)
    assert "ATOM_DISPATCH_ADAPTERS" in str(err.value)
    with pytest.raises(InvalidSpec) as err:
        settings = Settings(home=tmp_path, dispatch_adapters={"COMMAND": "kubernetes"})
        place(settings, space="default", spec=_spec("COMMAND"), available=("local", "ray"))
    assert "'kubernetes' adapter" in str(err.value)


async def test_start_refuses_an_unconfigured_pattern_and_stores_no_run(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    d = await define_node(api, data_dir=str(tmp_path))
    await ok(await api.patch(f"{SP}/service-infos/small", json={"siRuntimePattern": "KUBERNETES"}))
    resp = await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]})
    assert resp.status_code == 422, resp.text
    msg = resp.json()["msg"]
    assert "runtime pattern KUBERNETES is not configured" in msg and "ATOM_K8S_KUBECONFIG" in msg
    assert "\n" not in msg
    page = await ok(await api.get("/api/v1/runs"))
    assert page["total"] == 0
