"""The `atom apply` spec: YAML sections -> validated entities, checked before anything is sent.

A spec file is one YAML mapping (several `---` documents are allowed):

```yaml
space: default                 # optional; else --space / ATOM_SPACE
connections:  [{connectName: files, connectType: FILE, connectAddr: ./data}]
sources:      [{sourceName: train, connectionName: files, sourceType: source,
                operateExecute: train.csv, dataFormat: csv}]
operators:    [{operatorName: tabular, operatorRuntimeType: TRAIN,
                moduleName: runtime_agent.examples.train_example, executeObject: TrainExample,
                operatorEpoch: 5, deployType: AUTO_DEPLOY, operatorConf: {labelColumn: label}}]
models:       [{modelName: tabular, connectionName: files}]
serviceInfos: [{siName: small, siCpu: 1, siMemory: 1024}]
nodes:
  - nodeName: train-tabular
    operatorRuntimeType: TRAIN
    nodeStatus: EDIT_FINISH
    relation: {operator: tabular, sources: [train, test, predictions], model: tabular,
               serviceInfo: small, maxServiceInfo: null, minServiceInfo: null, next: null}
```

Every entry takes the fields of its create body (`ExperimentIn`, `ExamIn`, `ConnectionIn`,
`DataSourceIn`, `OperatorIn`, `ModelIn`, `ServiceInfoIn`, `NodeIn`; camelCase or snake_case); an
unknown field is an error naming the file, the entry and the field. A node's
`relation` names its operator, sources, model, service infos and next node; each
name is looked up in the spec first, then in the space on the server. A relative
`connectAddr` of a FILE connection is taken relative to the YAML file's folder.

An operator with `codeMode: BUNDLE` may give a local directory or `.tar.gz` / `.zip` as
`codeAddress` (relative to the YAML file's folder): the directory is packed the same way every
time, its digest becomes `codeAddress: atom-code://sha256:<hex>`, and apply uploads it when
control does not have it yet.

Experiments, exams (with a `schedule:`), a node's `exam:`, fan-out (`relation.next` as a list) and
node `inputs` are described in `control.cli._spec_pipeline`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from connectors.errors import ConfigError
from control import safe_yaml
from control.cli import _spec_pipeline as pipeline
from control.cli._spec_code import CodeUpload, resolve_code
from control.client import KINDS
from control.schemas import (
    ConnectionIn,
    DataSourceIn,
    ExamIn,
    ExperimentIn,
    ModelIn,
    NodeIn,
    NodeStatus,
    OperatorIn,
    ServiceInfoIn,
    Wire,
)
from control.settings import Settings

#: YAML section -> (resource kind, create body); apply's order is `apply.ORDER`
SECTIONS: dict[str, tuple[str, type[Wire]]] = {
    "connections": ("connections", ConnectionIn),
    "sources": ("sources", DataSourceIn),
    "operators": ("operators", OperatorIn),
    "models": ("models", ModelIn),
    "serviceInfos": ("service-infos", ServiceInfoIn),
    "nodes": ("nodes", NodeIn),
    "experiments": ("experiments", ExperimentIn),
    "exams": ("exams", ExamIn),
}
SECTION_ALIASES = {
    "dataSources": "sources",
    "data_sources": "sources",
    "service-infos": "serviceInfos",
    "service_infos": "serviceInfos",
    "serviceinfos": "serviceInfos",
}
SECRET_FIELDS = frozenset({"connectPassword"})


class SpecError(ConfigError):
    """The spec cannot be applied; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems in the spec")
        self.problems = problems


class RelationSpec(Wire):
    """A node's `relation:` block: names, resolved to ids at apply time."""

    operator: str = Field(min_length=1)
    sources: list[str] = Field(default_factory=list)
    model: str | None = None
    service_info: str | None = None
    max_service_info: str | None = None
    min_service_info: str | None = None
    next: str | list[str] | None = None
    """The node(s) that wait for this one: a name, or a list of names (fan-out)."""

    def next_names(self) -> list[str]:
        if self.next is None:
            return []
        return [self.next] if isinstance(self.next, str) else list(dict.fromkeys(self.next))

    def references(self) -> list[tuple[str, str]]:
        """(kind, name) of everything the relation names."""
        refs = [("operators", self.operator)] + [("sources", s) for s in self.sources]
        refs += [("models", self.model)] if self.model else []
        for si in (self.service_info, self.max_service_info, self.min_service_info):
            refs += [("service-infos", si)] if si else []
        refs += [("nodes", n) for n in self.next_names()]
        return refs


