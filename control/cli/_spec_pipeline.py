"""Pipelines in a spec: experiments, exams with their schedules, and what nodes add to a DAG.

```yaml
experiments: [{experimentName: churn, description: weekly churn model}]
exams:
  - examName: weekly
    experiment: churn                  # an experiment of the spec or of the space
    schedule: {cron: "0 3 * * 1", timezone: Europe/Berlin, concurrency: skip}
    nodes: [train, evaluate]           # optional: the same as `exam: weekly` on each node
nodes:
  - nodeName: train
    exam: weekly
    maxRetries: 2
    cacheable: true
    relation: {operator: trainer, sources: [train], model: churn, next: [evaluate, report]}
  - nodeName: evaluate
    exam: weekly
    triggerRule: all_success
    inputs: {model: train.model}       # upstreamNode.output: model, metrics, sink:<source> or a file
    relation: {operator: scorer, sources: [test, scores]}
```

Everything here is checked before the first write: an unparseable cron or unknown timezone
(`exams[0].schedule.cron`), a search space of the wrong shape (`operators[0].searchConf.space.lr._value`),
an input naming a node that is not upstream or an output it cannot leave (`nodes[3].inputs.model`),
a cycle through `relation.next` (`nodes: cycle a -> b -> a`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from control.pipeline import graph
from control.schemas.pipeline import check_search_space, split_ref
from control.schemas.schedules import ScheduleIn

if TYPE_CHECKING:
    from control.cli._spec import Spec

PLACEHOLDER_ID = 1
"""Stands in for an id that is known only at apply time (an experiment or exam named in the spec)."""

#: body field -> (kind, the spec key naming it) for names resolved to ids at apply time
LINKS: dict[str, dict[str, tuple[str, str]]] = {
    "exams": {"experimentId": ("experiments", "experiment")},
    "nodes": {"examId": ("exams", "exam")},
}


def pop_links(kind: str, raw: dict[str, Any], where: str, problems: list[str]) -> dict[str, tuple[str, str]]:
    """Take the names an entry gives instead of ids (`experiment:`, `exam:`) out of `raw`.

    The id field gets a placeholder so that the create body validates; apply puts the real id.
    """
    links: dict[str, tuple[str, str]] = {}
    for id_field, (target, key) in LINKS.get(kind, {}).items():
        if key not in raw:
            continue
        name = raw.pop(key)
        if name is None:
            continue
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}: field {key!r}: must be the name of one of the {target}")
            continue
        if raw.get(id_field) is not None:
            problems.append(f"{where}: give {key!r} or {id_field!r}, not both")
            continue
        links[id_field] = (target, name.strip())
        raw[id_field] = PLACEHOLDER_ID
    return links


def pop_exam_extras(
    raw: dict[str, Any], where: str, problems: list[str]
) -> tuple[dict[str, Any] | None, list[str]] | None:
    """An exam entry's `schedule` (as its wire body) and `nodes` (names); None when either is bad."""
    ok = True
    schedule: dict[str, Any] | None = None
    sched = raw.pop("schedule", None)
    if sched is not None:
        if not isinstance(sched, dict):
            problems.append(f"{where}: field 'schedule': must be a mapping with cron, timezone, ...")
            ok = False
        else:
            from control.cli._spec import _validate

            found = _validate(ScheduleIn, sched, where, problems, prefix="schedule.")
            if found is None:
                ok = False
            else:
                schedule = found.model_dump(mode="json", by_alias=True)
    members = raw.pop("nodes", None) or []
    if not isinstance(members, list) or not all(isinstance(n, str) and n for n in members):
        problems.append(f"{where}: field 'nodes': must be a list of node names")
        ok = False
    return (schedule, list(members)) if ok else None


def check_search_conf(raw: dict[str, Any], where: str, problems: list[str]) -> bool:
    """Check an operator's `searchConf.space` naming the parameter's path; False when it is bad."""
    conf = raw.get("searchConf", raw.get("search_conf"))
    if not isinstance(conf, dict) or "space" not in conf:
        return True
    try:
        check_search_space(conf["space"], "searchConf.space")
    except ValueError as exc:
        path, _, why = str(exc).partition(": ")
        problems.append(f"{where}: field {path!r}: {why}")
        return False
    return True


def check_members(spec: Spec, problems: list[str]) -> None:
    """An exam's `nodes:` list puts each named spec node in the exam (`exam:` on the node agrees)."""
    for exam in spec.of("exams"):
        for name in exam.members:
            node = spec.find(exam.space, "nodes", name)
            if node is None and (exam.space, "nodes", name) in spec.invalid:
                continue
            if node is None:
                problems.append(
                    f"{exam.where}: field 'nodes': {name!r} is not a node of the spec "
                    f"(give that node `exam: {exam.name}`)"
                )
                continue
            current = node.links.get("examId")
            if current is not None and current[1] != exam.name:
                problems.append(
                    f"{node.where}: field 'exam': {current[1]!r}, but exam {exam.name!r} lists the node"
                )
                continue
            node.links["examId"] = ("exams", exam.name)
            node.body["examId"] = node.compare["examId"] = PLACEHOLDER_ID


# -- the DAG: the spec's nodes over what the space already holds ------------------------------


