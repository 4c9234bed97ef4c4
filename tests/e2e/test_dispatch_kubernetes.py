"""A whole run through the Kubernetes adapter, as far as this machine can take it.

Stand-ins, each named because no Kubernetes cluster can run here:
- the API server: kmock behind the official `kubernetes` client (tests/k8s_sim/apiserver.py adds
  the store, resourceVersions, selectors, watches from a version, the status subresource, the
  garbage collector and the official schema); control's adapter reaches it through a kubeconfig
  (`ATOM_K8S_KUBECONFIG`);
- the scheduler, kubelets and the Job / ReplicaSet / Deployment controllers: the simulator of
  tests/k8s_sim, which watches what the adapter creates through the same client;
- the containers: the test suite's Docker engine with the agent image built from this tree (host
  networking), or, where no engine can start, local processes of `atom-runtime` (then the pod's
  mounts are path translations and `siMemory` a memory cgroup).

What is real: control, the adapter, the agent and the inference service, the manifests as
applied, every status the adapter reads (written the way a kubelet and the controllers write it).

The main test: a run's Job runs the agent, which fetches its spec and its operator code from
control over loopback, reads FILE sources from a hostPath volume (environmentConf.volumes; the
directory is opened to the image's non-root user as an administrator would), trains, writes the
sink and the model and calls back; the auto-deployed service becomes a Deployment + Service whose
pod answers an Open Inference Protocol request on the port control picked (a free port of this
host: pods share the host's network here, as hostNetwork pods do); a second run, stopped, gets
SIGTERM in its pod. The second test: an image that is not there, a run over its memory limit and
a pod no node can take, through the adapter, in one control.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kubernetes import client as k8s
from kubernetes import watch

from control.cli.main import main
from control.client import AsyncControlClient
from control.schemas import TaskEvent
from control.settings import Settings
from tests.e2e.conftest import (
    LiveControl,
    infer_test_rows,
    make_tabular,
    run_state,
    service_key,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(600)]

ENDED = ("succeeded", "failed", "stopped")
PROCESS_IMAGE = "atom-agent:process"

SPEC = """
space: default
connections:
  - {{connectName: files, connectType: FILE, connectAddr: {project}/data}}
sources:
  - {{sourceName: train, connectionName: files, sourceType: source, operateExecute: train.csv}}
  - {{sourceName: test, connectionName: files, sourceType: test_source, operateExecute: test.csv}}
  - {{sourceName: predictions, connectionName: files, sourceType: sink, operateExecute: predictions.csv}}
operators:
  - operatorName: tabular
    operatorRuntimeType: TRAIN
    moduleName: {module}
    executeObject: Train
    codeMode: BUNDLE
    codeAddress: {project}/opcode
    deployType: AUTO_DEPLOY
    operatorEpoch: 2
    operatorConf: {{labelColumn: label, hidden: 16, lr: 0.05}}
    environmentConf: {{volumes: [{{name: project, hostPath: {{path: {project}}}, mountPath: {project}}}]}}
  - operatorName: waits
    operatorRuntimeType: PYTHON_DATA
    moduleName: {module}
    executeObject: Waits
    codeMode: BUNDLE
    codeAddress: {project}/opcode
    environmentConf: {{volumes: [{{name: project, hostPath: {{path: {project}}}, mountPath: {project}}}]}}
  - operatorName: picky
    operatorRuntimeType: PYTHON_DATA
    moduleName: {module}
    executeObject: Waits
    codeMode: BUNDLE
    codeAddress: {project}/opcode
    environmentConf: {{nodeSelector: {{atom.dev/pool: a100}}}}
models: [{{modelName: tabular, connectionName: files}}]
serviceInfos:
  - {{siName: pods, siRuntimePattern: KUBERNETES, siCpu: 1, siMemory: 2048}}
  - {{siName: tiny, siRuntimePattern: KUBERNETES, siCpu: 1, siMemory: 64}}
  - {{siName: missing, siRuntimePattern: KUBERNETES, siCpu: 1, siMemory: 512,
      siImageName: "atom-no-such-image:0"}}