@dataclass
class Entity:
    """One validated entry of a spec."""

    kind: str
    name: str
    space: str
    where: str
    """`spec.yaml: operators[0] (tabular)`: how error messages name the entry."""
    body: dict[str, Any]
    """The camelCase body PUT by name."""
    compare: dict[str, Any]
    """The fields an existing resource must equal for the entry to be `unchanged`."""
    relation: RelationSpec | None = None
    node_status: NodeStatus | None = None
    code: CodeUpload | None = None
    """A BUNDLE operator's local code, uploaded by apply."""
    links: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Body field -> (kind, name) whose id apply puts in (an exam's experiment, a node's exam)."""
    schedule: dict[str, Any] | None = None
    """An exam's schedule (the wire body), set after the nodes."""
    members: list[str] = field(default_factory=list)
    """The nodes an exam's `nodes:` list puts in it."""

    def references(self) -> list[tuple[str, str]]:
        refs: list[tuple[str, str]] = list(self.links.values())
        if self.kind in ("sources", "models") and self.body.get("connectionName"):
            refs.append(("connections", self.body["connectionName"]))
        if self.relation is not None:
            refs += self.relation.references()
        return refs


@dataclass
class Spec:
    entities: list[Entity] = field(default_factory=list)
    invalid: set[tuple[str, str, str]] = field(default_factory=set)
    """(space, kind, name) of entries refused (their problems are already listed)."""

    def of(self, kind: str) -> list[Entity]:
        return [e for e in self.entities if e.kind == kind]

    def find(self, space: str, kind: str, name: str) -> Entity | None:
        for e in self.entities:
            if (e.space, e.kind, e.name) == (space, kind, name):
                return e
        return None

    @property
    def spaces(self) -> list[str]:
        return list(dict.fromkeys(e.space for e in self.entities))


def load_spec(paths: list[Path], default_space: str) -> Spec:
    """Read and validate spec files; collect every problem before raising.

    Raises:
        SpecError: a file is missing or not YAML, or an entry is invalid.
    """
    spec = Spec()
    problems: list[str] = []
    for path in paths:
        for doc_no, doc in enumerate(_read_docs(path, problems)):
            label = path.name if doc_no == 0 else f"{path.name} (document {doc_no + 1})"
            _load_doc(doc, label, path.parent, default_space, spec, problems)
    return _finish(spec, problems)


def load_documents(
    docs: list[Any], default_space: str, *, label: str = "spec", base: Path | None = None
) -> Spec:
    """Validate spec documents already parsed (mappings of sections), as `load_spec` does files.

    Relative paths (a FILE connection's `connectAddr`, a bundle's `codeAddress`) are taken
    relative to `base` (default: the current directory).

    Raises:
        SpecError: an entry is invalid.
    """
    spec = Spec()
    problems: list[str] = []
    base = base or Path.cwd()
    for doc_no, doc in enumerate(docs):
        name = label if len(docs) == 1 else f"{label} (document {doc_no + 1})"
        _load_doc(doc, name, base, default_space, spec, problems)
    return _finish(spec, problems)


def _finish(spec: Spec, problems: list[str]) -> Spec:
    _check_duplicates(spec, problems)
    pipeline.check_members(spec, problems)
    if problems:
        raise SpecError(problems)
    return spec


def _read_docs(path: Path, problems: list[str]) -> list[Any]:
    settings = Settings()
    limits = {"max_bytes": settings.yaml_max_bytes}
    try:
        text = safe_yaml.read_text(path, **limits)
    except FileNotFoundError:
        problems.append(f"{path}: no such file")
        return []
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
        return []
    except safe_yaml.YamlTooLarge as exc:
        problems.append(f"{path.name}: {exc}")
        return []
    except UnicodeDecodeError as exc:
        problems.append(f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})")
        return []
    try:
        docs = [
            d
            for d in safe_yaml.load_all(text, max_aliases=settings.yaml_max_aliases, **limits)
            if d is not None
        ]
    except safe_yaml.YamlTooLarge as exc:
        problems.append(f"{path.name}: {exc}")
        return []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problems.append(f"{path.name}:{where} not valid YAML: {getattr(exc, 'problem', None) or exc}")
        return []
    if not docs:
        problems.append(f"{path.name}: the file is empty")
    return docs


