"""`atom render`'s API: the YAML the Kubernetes adapter would apply for a node's next run and for a
service, validated offline against the official schema (kubernetes-validate); and the examples
under docker/k8s/, which must be what Atom renders for docker/k8s/sample.yaml (set
ATOM_TEST_REGENERATE=1 to rewrite them after a deliberate change)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import select

from control import launch
from control import schemas as s
from control.api.app import create_app
from control.cli._spec import load_spec
from control.cli.apply import apply_spec
from control.client import AsyncControlClient
from control.dispatch import k8s_manifests as km
from control.render import render_node, render_service
from control.settings import Settings
from control.store import models as m

pytestmark = pytest.mark.k8s
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docker" / "k8s"
SCHEMAS = ("1.33.0", kubernetes_validate.latest_version())


def example_settings(home: Path) -> Settings:
    return Settings(
        home=home,
        k8s_namespace_prefix="atom-",
        k8s_control_url="http://atom-control.atom-system.svc:8470",
        k8s_image="registry.example.com/atom/agent:0.1",
        k8s_service_account="atom-agent",
    )


@pytest.fixture
async def control(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, AsyncControlClient]]:
    app = create_app(example_settings(tmp_path / "home"), reconcile=False)
    async with (
        app.router.lifespan_context(app),
        AsyncControlClient("http://control", transport=httpx.ASGITransport(app=app)) as client,
    ):
        await apply_spec(client, load_spec([EXAMPLES / "sample.yaml"], "default"))
        yield app, client


def trained(app: FastAPI) -> int:
    """A finished run of iris-train that registered version 1, and the service it deploys (its id)."""
    orch = app.state.orchestrator
    with orch.store.transaction() as ses:
        node = ses.scalar(select(m.Node).where(m.Node.node_name == "iris-train"))
        assert node is not None
        spec = launch.build_task_spec(session=ses, node=node, event=s.TaskEvent(task_id=node.id))
        run, _ = launch.new_runtime(
            session=ses,
            spec=spec,
            space_id=node.space_id,
            node_id=node.id,
            adapter="kubernetes",
            reason="test",
        )
        run.state = s.RunState.SUCCEEDED.value
        assert spec.model is not None and spec.model.model_id is not None
        ses.add(
            m.ModelVersion(
                model_id=spec.model.model_id,
                model_version="1",
                model_address="file:///mnt/datasets/models/iris/1/model.tar.gz",
                runtime_id=run.id,
                serving_object="runtime_agent.examples.train_example:TabularReasoning",
            )
        )
        ses.flush()
        service = orch._plan_service(ses, run)
        assert service is not None
        return int(service.id)


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def validated(docs: list[dict[str, Any]]) -> int:
    for doc in docs:
        for version in SCHEMAS:
            kubernetes_validate.validate(doc, version, strict=True)
    return len(docs) * len(SCHEMAS)


async def test_render_node_shows_the_next_runs_objects_and_no_token(
    control: tuple[FastAPI, AsyncControlClient], tmp_path: Path
) -> None:
    _, client = control
    out = await client.render_node("research", "iris-train")
    assert (out["kind"], out["name"], out["namespace"]) == ("run", "iris-train-1", "atom-research")
    docs = documents(out["yaml"])
    assert [d["kind"] for d in docs] == ["Namespace", "Secret", "Job"]
    assert validated(docs) == 6
    secret, job = docs[1], docs[2]
    assert secret["stringData"] == {"token": km.TOKEN_PLACEHOLDER}
    assert job["spec"]["backoffLimit"] == 2 and job["spec"]["activeDeadlineSeconds"] == 7200
    agent = job["spec"]["template"]["spec"]["containers"][0]
    assert agent["image"] == "registry.example.com/atom/agent-gpu:0.1"  # the service info's siImageName
    assert agent["resources"]["limits"] == {"cpu": "4", "memory": "16384Mi", "nvidia.com/gpu": "1"}
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "atom-agent"
    assert out["yaml"].startswith("# `atom render node iris-train` (space research)")
    # nothing was started, stored or made
    assert (await client.list_runs()).total == 0
    assert not (tmp_path / "home" / "runs").exists()


async def test_render_service_shows_its_deployment_service_hpa_and_secret(
    control: tuple[FastAPI, AsyncControlClient],
) -> None:
    app, client = control
    service_id = trained(app)
    out = await client.render_service(service_id)
    assert (out["kind"], out["name"]) == ("service", "serving-iris-1")
    docs = documents(out["yaml"])
    assert [d["kind"] for d in docs] == [
        "Namespace",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    ]
    assert validated(docs) == 10
    hpa = docs[4]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 3)
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu", "memory"]
    assert docs[1]["stringData"] == {"token": km.TOKEN_PLACEHOLDER}


async def test_render_of_an_unknown_node_is_404(control: tuple[FastAPI, AsyncControlClient]) -> None:
    _, client = control
    with pytest.raises(Exception, match="node 'nope' does not exist in space 'research'") as caught:
        await client.render_node("research", "nope")
    assert getattr(caught.value, "status_code", None) == 404


async def test_the_examples_under_docker_k8s_are_what_atom_renders(
    control: tuple[FastAPI, AsyncControlClient],
) -> None:
    app, _ = control
    orch = app.state.orchestrator
    with orch.store.transaction() as ses:  # a clean control environment: nothing of this host's
        run = render_node(ses, orch.settings, space="research", name="iris-train", environ={}).yaml
    service_id = trained(app)
    with orch.store.transaction() as ses:
        service = render_service(ses, orch.settings, service_id=service_id, environ={}).yaml
    for name, text in (("run.yaml", run), ("service.yaml", service)):
        path = EXAMPLES / name
        if os.environ.get("ATOM_TEST_REGENERATE") == "1":
            path.write_text(text)
        assert path.read_text() == text, (
            f"{path} drifted from what Atom renders: ATOM_TEST_REGENERATE=1 rewrites it"
        )
        validated(documents(text))