nodes:
  - nodeName: train-in-k8s
    operatorRuntimeType: TRAIN
    nodeStatus: EDIT_FINISH
    relation: {{operator: tabular, sources: [train, test, predictions], model: tabular, serviceInfo: pods}}
  - nodeName: wait-in-k8s
    operatorRuntimeType: PYTHON_DATA
    nodeStatus: EDIT_FINISH
    relation: {{operator: waits, sources: [train], serviceInfo: pods}}
  - nodeName: oom-in-k8s
    operatorRuntimeType: TRAIN
    nodeStatus: EDIT_FINISH
    relation: {{operator: tabular, sources: [train, test, predictions], model: tabular, serviceInfo: tiny}}
  - nodeName: no-image-in-k8s
    operatorRuntimeType: PYTHON_DATA
    nodeStatus: EDIT_FINISH
    relation: {{operator: waits, sources: [train], serviceInfo: missing}}
  - nodeName: nowhere-in-k8s
    operatorRuntimeType: PYTHON_DATA
    nodeStatus: EDIT_FINISH
    relation: {{operator: picky, sources: [train], serviceInfo: pods}}
"""

OPERATORS = """
import asyncio
import json
import os

from runtime_agent.api import Operator
from runtime_agent.examples.train_example import TrainExample


class Train(TrainExample):
    def task_init_execute(self, ctx):
        ctx.logger.info("ENVNAMES %s", json.dumps(sorted(os.environ)))
        where = {k: os.environ.get(k) for k in ("ATOM_POD_NAME", "ATOM_POD_NAMESPACE", "ATOM_HOST_NAME")}
        ctx.logger.info("INSIDE %s", json.dumps(where))


class Waits(Operator):
    async def task_init_execute(self, ctx):
        ctx.logger.info("waiting to be stopped")
        while True:
            await asyncio.sleep(0.2)
