"""Dependency direction (DESIGN.md §1), checked on every import statement of the packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "connectors": ("control", "runtime_agent", "tui"),
    "runtime_agent": (
        "control.store",
        "control.api",
        "control.dispatch",
        "control.orchestrator",
        "control.reconcile",
        "control.runs",
        "sqlalchemy",
        "tui",
    ),
    "tui": (
        "control.store",
        "control.api",
        "control.dispatch",
        "control.orchestrator",
        "sqlalchemy",
        "runtime_agent",
    ),
    "control": ("tui", "textual", "runtime_agent"),
}


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_one_way(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)
