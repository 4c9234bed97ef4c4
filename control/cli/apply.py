"""`atom apply -f spec.yaml`: declarative, idempotent create-or-replace of a spec's entities.

Order: experiments, exams, connections, sources, operators, models, service infos, nodes,
then exam schedules. A node
with a relation is written as EDITING, its relation is created (names resolved to
ids), and only then is its status set to the spec's (usually EDIT_FINISH), so
control validates the finished definition. Every name a spec refers to is checked
before the first write: a missing operator fails the apply with nothing changed.
The spec format is documented in `control.cli._spec`. A BUNDLE operator's local code is
uploaded before the operator is written, unless control already stores that digest.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control.cli import _apply_pipeline as pipeline
from control.cli import render
from control.cli._spec import CodeUpload, Entity, Spec, SpecError
from control.code_store import human, pack_dir
from control.errors import ControlAPIError
from control.schemas import NodeRelationIn, NodeStatus

if TYPE_CHECKING:
    import argparse

    from control.cli._context import Context
    from control.client import AsyncControlClient

ORDER = ("experiments", "exams", "connections", "sources", "operators", "models", "service-infos", "nodes")


@dataclass
class Outcome:
    """What apply did to one entity."""

    kind: str
    name: str
    space: str
    action: str
    """created, updated, unchanged (or `would be ...` in a dry run)."""
    detail: str = ""


async def cmd_apply(ctx: Context, args: argparse.Namespace) -> int:
    spec: Spec = args.spec  # loaded and validated by main before control was reached
    async with ctx.client() as client:
        outcomes = await apply_spec(client, spec, dry_run=args.dry_run)
    if not outcomes:
        ctx.err.print("the spec is empty: nothing to apply", style="dim")
        return 0
    ctx.out.print(render.apply_table(outcomes))
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    ctx.out.print(", ".join(f"{n} {action}" for action, n in counts.items()), style="dim")
    return 0


class _Known:
    """Resources as they are on the server, by (space, kind, name); None when absent."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], dict[str, Any] | None] = {}

    async def fetch(self, client: AsyncControlClient, keys: list[tuple[str, str, str]]) -> None:
        todo = [k for k in dict.fromkeys(keys) if k not in self.items]
        found = await asyncio.gather(*(_get_or_none(client, *k) for k in todo))
        self.items.update(zip(todo, found, strict=True))

    def id_of(self, space: str, kind: str, name: str) -> int:
        item = self.items.get((space, kind, name))
        if item is None:  # checked before any write; reaching this is a bug
            raise SpecError([f"{kind} {name!r} does not exist in space {space!r}"])
        return int(item["id"])


async def _get_or_none(client: AsyncControlClient, space: str, kind: str, name: str) -> dict[str, Any] | None:
    try:
        return await client.get(space, kind, name)
    except ControlAPIError as exc:
        if exc.status_code == 404:
            return None
        raise


async def apply_spec(client: AsyncControlClient, spec: Spec, *, dry_run: bool = False) -> list[Outcome]:
    """Make the server hold what `spec` says; return one `Outcome` per entity, in apply order.

    Raises:
        SpecError: the spec names something that is neither in it nor on the server.
        ControlAPIError: control refused a write (its message names the field).
    """
    if not dry_run:
        for space in spec.spaces:
            await client.ensure_space(space)
    known = _Known()
    keys = [(e.space, e.kind, e.name) for e in spec.entities]
    refs = [(e.space, kind, name) for e in spec.entities for kind, name in e.references()]
    await known.fetch(client, keys + [r for r in refs if spec.find(*r) is None])
    _check_references(spec, known)
    await pipeline.check_graph(client, spec)

    outcomes: list[Outcome] = []
    for kind in ORDER[:-1]:
        if kind == "operators":
            outcomes += await _upload_code(client, spec.of(kind), dry_run)
        for entity in spec.of(kind):
            outcomes.append(await _put(client, entity, known, dry_run))
    outcomes += await _apply_nodes(client, spec.of("nodes"), known, dry_run)
    outcomes += await pipeline.apply_schedules(client, spec.of("exams"), known.items, dry_run)
    return outcomes


