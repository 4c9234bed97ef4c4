"""Container names of two controls sharing one Docker engine never collide (no engine needed)."""

from __future__ import annotations

from pathlib import Path

from control.dispatch.base import RunDescription
from control.dispatch.docker_spec import container_name, docker_prefix
from control.dispatch.registry import build_adapters
from control.settings import Settings


def describe(ident: int, kind: str = "run") -> RunDescription:
    return RunDescription(kind=kind, ident=ident, name="n", command=[], env={}, log_path=Path("x.log"))


def test_two_homes_give_two_prefixes_and_one_home_always_the_same(tmp_path: Path) -> None:
    a, b = docker_prefix(tmp_path / "a"), docker_prefix(tmp_path / "b")
    assert a != b and a == docker_prefix(tmp_path / "a")
    assert a.startswith("atom-") and len(a) == len("atom-") + 8
    assert container_name(describe(7), a) == f"{a}-run-7-1"
    assert container_name(describe(7), b) != container_name(describe(7), a)
    assert container_name(describe(3, "service"), a) == f"{a}-svc-3"


def test_the_registry_names_containers_by_its_home_unless_told(tmp_path: Path) -> None:
    adapter = build_adapters(Settings(home=tmp_path / "h"))["docker"]
    assert adapter.options.prefix == docker_prefix(tmp_path / "h")  # type: ignore[attr-defined]
    adapter = build_adapters(Settings(home=tmp_path / "h", docker_name_prefix="team1"))["docker"]
    assert adapter.options.prefix == "team1"  # type: ignore[attr-defined]