"""


@pytest.fixture
def project() -> Iterator[Path]:
    """The spec, data and operator code, in a directory the pods' user may use (a hostPath)."""
    root = Path(tempfile.mkdtemp(prefix="atom-k8s-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _write_project(project: Path) -> str:
    module = f"k8s_ops_{uuid.uuid4().hex[:8]}"
    make_tabular(project / "data", rows=300)
    (project / "opcode").mkdir(parents=True)
    (project / "opcode" / f"{module}.py").write_text(textwrap.dedent(OPERATORS))
    (project / "spec.yaml").write_text(textwrap.dedent(SPEC.format(module=module, project=project)))
    for path in [project, *project.rglob("*")]:  # the image runs as its own user (uid 10001)
        path.chmod(0o777 if path.is_dir() else 0o666)
    return module


@pytest.fixture
def k8s_image(request: pytest.FixtureRequest, sim_engine: Any) -> str:
    return PROCESS_IMAGE if sim_engine is None else str(request.getfixturevalue("agent_image"))


@pytest.fixture
def sim(make_sim_cluster: Any) -> Any:
    """The simulated cluster; on processes the agent image's entrypoint is this tree's atom-runtime."""
    return make_sim_cluster(images={PROCESS_IMAGE: [str(Path(sys.executable).parent / "atom-runtime")]})


@pytest.fixture
def k8s_settings(live_settings: Settings, kubeconfig: Path, k8s_image: str, sim: Any) -> Settings:
    live_settings.k8s_kubeconfig = str(kubeconfig)
    live_settings.k8s_image = k8s_image
    live_settings.k8s_image_pull_policy = "IfNotPresent"
    live_settings.k8s_service_host = "127.0.0.1"  # the pods share this host's network
    return live_settings


def _objects(kube_client: Any) -> dict[str, list[str]]:
    """What the cluster holds of Atom's (Jobs, Deployments, Services, Secrets, pods), by kind."""
    core, batch, apps = k8s.CoreV1Api(kube_client), k8s.BatchV1Api(kube_client), k8s.AppsV1Api(kube_client)
    selector = "app.kubernetes.io/managed-by=atom"
    return {
        "jobs": [j.metadata.name for j in batch.list_job_for_all_namespaces(label_selector=selector).items],
        "deployments": [
            d.metadata.name for d in apps.list_deployment_for_all_namespaces(label_selector=selector).items
        ],
        "services": [
            s.metadata.name for s in core.list_service_for_all_namespaces(label_selector=selector).items
        ],
        "secrets": [
            s.metadata.name for s in core.list_secret_for_all_namespaces(label_selector=selector).items
        ],
        "live pods": [  # a finished Job keeps its ended pod, as on a cluster
            p.metadata.name
            for p in core.list_pod_for_all_namespaces(label_selector=selector).items
            if not p.status or p.status.phase not in ("Succeeded", "Failed")
        ],
    }


def _pod_history(kube_client: Any, selector: str) -> list[dict[str, Any]]:
    """Every version of the pods `selector` picks, oldest first (the stand-in keeps its event log)."""
    stream = watch.Watch().stream(
        k8s.CoreV1Api(kube_client).list_pod_for_all_namespaces,
        label_selector=selector,
        resource_version="1",
        timeout_seconds=1,
        deserialize=False,
    )
    return [event["object"] for event in stream]


async def _apply(url: str, project: Path) -> None:
    assert await asyncio.to_thread(main, ["--url", url, "apply", "-f", str(project / "spec.yaml")]) == 0


async def _start(client: AsyncControlClient, node: str, **envs: str) -> int:
    got = await client.get("default", "nodes", node)
    return (await client.start_node_task(TaskEvent(task_id=got["id"], envs=envs))).run_ids[0]


async def _service_ready(client: AsyncControlClient, run_id: int) -> Any:
    mine = [x for x in await client.list_services() if x.runtime_id == run_id]
    assert not mine or mine[0].state.value != "failed", mine[0].reason
    return mine[0] if mine and mine[0].state.value == "ready" else None


async def test_a_run_and_its_service_as_a_job_and_a_deployment_then_a_stopped_run(
    k8s_settings: Settings, kube_client: Any, project: Path
) -> None:
    _write_project(project)
    batch, apps = k8s.BatchV1Api(kube_client), k8s.AppsV1Api(kube_client)
    with LiveControl(k8s_settings) as live:
        async with AsyncControlClient(live.url) as client:
            await _apply(live.url, project)
            run_id = await _start(client, "train-in-k8s")
            run = await wait_for(
                lambda: run_state(client, run_id, ENDED), timeout=300, what="the Job's run to end"
            )
            assert run.state.value == "succeeded", run.reason
            job_name = f"train-in-k8s-{run_id}"
            assert run.adapter == "kubernetes" and run.external_id == f"job/default/{job_name}", (
                run.external_id
            )

            def job_complete() -> Any:  # the agent calls back before its pod ends and the Job completes
                got = kube_client.sanitize_for_serialization(batch.read_namespaced_job(job_name, "default"))
                return got if (got.get("status") or {}).get("succeeded") == 1 else None

            job = await wait_for(
                lambda: asyncio.to_thread(job_complete), timeout=60, what="the Job to complete"
            )
            env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["ATOM_RUN_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "token"
            assert "value" not in env["ATOM_RUN_TOKEN"]

            assert len(pd.read_csv(project / "data" / "predictions.csv")) == 60
            model = await client.get("default", "models", "tabular")
            assert [v["modelVersion"] for v in model["versions"]] == ["1"]
            log = (await client.run_logs(run_id, limit=1 << 20)).text
            inside = json.loads(re.search(r"INSIDE (\{.*?\})", log).group(1))  # type: ignore[union-attr]
            assert (
                inside["ATOM_POD_NAME"].startswith(f"{job_name}-")
                and inside["ATOM_POD_NAMESPACE"] == "default"
            )
            assert inside["ATOM_HOST_NAME"].startswith("sim-node-")
            names = json.loads(re.search(r"ENVNAMES (\[.*?\])", log).group(1))  # type: ignore[union-attr]
            assert "ATOM_DB_URL" not in names and {
                "ATOM_RUN_ID",
                "ATOM_RUN_TOKEN",
                "ATOM_MODEL_VERSION",
            } <= set(names)
            assert "code: BUNDLE atom-code://sha256:" in log

            service = await wait_for(
                lambda: _service_ready(client, run_id),
                timeout=180,
                what="the service's Deployment to be ready",
            )
            assert service.adapter == "kubernetes"

            def deployment_ready() -> Any:  # the kubelet's readiness probe may lag control's own check
                items = apps.list_namespaced_deployment("default").items
                return items if items and items[0].status and items[0].status.ready_replicas == 1 else None

            [deployment] = await wait_for(
                lambda: asyncio.to_thread(deployment_ready), timeout=30, what="the Deployment's ready replica"
            )
            assert (
                deployment.metadata.name == "serving-tabular-1"
            )  # seed 001: {type}-{model}-{version digits}
            resp = await infer_test_rows(
                service.endpoint,
                service.service_name,
                project / "data" / "test.csv",
                key=await service_key(live.url, service.id),
            )
            assert resp.status_code == 200, resp.text
            outputs = {o["name"]: o["data"] for o in resp.json()["outputs"]}
            # the answer names the model as the request did (here by the service's name)
            assert len(outputs["prediction"]) == 3 and resp.json()["model_name"] == service.service_name

            # a second run, stopped while it runs: its Job goes and SIGTERM reaches the agent
            second = await _start(client, "wait-in-k8s", ATOM_HEARTBEAT_INTERVAL="30")

            async def waiting() -> bool:
                return "waiting to be stopped" in (await client.run_logs(second, limit=1 << 20)).text

            await wait_for(waiting, timeout=180, what="the second run's operator to wait")
            stopped = await client.stop_run(second)
            assert stopped.state.value == "stopped"

            def ended_by_sigterm() -> Any:  # its Job deleted, the pod is deleted with grace: SIGTERM
                history = _pod_history(kube_client, f"atom.dev/run={second}")
                ends = [
                    cs["state"]["terminated"]
                    for pod in history
                    for cs in (pod.get("status") or {}).get("containerStatuses") or []
                    if (cs.get("state") or {}).get("terminated")
                ]
                deleted = any((pod.get("metadata") or {}).get("deletionTimestamp") for pod in history)
                return ends[-1] if ends and deleted else None

            end = await wait_for(
                lambda: asyncio.to_thread(ended_by_sigterm), timeout=60, what="the pod to end"
            )
            assert end["exitCode"] == 143, end  # the agent's exit code for a stop (SIGTERM handled)

            async def last_lines() -> bool:  # copied once the pod has ended, its follower done
                return "stopped by SIGTERM" in (await client.run_logs(second, limit=1 << 20)).text

            await wait_for(last_lines, timeout=60, what="the stopped run's last log lines")

            await client.stop_service(service.id)

            def nothing_running() -> bool:
                held = _objects(kube_client)
                return (
                    not held["live pods"]
                    and not held["deployments"]
                    and f"wait-in-k8s-{second}" not in held["jobs"]
                )

            try:
                await wait_for(lambda: asyncio.to_thread(nothing_running), timeout=90, what="the pods to go")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the cluster holds {_objects(kube_client)}") from None
            held = _objects(kube_client)
            assert held["services"] == [] and held["jobs"] == [job_name], (
                held
            )  # a finished Job stays, as on a cluster
            assert held["secrets"] == [f"{job_name}-token"], held  # owned by that Job: it goes with it
        live.kill_started()


async def test_an_image_not_there_a_run_over_its_memory_and_a_pod_no_node_takes(
    k8s_settings: Settings, kube_client: Any, project: Path
) -> None:
    _write_project(project)
    with LiveControl(k8s_settings) as live:
        async with AsyncControlClient(live.url) as client:
            await _apply(live.url, project)
            no_image = await _start(client, "no-image-in-k8s")
            oom = await _start(client, "oom-in-k8s")
            nowhere = await _start(client, "nowhere-in-k8s")

            run = await wait_for(  # within control's first heartbeat timeout (60 s): the pull
                lambda: run_state(client, no_image, ENDED),  # error ends it, not the silence
                timeout=45,
                what="the pull error",
            )
            assert run.state.value == "failed"
            assert run.reason.startswith("image atom-no-such-image:0 could not be pulled: "), run.reason

            run = await wait_for(lambda: run_state(client, oom, ENDED), timeout=180, what="the OOM kill")
            assert run.state.value == "failed"
            assert run.reason.startswith("out of memory (limit 64 MiB): the agent process was killed"), (
                run.reason
            )

            async def placed_nowhere() -> Any:
                got = await client.get_run(nowhere)
                return got if "0/3 nodes are available" in (got.reason or "") else None

            run = await wait_for(placed_nowhere, timeout=60, what="the unschedulable run's reason")
            assert run.state.value == "pending", (run.state, run.reason)
            assert "3 node(s) didn't match Pod's node affinity/selector" in run.reason, run.reason
            assert (await client.stop_run(nowhere)).state.value == "stopped"

            def cleared() -> bool:
                held = _objects(kube_client)
                return not held["live pods"] and not [
                    j for j in held["jobs"] if not j.startswith("oom-in-k8s-")
                ]

            await wait_for(
                lambda: asyncio.to_thread(cleared), timeout=60, what="the failed runs' objects to go"
            )
            held = _objects(kube_client)
            assert held["jobs"] in ([], [f"oom-in-k8s-{oom}"]), held
            assert sorted(held["secrets"]) == sorted(f"{j}-token" for j in held["jobs"]), (
                held
            )  # no orphan Secret
        live.kill_started()
