"""`atom apply` against the real control app in-process: create, idempotent re-apply, updates, refusals."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from control.api.app import create_app
from control.cli._spec import SpecError, load_spec
from control.cli.apply import apply_spec
from control.client import AsyncControlClient
from control.settings import Settings
from tests.control.cli.test_spec import GOOD

Atom = Callable[..., tuple[int, str, str]]


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
async def client(control_settings: Settings) -> AsyncIterator[AsyncControlClient]:
    app = create_app(control_settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        AsyncControlClient("http://control", transport=transport) as c,
    ):
        yield c


def actions(outcomes: list) -> dict[tuple[str, str], str]:
    return {(o.kind, o.name): o.action for o in outcomes}


async def test_apply_creates_then_reapply_changes_nothing(client: AsyncControlClient, tmp_path: Path) -> None:
    spec = load_spec([write(tmp_path, GOOD)], "default")
    first = await apply_spec(client, spec)
    assert set(actions(first).values()) == {"created"}
    assert len(first) == 7

    second = await apply_spec(client, spec)
    assert all(o.action == "unchanged" for o in second if o.kind != "nodes"), second
    # the node view does not carry its relation: the relation is re-sent (createNodeRelation replaces)
    (node,) = [o for o in second if o.kind == "nodes"]
    assert node.action in ("unchanged", "updated") and node.detail in ("", "relation")

    for kind, count in [("connections", 1), ("sources", 2), ("operators", 1), ("models", 1),
                        ("service-infos", 1), ("nodes", 1)]:  # fmt: skip
        assert len(await client.list("team-a", kind)) == count, kind
    got = await client.get("team-a", "nodes", "train-tabular")
    assert got["nodeStatus"] == "EDIT_FINISH"
    source = await client.get("team-a", "sources", "train")
    assert source["connectionName"] == "files"


async def test_a_changed_field_is_an_update_naming_it(client: AsyncControlClient, tmp_path: Path) -> None:
    await apply_spec(client, load_spec([write(tmp_path, GOOD)], "default"))
    changed = GOOD.replace("operatorEpoch: 5", "operatorEpoch: 7").replace("siCpu: 1", "siCpu: 2")
    outcomes = await apply_spec(client, load_spec([write(tmp_path, changed)], "default"))
    by = {(o.kind, o.name): o for o in outcomes}
    assert (by["operators", "tabular"].action, by["operators", "tabular"].detail) == (
        "updated",
        "operatorEpoch",
    )
    assert (by["service-infos", "small"].action, by["service-infos", "small"].detail) == ("updated", "siCpu")
    assert by["connections", "files"].action == "unchanged"
    assert (await client.get("team-a", "operators", "tabular"))["operatorEpoch"] == 7


async def test_relation_naming_a_missing_operator_writes_nothing(
    client: AsyncControlClient, tmp_path: Path
) -> None:
    text = GOOD.replace("{operator: tabular,", "{operator: nope,")
    with pytest.raises(SpecError) as info:
        await apply_spec(client, load_spec([write(tmp_path, text)], "default"))
    assert info.value.problems == [
        "spec.yaml: nodes[0] (train-tabular): names operator 'nope', which is neither in the spec "
        "nor in space 'team-a'"
    ]
    assert await client.list("team-a", "connections") == []


async def test_names_not_in_the_spec_are_found_on_the_server(
    client: AsyncControlClient, tmp_path: Path
) -> None:
    await apply_spec(client, load_spec([write(tmp_path, GOOD)], "default"))
    extra = """
    space: team-a
    sources:
      - {sourceName: extra, connectionName: files, operateExecute: more.csv}
    """
    outcomes = await apply_spec(client, load_spec([write(tmp_path, extra, "more.yaml")], "default"))
    assert actions(outcomes) == {("sources", "extra"): "created"}


async def test_dry_run_writes_nothing(client: AsyncControlClient, tmp_path: Path) -> None:
    outcomes = await apply_spec(client, load_spec([write(tmp_path, GOOD)], "default"), dry_run=True)
    assert set(actions(outcomes).values()) == {"would be created"}
    assert [s["spaceName"] for s in await client.list_spaces()] == []


def table_rows(out: str) -> dict[tuple[str, str], str]:
    """KIND NAME ACTION rows of apply's table."""
    rows = [line.split() for line in out.splitlines()[1:]]
    return {(r[0], r[1]): r[2] for r in rows if len(r) >= 3}


def test_atom_apply_prints_a_table_and_is_idempotent(atom: Atom, tmp_path: Path) -> None:
    spec = str(write(tmp_path, GOOD))
    code, out, err = atom("apply", "-f", spec)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split() == ["KIND", "NAME", "ACTION", "CHANGED"]
    assert table_rows(out)["connections", "files"] == "created"
    assert out.splitlines()[-1] == "7 created"

    code, out, _ = atom("apply", "-f", spec)
    assert code == 0
    rows = table_rows(out)
    assert rows["operators", "tabular"] == "unchanged"
    assert "created" not in rows.values()

    code, out, _ = atom("--space", "team-a", "get", "sources")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ROLE", "CONNECTION", "EXECUTE", "FORMAT"]
    assert [line.split()[1] for line in lines[1:]] == ["train", "predictions"]


def test_atom_apply_reports_server_refusals_in_one_line(atom: Atom, tmp_path: Path) -> None:
    # a TRAIN node bound to a REASONING operator: valid YAML, refused by control
    text = GOOD.replace("operatorRuntimeType: train", "operatorRuntimeType: REASONING")
    code, out, err = atom("apply", "-f", str(write(tmp_path, text)))
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "REASONING" in err and "Traceback" not in err


def test_listing_a_space_that_does_not_exist_yet_is_not_an_error(atom: Atom) -> None:
    note = "space 'default' does not exist yet: `atom apply` or `atom quickstart` creates it\n"
    for args in (["runs"], ["services"], ["get", "nodes"]):
        assert atom(*args) == (0, "", note), args
    code, _, err = atom("describe", "node", "nope")
    assert code == 1 and err.startswith("error: ")