async def _upload_code(client: AsyncControlClient, operators: list[Entity], dry_run: bool) -> list[Outcome]:
    """Upload each BUNDLE operator's local code that control does not store yet (once per digest)."""
    outcomes: list[Outcome] = []
    seen: set[str] = set()
    for entity in operators:
        code = entity.code
        if code is None or code.digest in seen:
            continue
        seen.add(code.digest)
        stored = await client.code_exists(code.digest)
        if not stored and not dry_run:
            await upload(client, code)
        action = "unchanged" if stored else "uploaded"
        name = f"{code.path.name} ({code.digest[:19]})"
        outcomes.append(Outcome("code", name, entity.space, _tense(action, dry_run), human(code.size)))
    return outcomes


async def upload(client: AsyncControlClient, code: CodeUpload) -> None:
    """Send `code` to control: an archive as it is, a directory packed into a temporary tar.gz.

    Raises:
        SpecError: the directory changed since the spec was read (its digest differs).
    """
    if not await asyncio.to_thread(code.path.is_dir):
        got = await client.upload_code(code.path)
    else:
        with tempfile.TemporaryDirectory(prefix="atom-code-") as tmp:
            archive = Path(tmp) / "code.tar.gz"
            digest = await asyncio.to_thread(_pack_to, code.path, archive)
            if digest != code.digest:
                raise SpecError([f"{code.path} changed while `atom apply` ran: apply again"])
            got = await client.upload_code(archive)
    if got.get("digest") != code.digest:
        raise SpecError([f"{code.path}: control stored {got.get('digest')}, not {code.digest}: apply again"])


def _pack_to(root: Path, archive: Path) -> str:
    with open(archive, "wb") as out:
        digest, _ = pack_dir(root, out)
    return digest


def _check_references(spec: Spec, known: _Known) -> None:
    problems = []
    for e in spec.entities:
        for kind, name in e.references():
            if spec.find(e.space, kind, name) is None and known.items.get((e.space, kind, name)) is None:
                what = kind.rstrip("s").replace("-", " ")
                problems.append(
                    f"{e.where}: names {what} {name!r}, which is neither in the spec nor in space {e.space!r}"
                )
    if problems:
        raise SpecError(problems)


def _diff(entity: Entity, existing: dict[str, Any], known: _Known) -> list[str]:
    """The fields `existing` does not hold as the spec says; first the names the entity links to
    become ids (a link to an entity not created yet, in a dry run, counts as changed)."""
    unknown = pipeline.resolve_links(entity, known.items)
    return [k for k, v in entity.compare.items() if not pipeline.same_value(existing.get(k), v)] + unknown


async def _put(
    client: AsyncControlClient,
    entity: Entity,
    known: _Known,
    dry_run: bool,
) -> Outcome:
    key = (entity.space, entity.kind, entity.name)
    existing = known.items.get(key)
    changed = _diff(entity, existing, known) if existing is not None else []
    if existing is None:
        pipeline.resolve_links(entity, known.items)
    secret = "connectPassword" in entity.body
    if existing is None:
        action, detail = "created", ""
    elif changed:
        action, detail = "updated", ", ".join(changed)
    else:
        action, detail = "unchanged", ""
    if not dry_run and (action != "unchanged" or secret):
        # a password cannot be compared (it never comes back), so it is always sent
        known.items[key] = await client.put(entity.space, entity.kind, entity.name, entity.body)
    return Outcome(entity.kind, entity.name, entity.space, _tense(action, dry_run), detail)


