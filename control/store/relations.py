"""Node relations and the DAG checks behind createNodeRelation: keyword-only functions on a session.

A relation binds a node to its operator, data sources, model and service infos; `nextNodeId`
links the exam's DAG. Every refusal names the body field to blame (`InvalidSpec.errors`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from control import schemas as s
from control.errors import InvalidSpec
from control.pipeline import graph
from control.store import models as m


def relation_of(*, session: Session, node_id: int) -> m.NodeRelation | None:
    return session.scalar(select(m.NodeRelation).where(m.NodeRelation.node_id == node_id))


def relation_source_ids(*, session: Session, relation_id: int) -> list[int]:
    rows = session.scalars(
        select(m.NodeRelationSource.data_source_id)
        .where(m.NodeRelationSource.relation_id == relation_id)
        .order_by(m.NodeRelationSource.position)
    )
    return list(rows)


@dataclasses.dataclass(frozen=True)
class Wiring:
    """A node's relation (None: it has none) and its data source ids in order."""

    relation: m.NodeRelation | None
    source_ids: list[int]


def wiring_of(*, session: Session, node_ids: Sequence[int]) -> dict[int, Wiring]:
    """`Wiring` of each of `node_ids`, read with two queries per 500 nodes."""
    out: dict[int, Wiring] = {}
    ids = list(dict.fromkeys(node_ids))
    for at in range(0, len(ids), 500):
        part = ids[at : at + 500]
        query = select(m.NodeRelation).where(m.NodeRelation.node_id.in_(part))
        rels = {r.node_id: r for r in session.scalars(query)}
        sources: dict[int, list[int]] = {r.id: [] for r in rels.values()}
        for rel_id, src_id in session.execute(
            select(m.NodeRelationSource.relation_id, m.NodeRelationSource.data_source_id)
            .where(m.NodeRelationSource.relation_id.in_(list(sources)))
            .order_by(m.NodeRelationSource.relation_id, m.NodeRelationSource.position)
        ):
            sources[rel_id].append(src_id)
        for node_id in part:
            rel = rels.get(node_id)
            out[node_id] = Wiring(rel, sources[rel.id] if rel is not None else [])
    return out


def check_node_complete(*, session: Session, node_id: int | None, name: str) -> None:
    """A node may be EDIT_FINISH only once its relation names an operator."""
    rel = relation_of(session=session, node_id=node_id) if node_id is not None else None
    if rel is None:
        raise InvalidSpec(
            f"node {name!r} has no relation: bind its operator and data with createNodeRelation "
            "before marking it EDIT_FINISH",
            field="nodeStatus",
            field_msg="the node has no relation yet: create it with createNodeRelation first",
        )


def edges_among(*, session: Session, node_ids: Iterable[int]) -> list[tuple[int, int]]:
    """`(from, to)` edges leaving `node_ids`: the node_edges rows, and the legacy nextNodeId of a
    node that has no edge rows (a relation made before edges existed)."""
    ids = list(dict.fromkeys(node_ids))
    if not ids:
        return []
    edges: list[tuple[int, int]] = []
    for chunk in range(0, len(ids), 500):
        part = ids[chunk : chunk + 500]
        edges += [
            (a, b)
            for a, b in session.execute(
                select(m.NodeEdge.from_node_id, m.NodeEdge.to_node_id)
                .where(m.NodeEdge.from_node_id.in_(part))
                .order_by(m.NodeEdge.id)
            )
        ]
        has_rows = {a for a, _ in edges}
        edges += [
            (a, b)
            for a, b in session.execute(
                select(m.NodeRelation.node_id, m.NodeRelation.next_node_id).where(
                    m.NodeRelation.node_id.in_(part), m.NodeRelation.next_node_id.is_not(None)
                )
            )
            if a not in has_rows and b is not None
        ]
    return edges


def next_ids_of(*, session: Session, node_id: int) -> list[int]:
    return [b for _, b in edges_among(session=session, node_ids=[node_id])]


def _cycle_through(*, session: Session, node: m.Node, next_ids: list[int]) -> list[int] | None:
    """The cycle `node`'s new next nodes would close, as a path starting at `node`, else None."""
    space_nodes = list(session.scalars(select(m.Node.id).where(m.Node.space_id == node.space_id)))
    edges = [(a, b) for a, b in edges_among(session=session, node_ids=space_nodes) if a != node.id]
    edges += [(node.id, b) for b in next_ids]
    path = graph.cycle(edges)
    if path is None:
        return None
    ring = path[:-1]
    if node.id in ring:
        at = ring.index(node.id)
        ring = ring[at:] + ring[:at]
    return ring + [ring[0]]


def _store_edges(*, session: Session, node_id: int, next_ids: list[int]) -> None:
    """Replace the node's outgoing edges with `next_ids`."""
    for old in session.scalars(select(m.NodeEdge).where(m.NodeEdge.from_node_id == node_id)):
        session.delete(old)
    session.flush()
    for to in next_ids:
        session.add(m.NodeEdge(from_node_id=node_id, to_node_id=to))


