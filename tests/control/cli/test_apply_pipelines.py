"""`atom apply` of pipelines on the real app (SQLite and MariaDB): experiments, exams with schedules,
fan-out / fan-in, inputs, trigger rules, retries, caching and search spaces; idempotent; every bad
input refused before the first write with its field's path named, and refused by the API too."""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from control.cli._spec import SpecError, load_spec
from control.cli.apply import Outcome, apply_spec
from control.client import AsyncControlClient
from control.errors import ControlAPIError

SP = "/api/v1/spaces/team-p"
README = Path(__file__).resolve().parents[3] / "README.md"
KINDS = ("experiments", "exams", "connections", "sources", "operators", "models", "nodes")

PIPELINE = """
space: team-p
experiments:
  - {experimentName: churn, description: weekly churn model}
exams:
  - examName: weekly
    experiment: churn
    schedule: {cron: "0 3 * * 1", timezone: Europe/Berlin, concurrency: queue}
    nodes: [train, evaluate, report]
connections:
  - {connectName: files, connectType: FILE, connectAddr: ./data}
sources:
  - {sourceName: train, connectionName: files, sourceType: source, operateExecute: train.csv}
  - {sourceName: test, connectionName: files, sourceType: test_source, operateExecute: test.csv}
  - {sourceName: scores, connectionName: files, sourceType: sink, operateExecute: scores.csv}
operators:
  - operatorName: trainer
    moduleName: runtime_agent.examples.train_example
    executeObject: TrainExample
    searchConf:
      space:
        lr: {_type: loguniform, _value: [0.001, 0.1]}
        hidden: {_type: choice, _value: [16, 32]}
      metric: accuracy
      trials: 4
models:
  - {modelName: churn, connectionName: files}
nodes:
  - nodeName: train
    nodeStatus: EDIT_FINISH
    maxRetries: 2
    cacheable: true
    relation: {operator: trainer, sources: [train, test], model: churn, next: [evaluate, report]}
  - nodeName: evaluate
    nodeStatus: EDIT_FINISH
    inputs: {model: train.model}
    relation: {operator: trainer, sources: [test, scores], next: summary}
  - nodeName: report
    nodeStatus: EDIT_FINISH
    triggerRule: all_done
    relation: {operator: trainer, sources: [train], next: summary}
  - nodeName: summary
    exam: weekly
    nodeStatus: EDIT_FINISH
    triggerRule: one_failed
    inputs: {scores: evaluate.sink:scores, trained: train.model}
    relation: {operator: trainer, sources: [train]}
"""


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: what apply checks and writes is the client's work; the server-side refusals of
    each field are tested on both databases with their routes (test_retries, test_trials, ...)."""
    return f"sqlite:///{tmp_path / 'atom.db'}"


def write(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncControlClient]:
    async with AsyncControlClient("http://control", transport=httpx.ASGITransport(app=app)) as c:
        yield c


async def apply_text(client: AsyncControlClient, tmp_path: Path, text: str) -> list[Outcome]:
    return await apply_spec(client, load_spec([write(tmp_path, text)], "default"))


async def stored(client: AsyncControlClient) -> dict[str, list[str]]:
    """Names of the resources of space team-p that exist (apply makes the space itself first)."""
    if not any(sp["spaceName"] == "team-p" for sp in await client.list_spaces()):
        return {}
    from control.client import KINDS as NAMES

    found = {k: sorted(i[NAMES[k]] for i in await client.list("team-p", k)) for k in KINDS}
    return {k: v for k, v in found.items() if v}


async def test_a_pipeline_is_applied_and_a_second_apply_changes_nothing(
    client: AsyncControlClient, tmp_path: Path
) -> None:
    first = await apply_text(client, tmp_path, PIPELINE)
    assert [(o.kind, o.name, o.action) for o in first][:2] == [
        ("experiments", "churn", "created"),
        ("exams", "weekly", "created"),
    ]
    assert {o.action for o in first} == {"created"}
    assert (first[-1].kind, first[-1].name) == ("schedules", "weekly")

    exp = await client.get("team-p", "experiments", "churn")
    exam = await client.get("team-p", "exams", "weekly")
    assert (exam["experimentId"], exp["description"]) == (exp["id"], "weekly churn model")
    nodes = {n["nodeName"]: n for n in await client.list("team-p", "nodes")}
    ids = {name: n["id"] for name, n in nodes.items()}
    assert {n["examId"] for n in nodes.values()} == {exam["id"]}
    assert sorted(nodes["train"]["relation"]["nextNodeIds"]) == sorted([ids["evaluate"], ids["report"]])
    assert nodes["evaluate"]["relation"]["nextNodeIds"] == [ids["summary"]]
    assert nodes["report"]["relation"]["nextNodeIds"] == [ids["summary"]]
    assert nodes["summary"]["relation"]["nextNodeIds"] == []
    assert (nodes["train"]["maxRetries"], nodes["train"]["cacheable"]) == (2, True)
    assert (nodes["report"]["triggerRule"], nodes["summary"]["triggerRule"]) == ("all_done", "one_failed")
    assert nodes["summary"]["inputs"] == {"scores": "evaluate.sink:scores", "trained": "train.model"}
    assert {n["nodeStatus"] for n in nodes.values()} == {"EDIT_FINISH"}
    op = await client.get("team-p", "operators", "trainer")
    assert op["searchConf"]["space"]["lr"] == {"_type": "loguniform", "_value": [0.001, 0.1]}
    assert op["searchConf"]["trials"] == 4
    sched = await client.schedule(exam["id"])
    assert (sched.cron, sched.timezone, sched.concurrency) == ("0 3 * * 1", "Europe/Berlin", "queue")

    second = await apply_text(client, tmp_path, PIPELINE)
    assert [(o.kind, o.name, o.action) for o in second if o.action != "unchanged"] == []
    assert len(second) == len(first)
    again = {n["nodeName"]: n for n in await client.list("team-p", "nodes")}
    assert {k: v["updateTime"] for k, v in again.items()} == {k: v["updateTime"] for k, v in nodes.items()}


async def test_a_dry_run_says_what_would_change_and_writes_nothing(
    client: AsyncControlClient, tmp_path: Path
) -> None:
    spec = load_spec([write(tmp_path, PIPELINE)], "default")
    outcomes = await apply_spec(client, spec, dry_run=True)
    assert {o.action for o in outcomes} == {"would be created"} and outcomes[-1].kind == "schedules"
    assert await stored(client) == {}
    await apply_spec(client, load_spec([write(tmp_path, PIPELINE)], "default"))
    changed = PIPELINE.replace("experiment: churn", "experiment: churn2").replace(
        "experiments:\n", "experiments:\n  - {experimentName: churn2}\n"
    )
    out = await apply_spec(client, load_spec([write(tmp_path, changed)], "default"), dry_run=True)
    by = {(o.kind, o.name): (o.action, o.detail) for o in out}
    assert by["experiments", "churn2"] == ("would be created", "")
    assert by["exams", "weekly"] == ("would be updated", "experimentId")
    assert by["nodes", "train"] == ("unchanged", "")
    assert "churn2" not in (await stored(client))["experiments"]


async def test_changes_are_updates_naming_the_field(client: AsyncControlClient, tmp_path: Path) -> None:
    await apply_text(client, tmp_path, PIPELINE)
    changed = (
        PIPELINE.replace("maxRetries: 2", "maxRetries: 3")
        .replace('cron: "0 3 * * 1"', 'cron: "30 4 * * *"')
        .replace("next: [evaluate, report]", "next: [evaluate]")
        .replace("next: summary}\n  - nodeName: report", "next: [summary, report]}\n  - nodeName: report")
    )
    out = {(o.kind, o.name): (o.action, o.detail) for o in await apply_text(client, tmp_path, changed)}
    assert out["nodes", "train"] == ("updated", "maxRetries, relation")
    assert out["nodes", "evaluate"] == ("updated", "relation")
    assert out["schedules", "weekly"] == ("updated", "cron")
    assert out["nodes", "report"] == ("unchanged", "")
    nodes = {n["nodeName"]: n for n in await client.list("team-p", "nodes")}
    ids = {name: n["id"] for name, n in nodes.items()}
    assert nodes["train"]["relation"]["nextNodeIds"] == [ids["evaluate"]]
    assert sorted(nodes["evaluate"]["relation"]["nextNodeIds"]) == sorted([ids["summary"], ids["report"]])


async def test_reversing_an_edge_on_the_server_is_not_a_cycle(
    client: AsyncControlClient, tmp_path: Path
) -> None:
    await apply_text(client, tmp_path, PIPELINE)
    # report -> summary becomes summary -> report: the old edge is dropped before the new one is added
    flipped = PIPELINE.replace(
        "triggerRule: all_done\n    relation: {operator: trainer, sources: [train], next: summary}",
        "triggerRule: all_done\n    relation: {operator: trainer, sources: [train]}",
    ).replace(
        "train.model}\n    relation: {operator: trainer, sources: [train]}",
        "train.model}\n    relation: {operator: trainer, sources: [train], next: report}",
    )
    assert flipped.count("next: report}") == 1 and flipped.count("next: summary}") == 1
    out = {(o.kind, o.name): o.action for o in await apply_text(client, tmp_path, flipped)}
    assert (out["nodes", "report"], out["nodes", "summary"]) == ("updated", "updated")
    nodes = {n["nodeName"]: n for n in await client.list("team-p", "nodes")}
    assert nodes["summary"]["relation"]["nextNodeIds"] == [nodes["report"]["id"]]
    assert nodes["report"]["relation"]["nextNodeIds"] == []


BAD = [
    (
        'cron: "0 3 * * 1"',
        'cron: "61 3 * * *"',
        "pipeline.yaml: exams[0] (weekly): field 'schedule.cron': ",
    ),
    (
        "timezone: Europe/Berlin",
        "timezone: Mars/Olympus",
        "pipeline.yaml: exams[0] (weekly): field 'schedule.timezone': ",
    ),
    (
        "concurrency: queue",
        "concurrency: pile-up",
        "pipeline.yaml: exams[0] (weekly): field 'schedule.concurrency': ",
    ),
    (
        "triggerRule: all_done",
        "triggerRule: any_success",
        "pipeline.yaml: nodes[2] (report): field 'triggerRule': ",
    ),
    ("maxRetries: 2", "maxRetries: -1", "pipeline.yaml: nodes[0] (train): field 'maxRetries': "),
    (
        "lr: {_type: loguniform, _value: [0.001, 0.1]}",
        "lr: {_type: loguniform, _value: [0.1]}",
        "pipeline.yaml: operators[0] (trainer): field 'searchConf.space.lr._value': loguniform takes",
    ),
    (
        "lr: {_type: loguniform, _value: [0.001, 0.1]}",
        "lr: {_type: sometimes, _value: [0.1, 1]}",
        "pipeline.yaml: operators[0] (trainer): field 'searchConf.space.lr._type': 'sometimes' is not one of",
    ),
    (
        "inputs: {model: train.model}",
        "inputs: {model: ghost.model}",
        "pipeline.yaml: nodes[1] (evaluate): field 'inputs.model': 'ghost.model' names node 'ghost', "
        "which is neither in the spec nor in space 'team-p'",
    ),
    (
        "inputs: {model: train.model}",
        "inputs: {model: summary.model}",
        "pipeline.yaml: nodes[1] (evaluate): field 'inputs.model': 'summary.model': node 'summary' is not "
        "upstream of 'evaluate' (link them with relation.next)",
    ),
    (
        "inputs: {model: train.model}",
        "inputs: {model: report.model}",
        "pipeline.yaml: nodes[1] (evaluate): field 'inputs.model': 'report.model': node 'report' is not "
        "upstream of 'evaluate' (link them with relation.next)",
    ),
    (
        "inputs: {scores: evaluate.sink:scores, trained: train.model}",
        "inputs: {scores: evaluate.sink:train}",
        "pipeline.yaml: nodes[3] (summary): field 'inputs.scores': 'evaluate.sink:train': 'train' is not a "
        "sink of node 'evaluate' (its sinks: scores)",
    ),
    (
        "inputs: {scores: evaluate.sink:scores, trained: train.model}",
        "inputs: {trained: evaluate.model}",
        "pipeline.yaml: nodes[3] (summary): field 'inputs.trained': 'evaluate.model': node 'evaluate' has no "
        "model bound, so it leaves no model",
    ),
    (
        "inputs: {model: train.model}",
        "inputs: {model: train}",
        "pipeline.yaml: nodes[1] (evaluate): field 'inputs': ",
    ),
    (
        "relation: {operator: trainer, sources: [train]}\n",
        "relation: {operator: trainer, sources: [train], next: train}\n",
        "pipeline.yaml: nodes: cycle ",
    ),
    (
        "next: [evaluate, report]",
        "next: [evaluate, reprot]",
        "pipeline.yaml: nodes[0] (train): names node 'reprot', which is neither in the spec nor in space",
    ),
    (
        "experiment: churn",
        "experiment: chrun",
        "pipeline.yaml: exams[0] (weekly): names experiment 'chrun', which is neither in the spec",
    ),
    (
        "    exam: weekly\n",
        "    exam: monthly\n",
        "pipeline.yaml: nodes[3] (summary): names exam 'monthly', which is neither in the spec nor in space",
    ),
    (
        "nodes: [train, evaluate, report]",
        "nodes: [train, evaluate, report, nobody]",
        "pipeline.yaml: exams[0] (weekly): field 'nodes': 'nobody' is not a node of the spec",
    ),
]


async def test_bad_input_is_refused_with_its_path_and_nothing_is_stored(
    client: AsyncControlClient, tmp_path: Path
) -> None:
    for old, new, problem in BAD:  # one app for every case: each leaves nothing behind
        assert old in PIPELINE, old
        with pytest.raises(SpecError) as info:
            await apply_text(client, tmp_path, PIPELINE.replace(old, new, 1))
        assert len(info.value.problems) == 1, (new, info.value.problems)
        assert info.value.problems[0].startswith(problem), (new, info.value.problems)
        assert await stored(client) == {}, new


async def test_a_cycle_is_named_by_its_path(client: AsyncControlClient, tmp_path: Path) -> None:
    text = PIPELINE.replace(
        "relation: {operator: trainer, sources: [train]}\n",
        "relation: {operator: trainer, sources: [train], next: train}\n",
    )
    with pytest.raises(SpecError) as info:
        await apply_text(client, tmp_path, text)
    assert info.value.problems == ["pipeline.yaml: nodes: cycle evaluate -> summary -> train -> evaluate"]


async def test_a_cycle_through_nodes_already_on_the_server_is_refused(
    client: AsyncControlClient, tmp_path: Path
) -> None:
    await apply_text(client, tmp_path, PIPELINE)
    extra = """
    space: team-p
    nodes:
      - nodeName: summary
        exam: weekly
        nodeStatus: EDIT_FINISH
        relation: {operator: trainer, sources: [train], next: train}
    """
    before = await client.list("team-p", "nodes")
    with pytest.raises(SpecError) as info:
        await apply_spec(client, load_spec([write(tmp_path, extra, "more.yaml")], "default"))
    assert info.value.problems == ["more.yaml: nodes: cycle evaluate -> summary -> train -> evaluate"]
    assert await client.list("team-p", "nodes") == before


async def test_every_problem_of_a_file_is_listed_at_once(client: AsyncControlClient, tmp_path: Path) -> None:
    text = (
        PIPELINE.replace('cron: "0 3 * * 1"', 'cron: "every monday"')
        .replace("maxRetries: 2", "maxRetries: -3")
        .replace("triggerRule: all_done", "triggerRule: sometimes")
    )
    with pytest.raises(SpecError) as info:
        await apply_text(client, tmp_path, text)
    fields = [p.split("field ")[1].split(":")[0] for p in info.value.problems]
    assert fields == ["'schedule.cron'", "'maxRetries'", "'triggerRule'"]
    assert await stored(client) == {}


# -- the API refuses the same things, naming the field ------------------------------------------


async def refusal(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 422, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_the_api_refuses_the_same_bad_input(
    app: FastAPI, client: AsyncControlClient, tmp_path: Path
) -> None:
    await apply_text(client, tmp_path, PIPELINE)
    node = await client.get("team-p", "nodes", "evaluate")
    body = {k: v for k, v in node.items() if k in ("nodeName", "examId", "operatorRuntimeType", "nodeStatus")}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://control") as api:
        cases = [
            ({**body, "maxRetries": -1}, "maxRetries"),
            ({**body, "triggerRule": "any_success"}, "triggerRule"),
            ({**body, "inputs": {"model": "report.model"}}, "inputs.model"),
            ({**body, "inputs": {"model": "ghost.model"}}, "inputs.model"),
        ]
        for bad, field in cases:
            got = await refusal(await api.put(f"{SP}/nodes/evaluate", json=bad))
            assert field in {e["field"] for e in got["errors"]}, got
        op = await client.get("team-p", "operators", "trainer")
        conf = {**op["searchConf"], "space": {"lr": {"_type": "uniform", "_value": [1]}}}
        got = await refusal(await api.patch(f"{SP}/operators/trainer", json={"searchConf": conf}))
        assert "lr._value" in got["msg"], got
        exam = await client.get("team-p", "exams", "weekly")
        for bad, field in (
            ({"cron": "61 * * * *"}, "cron"),
            ({"cron": "0 3 * * *", "timezone": "Mars/Base"}, "timezone"),
        ):
            with pytest.raises(ControlAPIError) as info:
                await client.set_schedule(exam["id"], bad)
            assert (info.value.status_code, list(info.value.fields)) == (422, [field]), info.value
        assert (await client.schedule(exam["id"])).cron == "0 3 * * 1"
    after = await client.get("team-p", "nodes", "evaluate")
    assert (after["maxRetries"], after["triggerRule"], after["inputs"]) == (
        0,
        "all_success",
        {"model": "train.model"},
    )


# -- the README's pipeline ---------------------------------------------------------------------


def readme_pipeline() -> str:
    (block,) = re.findall(r"```yaml\n(# pipeline-example\n.*?)```", README.read_text(), re.S)
    return "space: team-p\n" + block


async def test_the_readme_pipeline_applies_idempotently(client: AsyncControlClient, tmp_path: Path) -> None:
    text = readme_pipeline()
    first = await apply_text(client, tmp_path, text)
    assert {o.action for o in first} == {"created"}
    assert [o.kind for o in first].count("nodes") == 4 and first[-1].kind == "schedules"
    nodes = {n["nodeName"]: n for n in await client.list("team-p", "nodes")}
    ids = {name: n["id"] for name, n in nodes.items()}
    assert sorted(nodes["train"]["relation"]["nextNodeIds"]) == sorted([ids["evaluate"], ids["profile"]])
    assert (
        nodes["evaluate"]["relation"]["nextNodeIds"]
        == nodes["profile"]["relation"]["nextNodeIds"]
        == [ids["report"]]
    )
    assert {o.action for o in await apply_text(client, tmp_path, text)} == {"unchanged"}


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "relation: {operator: tabular, sources: [test]}",
            "relation: {operator: tabular, sources: [test], next: train}",
            "pipeline.yaml: nodes: cycle evaluate -> report -> train -> evaluate",
        ),
        (
            "trained: train.metrics}",
            "trained: profile.model}",
            "pipeline.yaml: nodes[3] (report): field 'inputs.trained': 'profile.model': node 'profile' "
            "has no model bound, so it leaves no model",
        ),
        (
            "lr: {_type: loguniform, _value: [0.0001, 0.1]}",
            "lr: {_type: loguniform, _value: [0.1]}",
            "pipeline.yaml: operators[0] (tabular): field 'searchConf.space.lr._value': loguniform takes "
            "[low, high] with 0 < low, got [0.1]",
        ),
    ],
)
async def test_the_readme_refusals_read_as_the_readme_says(
    client: AsyncControlClient, tmp_path: Path, old: str, new: str, problem: str
) -> None:
    text = readme_pipeline()
    assert old in text
    with pytest.raises(SpecError) as info:
        await apply_text(client, tmp_path, text.replace(old, new))
    assert info.value.problems == [problem]
    assert problem.split("pipeline.yaml: ")[1].split(": ", 1)[-1] in " ".join(README.read_text().split())
    assert await stored(client) == {}


def test_atom_apply_of_a_pipeline_prints_each_kind_and_refuses_a_bad_cron(
    atom: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    spec = str(write(tmp_path, PIPELINE))
    code, out, err = atom("apply", "-f", spec)
    assert (code, err) == (0, ""), err
    rows = {tuple(line.split()[:3]) for line in out.splitlines()[1:]}
    assert {("experiments", "churn", "created"), ("exams", "weekly", "created"),
            ("schedules", "weekly", "created"), ("nodes", "summary", "created")} <= rows  # fmt: skip
    code, out, err = atom("apply", "-f", spec)
    assert (code, out.splitlines()[-1]) == (0, "13 unchanged"), out

    bad = str(write(tmp_path, PIPELINE.replace('cron: "0 3 * * 1"', 'cron: "0 3 * *"'), "bad.yaml"))
    code, out, err = atom("apply", "-f", bad)
    assert code == 2 and out == ""
    assert "bad.yaml: exams[0] (weekly): field 'schedule.cron': " in " ".join(err.split()), err