async def _apply_nodes(
    client: AsyncControlClient, nodes: list[Entity], known: _Known, dry_run: bool
) -> list[Outcome]:
    finish = NodeStatus.EDIT_FINISH.value
    outcomes: list[Outcome] = []
    rewire: list[Entity] = []
    # 1. every node exists before any relation is written (`next` may name a later node); a
    #    node not yet EDIT_FINISH on the server is written as EDITING until its relation exists
    for node in nodes:
        key = (node.space, "nodes", node.name)
        existing = known.items.get(key)
        status = node.node_status.value if node.node_status else None
        had = existing.get("nodeStatus") if existing else None
        changed = _diff(node, existing, known) if existing is not None else []
        if existing is None:
            pipeline.resolve_links(node, known.items)
        if node.relation is not None and (existing is None or not _same_relation(existing, node, known)):
            rewire.append(node)
            changed += ["relation"] if existing is not None else []
        if existing is not None and status is not None and had != status:
            changed.append("nodeStatus")
        body = dict(node.body)
        if node.relation is not None and status == finish and had != finish:
            body["nodeStatus"] = NodeStatus.EDITING.value
        if not dry_run and (existing is None or set(changed) - {"relation", "nodeStatus"}):
            known.items[key] = await client.put(node.space, "nodes", node.name, body)
        action = "created" if existing is None else "updated" if changed else "unchanged"
        outcomes.append(Outcome("nodes", node.name, node.space, _tense(action, dry_run), ", ".join(changed)))
    if dry_run:
        return outcomes
    # 2. relations, now that every id is known (createNodeRelation replaces a node's relation);
    #    edges a node loses go first, so that no write sees old and new edges make a cycle
    for node in rewire:
        wanted = _relation_body(node, known)
        kept = pipeline.kept_next_ids(known.items.get((node.space, "nodes", node.name)), wanted)
        if kept is not None:
            await client.create_node_relation(
                wanted.model_copy(update={"next_node_id": None, "next_node_ids": kept})
            )
    for node in rewire:
        await client.create_node_relation(_relation_body(node, known))
    # 3. the spec's status, last, so control checks the finished definition
    for node in nodes:
        key = (node.space, "nodes", node.name)
        current = known.items[key] or {}
        if node.node_status is not None and current.get("nodeStatus") != node.node_status.value:
            known.items[key] = await client.patch(
                node.space, "nodes", node.name, {"nodeStatus": node.node_status.value}
            )
    return outcomes


def _relation_body(node: Entity, known: _Known) -> NodeRelationIn:
    rel = node.relation
    assert rel is not None
    space = node.space

    def ref(kind: str, name: str | None) -> int | None:
        return known.id_of(space, kind, name) if name else None

    next_ids = [known.id_of(space, "nodes", n) for n in rel.next_names()]
    return NodeRelationIn(
        node_id=known.id_of(space, "nodes", node.name),
        next_node_id=next_ids[0] if next_ids else None,
        next_node_ids=next_ids,
        operator_id=known.id_of(space, "operators", rel.operator),
        data_source_ids=[known.id_of(space, "sources", s) for s in rel.sources],
        model_id=ref("models", rel.model),
        service_info_id=ref("service-infos", rel.service_info),
        max_service_info_id=ref("service-infos", rel.max_service_info),
        min_service_info_id=ref("service-infos", rel.min_service_info),
    )


def _same_relation(existing: dict[str, Any], node: Entity, known: _Known) -> bool:
    """True when the node's relation on the server already binds what the spec names.

    The node view carries its relation as `relation` (a `NodeRelationOut`); when it
    does not, the relation is rewritten (createNodeRelation replaces a node's relation).
    """
    current = existing.get("relation")
    if not isinstance(current, dict):
        return False
    try:
        wanted = _relation_body(node, known)
    except SpecError:  # names something not created yet
        return False
    body = wanted.model_dump(
        mode="json", by_alias=True, exclude={"data_source_id", "next_node_id", "next_node_ids"}
    )
    return all(current.get(k) == v for k, v in body.items()) and pipeline.same_next(current, wanted)


def _tense(action: str, dry_run: bool) -> str:
    return f"would be {action}" if dry_run and action != "unchanged" else action
