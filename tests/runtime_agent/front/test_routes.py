"""The routing table: what it accepts, and one clear message naming the field for what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from runtime_agent.front.routes import RouteError, RoutingTable, describe, parse_table

A = "http://127.0.0.1:41001"
B = "http://127.0.0.1:41002"
C = "http://127.0.0.1:41003"


def good() -> dict[str, Any]:
    return {
        "service": "reasoning-churn-3",
        "versions": [
            {"version": "2", "weight": 90, "replicas": [A, B + "/"]},
            {"version": "3", "weight": 10, "replicas": [C]},
        ],
        "mirror": {"version": "3", "percent": 25},
    }


def test_a_good_table_parses_and_round_trips_in_camel_case() -> None:
    table = parse_table(good())
    assert [v.version for v in table.versions] == ["2", "3"]
    assert table.versions[0].replicas == (A, B)  # trailing slash dropped
    wire = table.wire()
    assert wire["mirror"] == {"version": "3", "percent": 25}
    assert parse_table(RoutingTable.model_validate(wire).model_dump_json(by_alias=True)) == table
    assert describe(table) == "versions 2=90% (2 replicas), 3=10% (1 replica); mirror 25% to 3"


def test_a_drained_version_may_have_no_replicas_and_mirror_is_optional() -> None:
    data = good()
    data["versions"][1] = {"version": "3", "weight": 0, "replicas": []}
    data["versions"][0]["weight"] = 100
    data["mirror"] = None
    assert parse_table(data).versions[1].replicas == ()


def change(path: str, value: Any) -> dict[str, Any]:
    data = good()
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (change("versions.1.weight", 120), "versions[1].weight: weight 120 is outside 0-100"),
        (change("versions.0.weight", -5), "versions[0].weight: weight -5 is outside 0-100"),
        (change("versions.0.weight", 80), "versions: the weights sum to 90, not 100"),
        (
            change("versions.1.replicas", []),
            "versions[1].replicas: version '3' has weight 10 but no replicas",
        ),
        (change("versions.1.version", "2"), "versions[1].version: version '2' is listed twice"),
        (change("mirror.version", "4"), "mirror.version: '4' is not a version of the table (versions: 2, 3)"),
        (change("mirror.percent", 101), "mirror.percent: percent 101 is outside 0-100"),
        (change("versions.0.replicas", ["ftp://x"]), "versions[0].replicas: 'ftp://x' is not an http(s)"),
        (change("versions.0.replicas", [A, A]), "versions[0].replicas: a replica is listed twice"),
        (change("versions.0.weight", "lots"), "versions[0].weight: Input should be a valid integer"),
        (change("service", ""), "service: String should have at least 1 character"),
        (change("versions.0.extra", 1), "versions[0].extra: Extra inputs are not permitted"),
    ],
)
def test_a_bad_table_is_refused_naming_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(RouteError) as caught:
        parse_table(data)
    assert str(caught.value).startswith(message)


def test_mirroring_to_the_version_that_takes_all_traffic_is_refused() -> None:
    data = good()
    data["versions"][0]["weight"], data["versions"][1]["weight"] = 0, 100
    with pytest.raises(RouteError, match=r"^mirror.version: version '3' takes 100% of the traffic"):
        parse_table(data)


def test_a_table_that_is_not_json_is_refused() -> None:
    with pytest.raises(RouteError, match="not JSON"):
        parse_table(b"{nope")
    with pytest.raises(RouteError, match="JSON object"):
        parse_table(b"[1, 2]")


def test_the_package_names_resolve_and_the_cli_imports_stay_light() -> None:
    import subprocess
    import sys

    import runtime_agent.front as front

    assert all(getattr(front, name) is not None for name in front.__all__)
    code = (
        "import sys, runtime_agent.__main__ as m; m.build_parser();"
        "print(sorted(x for x in ('uvicorn', 'starlette', 'runtime_agent.front.proxy') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
