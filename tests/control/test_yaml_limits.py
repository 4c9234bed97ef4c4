"""Spec files are read with limits on size, aliases and what aliases expand to: an alias bomb is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from control import safe_yaml
from control.cli._spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[2]


def billion_laughs(levels: int = 9) -> str:
    """Each anchor holds nine aliases of the one before: 9**levels strings once expanded."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    op = f"{{operatorName: bomb, moduleName: m, executeObject: E, operatorConf: {{x: *a{levels}}}}}"
    lines.append(f"operators: [{op}]")
    return "\n".join(lines) + "\n"


def problems_of(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec([path], "default")
    return info.value.problems


def test_an_alias_bomb_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    """In a fresh interpreter: `atom apply`'s loader refuses the bomb; its peak RSS stays small."""
    spec = tmp_path / "bomb.yaml"
    spec.write_text(billion_laughs(), encoding="utf-8")
    script = textwrap.dedent(
        f"""
        import json, resource
        from pathlib import Path
        from control.cli._spec import SpecError, load_spec
        try:
            load_spec([Path({str(spec)!r})], "default")
            out = {{"refused": None}}
        except SpecError as exc:
            out = {{"refused": exc.problems}}
        # VmHWM: this process's own peak (ru_maxrss would carry over the forking parent's across exec)
        hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:")]
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["peak_kib"] = int(hwm[0].split()[1]) if hwm else own
        print(json.dumps(out))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["refused"] == [
        "bomb.yaml: expands to more than 8388608 values once its aliases are followed "
        "(ATOM_YAML_MAX_BYTES): is it an alias bomb?"
    ]
    assert result["peak_kib"] < 400 * 1024, result  # the expanded bomb would take gigabytes


def test_more_aliases_than_allowed_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOM_YAML_MAX_ALIASES", "10")
    path = tmp_path / "many.yaml"
    path.write_text("x: &x 1\nlist: [" + ", ".join(["*x"] * 11) + "]\n", encoding="utf-8")
    assert problems_of(path) == [
        "many.yaml: uses more than 10 aliases (*name), the most allowed (ATOM_YAML_MAX_ALIASES): "
        "is it an alias bomb?"
    ]


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOM_YAML_MAX_BYTES", "2048")
    path = tmp_path / "big.yaml"
    path.write_text("operators: [" + "{" * 3000, encoding="utf-8")  # not even YAML: never parsed
    assert problems_of(path) == ["big.yaml: is 3012 bytes, over the limit of 2048 (ATOM_YAML_MAX_BYTES)"]


def test_a_spec_with_a_few_aliases_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        textwrap.dedent(
            """
            operators:
              - {operatorName: a, moduleName: m, executeObject: E, operatorConf: &conf {labelColumn: label}}
              - {operatorName: b, moduleName: m, executeObject: E, operatorConf: *conf}
            """
        ),
        encoding="utf-8",
    )
    spec = load_spec([path], "default")
    assert [e.name for e in spec.entities] == ["a", "b"]


def test_deep_nesting_is_refused_in_one_line() -> None:
    with pytest.raises(safe_yaml.YamlTooLarge, match="nests values deeper"):
        safe_yaml.load("[" * 5000 + "]" * 5000)


def test_the_agent_spec_file_is_read_with_the_same_limits(tmp_path: Path) -> None:
    from runtime_agent.pipeline import SpecError as AgentSpecError
    from runtime_agent.pipeline import load_spec_file

    path = tmp_path / "task.yaml"
    path.write_text(billion_laughs(), encoding="utf-8")
    with pytest.raises(AgentSpecError, match="alias bomb"):
        load_spec_file(path)