def _load_doc(doc: Any, label: str, base: Path, default_space: str, spec: Spec, problems: list[str]) -> None:
    if not isinstance(doc, dict):
        problems.append(f"{label}: expected a mapping of sections, got {type(doc).__name__}")
        return
    space = doc.get("space") or default_space
    if not isinstance(space, str):
        problems.append(f"{label}: space must be a name, got {space!r}")
        return
    for key, items in doc.items():
        if key == "space":
            continue
        section = SECTION_ALIASES.get(key, key)
        if section not in SECTIONS:
            problems.append(
                f"{label}: unknown section {key!r}: valid sections are space, {', '.join(SECTIONS)}"
            )
            continue
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(f"{label}: {key} must be a list of entries")
            continue
        for index, raw in enumerate(items):
            entity = _load_entry(raw, section, index, label, base, space, problems)
            if entity is not None:
                spec.entities.append(entity)
            elif isinstance(raw, dict):
                name_field = KINDS[SECTIONS[section][0]]
                spec.invalid.add(
                    (space, SECTIONS[section][0], str(raw.get(name_field, raw.get(_snake(name_field)))))
                )


def _load_entry(
    raw: Any, section: str, index: int, label: str, base: Path, space: str, problems: list[str]
) -> Entity | None:
    kind, model = SECTIONS[section]
    name_field = KINDS[kind]
    if not isinstance(raw, dict):
        problems.append(f"{label}: {section}[{index}]: expected a mapping, got {type(raw).__name__}")
        return None
    raw = dict(raw)
    name = raw.get(name_field, raw.get(_snake(name_field)))
    where = f"{label}: {section}[{index}]" + (f" ({name})" if name else "")
    relation: RelationSpec | None = None
    if kind == "nodes" and "relation" in raw:
        relation = _validate(RelationSpec, raw.pop("relation") or {}, where, problems, prefix="relation.")
        if relation is None:
            return None
    if kind == "connections":
        _resolve_file_addr(raw, base)
    code = resolve_code(raw, base, where, problems) if kind == "operators" else None
    links = pipeline.pop_links(kind, raw, where, problems)
    extras = pipeline.pop_exam_extras(raw, where, problems) if kind == "exams" else (None, [])
    if kind == "operators" and not pipeline.check_search_conf(raw, where, problems):
        return None
    obj = _validate(model, raw, where, problems)
    if obj is None or extras is None:
        return None
    name = getattr(obj, _snake(name_field))
    if kind == "models":
        # only what the user wrote: versions, scores and addresses belong to training
        body = obj.model_dump(mode="json", by_alias=True, exclude_unset=True)
    else:
        body = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
    compare = {k: v for k, v in body.items() if k not in SECRET_FIELDS and v is not None}
    status: NodeStatus | None = None
    if kind == "nodes":
        status = NodeStatus(body["nodeStatus"])
        compare.pop("nodeStatus", None)
    schedule, members = extras
    return Entity(kind, name, space, where, body, compare, relation, status, code, links, schedule, members)


def _validate(
    model: type[BaseModel], raw: dict[str, Any], where: str, problems: list[str], *, prefix: str = ""
) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"{where}: {prefix.rstrip('.') or 'entry'} must be a mapping")
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(f"{where}: {_describe(err, model, prefix)}" for err in exc.errors())
        return None


def _describe(err: Any, model: type[BaseModel], prefix: str) -> str:
    loc = prefix + ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
    if err["type"] == "extra_forbidden":
        known = [f.alias or n for n, f in model.model_fields.items()]
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown field {loc!r}{hint}"
    if err["type"] == "missing":
        return f"missing field {loc!r}"
    return f"field {loc!r}: {err['msg']}"


def _resolve_file_addr(raw: dict[str, Any], base: Path) -> None:
    """Make a FILE connection's relative `connectAddr` absolute, against the YAML file's folder."""
    ctype = str(raw.get("connectType", raw.get("connect_type", "FILE")) or "FILE")
    key = "connectAddr" if "connectAddr" in raw else "connect_addr"
    addr = raw.get(key)
    if ctype.upper() != "FILE" or not isinstance(addr, str) or not addr or "://" in addr:
        return
    path = Path(addr).expanduser()
    if not path.is_absolute():
        path = (base / path).resolve()
    raw[key] = str(path)


def _check_duplicates(spec: Spec, problems: list[str]) -> None:
    seen: dict[tuple[str, str, str], Entity] = {}
    for e in spec.entities:
        key = (e.space, e.kind, e.name)
        if key in seen:
            problems.append(f"{e.where}: {e.name!r} is also defined at {seen[key].where}")
        else:
            seen[key] = e


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