def upsert_relation(*, session: Session, body: s.NodeRelationIn) -> m.NodeRelation:
    """createNodeRelation: validate every link, refuse cycles, replace an existing relation.

    Raises:
        InvalidSpec: a link names nothing, another space's entity or the wrong kind of operator,
            or would close a cycle; `errors` names the body field (nodeId, operatorId, nextNodeId, ...).
    """
    node = session.get(m.Node, body.node_id)
    if node is None:
        raise InvalidSpec(f"node {body.node_id} does not exist", field="nodeId", field_msg="no such node")
    space_id = node.space_id

    def same_space(orm: type[Any], ident: int | None, label: str, field: str) -> Any:
        if ident is None:
            return None
        row = session.get(orm, ident)
        if row is None:
            raise InvalidSpec(f"{label} {ident} does not exist", field=field, field_msg=f"no such {label}")
        if row.space_id != space_id:
            raise InvalidSpec(
                f"{label} {ident} belongs to another space than node {node.node_name!r}",
                field=field,
                field_msg=f"{label} {ident} is in another space",
            )
        return row

    operator = same_space(m.Operator, body.operator_id, "operator", "operatorId")
    if operator.operator_runtime_type != node.operator_runtime_type:
        raise InvalidSpec(
            f"operator {operator.operator_name!r} is {operator.operator_runtime_type} but node "
            f"{node.node_name!r} is {node.operator_runtime_type}",
            field="operatorId",
            field_msg=f"is {operator.operator_runtime_type}, the node is {node.operator_runtime_type}",
        )
    source_field = "dataSourceIds" if body.data_source_ids else "dataSourceId"
    sources = [same_space(m.DataSource, i, "data source", source_field) for i in body.all_source_ids()]
    if not any(
        src.source_type != s.SourceRole.SINK.value for src in sources
    ) and operator.operator_runtime_type in (
        "TRAIN",
        "FEATURES",
        "PYTHON_DATA",
    ):
        raise InvalidSpec(
            f"node {node.node_name!r} needs at least one input data source (sourceType source)",
            field=source_field,
            field_msg="needs at least one input data source (sourceType source)",
        )
    same_space(m.Model, body.model_id, "model", "modelId")
    for si, field in (
        (body.service_info_id, "serviceInfoId"),
        (body.max_service_info_id, "maxServiceInfoId"),
        (body.min_service_info_id, "minServiceInfoId"),
    ):
        same_space(m.ServiceInfo, si, "service info", field)
    next_ids = body.all_next_ids()
    next_field = "nextNodeIds" if body.next_node_ids else "nextNodeId"
    for nxt in next_ids:
        same_space(m.Node, nxt, "next node", next_field)
    path = _cycle_through(session=session, node=node, next_ids=next_ids) if next_ids else None
    if path is not None:
        rows = session.execute(select(m.Node.id, m.Node.node_name).where(m.Node.id.in_(path)))
        names = {i: n for i, n in rows}
        text = graph.path_text(path, names)
        raise InvalidSpec(
            f"{next_field} would make a cycle: {text}",
            field=next_field,
            field_msg=f"would make a cycle: {text}",
        )
    rel = relation_of(session=session, node_id=node.id)
    if rel is None:
        rel = m.NodeRelation(node_id=node.id, operator_id=operator.id)
        session.add(rel)
    rel.operator_id = operator.id
    rel.next_node_id = next_ids[0] if next_ids else None
    rel.model_id = body.model_id
    rel.service_info_id = body.service_info_id
    rel.max_service_info_id = body.max_service_info_id
    rel.min_service_info_id = body.min_service_info_id
    session.flush()
    for old in session.scalars(
        select(m.NodeRelationSource).where(m.NodeRelationSource.relation_id == rel.id)
    ):
        session.delete(old)
    session.flush()
    for pos, src in enumerate(sources):
        session.add(m.NodeRelationSource(relation_id=rel.id, data_source_id=src.id, position=pos))
    _store_edges(session=session, node_id=node.id, next_ids=next_ids)
    if node.node_status == s.NodeStatus.CREATE.value:
        node.node_status = s.NodeStatus.EDITING.value
    session.flush()
    return rel


def relation_view(*, session: Session, rel: m.NodeRelation) -> dict[str, Any]:
    return s.NodeRelationOut(
        id=rel.id,
        node_id=rel.node_id,
        next_node_id=rel.next_node_id,
        next_node_ids=next_ids_of(session=session, node_id=rel.node_id),
        operator_id=rel.operator_id,
        data_source_ids=relation_source_ids(session=session, relation_id=rel.id),
        model_id=rel.model_id,
        service_info_id=rel.service_info_id,
        max_service_info_id=rel.max_service_info_id,
        min_service_info_id=rel.min_service_info_id,
    ).wire()