class Dag:
    """Nodes of one space by name: their next nodes and the outputs each can leave.

    The spec's nodes are as the spec says; other nodes are as the server holds them.
    """

    def __init__(self) -> None:
        self.next: dict[str, list[str]] = {}
        self.exam: dict[str, str | None] = {}
        self.model: dict[str, bool] = {}
        self.sinks: dict[str, set[str]] = {}
        self.sink_sources: set[str] = set()
        """Names of the space's sources with sourceType sink, as the server holds them."""

    def add(
        self, name: str, exam: str | None, next_names: Iterable[str], model: bool, sinks: Iterable[str]
    ) -> None:
        self.next[name] = list(dict.fromkeys(next_names))
        self.exam[name] = exam
        self.model[name] = model
        self.sinks[name] = set(sinks)

    def missing_output(self, node: str, output: str) -> str | None:
        """Why `node` can never leave `output`, or None. Besides `model` (a node with a model bound)
        and `sink:<source>` (one of its sinks), a run leaves `metrics` and any file its operator
        declares, so other names cannot be refused ahead of a run."""
        if output == "model" and not self.model[node]:
            return f"node {node!r} has no model bound, so it leaves no model"
        if output.startswith("sink:") and output[5:] not in self.sinks[node]:
            sinks = ", ".join(sorted(self.sinks[node])) or "none"
            return f"{output[5:]!r} is not a sink of node {node!r} (its sinks: {sinks})"
        return None

    def upstream(self, name: str) -> set[str]:
        """Every node `name` waits for, directly or not."""
        ups: dict[str, list[str]] = {}
        for a, nexts in self.next.items():
            for b in nexts:
                ups.setdefault(b, []).append(a)
        seen: set[str] = set()
        todo = list(ups.get(name, []))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += ups.get(n, [])
        return seen

    def cycle(self) -> list[str] | None:
        names = sorted(set(self.next) | {b for bs in self.next.values() for b in bs})
        index = {n: i for i, n in enumerate(names)}
        path = graph.cycle([(index[a], index[b]) for a, bs in self.next.items() for b in bs])
        return [names[i] for i in path] if path else None


def server_dag(
    nodes: list[dict[str, Any]], sources: list[dict[str, Any]], exams: list[dict[str, Any]]
) -> Dag:
    """The DAG of a space as the server holds it (node views with their relations)."""
    names = {int(n["id"]): str(n["nodeName"]) for n in nodes}
    exam_names = {int(e["id"]): str(e["examName"]) for e in exams}
    sinks = {int(s["id"]): str(s["sourceName"]) for s in sources if s.get("sourceType") == "sink"}
    dag = Dag()
    dag.sink_sources = set(sinks.values())
    for n in nodes:
        rel = n.get("relation") or {}
        ids = list(rel.get("nextNodeIds") or []) or ([rel["nextNodeId"]] if rel.get("nextNodeId") else [])
        dag.add(
            str(n["nodeName"]),
            exam_names.get(int(n["examId"])) if n.get("examId") is not None else None,
            [names[i] for i in ids if i in names],
            rel.get("modelId") is not None,
            [sinks[i] for i in rel.get("dataSourceIds") or [] if i in sinks],
        )
    return dag


def check_dag(spec: Spec, space: str, dag: Dag, problems: list[str]) -> None:
    """Put the spec's nodes of `space` over `dag`, then check cycles and every input reference."""
    nodes = [n for n in spec.of("nodes") if n.space == space]
    for node in nodes:
        link = node.links.get("examId")
        rel = node.relation
        if rel is None:
            old = dag.next.get(node.name)
            dag.add(node.name, link[1] if link else None, old or [], dag.model.get(node.name, False),
                    dag.sinks.get(node.name, set()))  # fmt: skip
            continue
        sinks = [s for s in rel.sources if _is_sink(spec, dag, space, s)]
        dag.add(node.name, link[1] if link else None, rel.next_names(), rel.model is not None, sinks)
    path = dag.cycle()
    if path is not None:
        first = next((n for n in nodes if n.name in path), None)
        label = first.where.split(": ")[0] if first else space
        problems.append(f"{label}: nodes: cycle {' -> '.join(path)}")
        return
    for node in nodes:
        inputs = node.body.get("inputs") or {}
        if not inputs:
            continue
        ups = dag.upstream(node.name)
        for key, ref in inputs.items():
            up, output = split_ref(ref)
            where = f"{node.where}: field 'inputs.{key}'"
            if up not in dag.next:
                problems.append(
                    f"{where}: {ref!r} names node {up!r}, which is neither in the spec nor in space {space!r}"
                )
            elif dag.exam[up] is None or dag.exam[up] != dag.exam[node.name]:
                problems.append(f"{where}: {ref!r}: node {up!r} is not in the same exam as {node.name!r}")
            elif up not in ups:
                problems.append(f"{where}: {ref!r}: node {up!r} is not upstream of {node.name!r} "
                                f"(link them with relation.next)")  # fmt: skip
            elif why := dag.missing_output(up, output):
                problems.append(f"{where}: {ref!r}: {why}")


def _is_sink(spec: Spec, dag: Dag, space: str, name: str) -> bool:
    entry = spec.find(space, "sources", name)
    if entry is not None:
        return str(entry.body.get("sourceType", "")).lower() == "sink"
    return name in dag.sink_sources
