"""The README's Python SDK examples run as written, against a live control with a real local agent,
in a folder holding the quickstart's data; no control or agent process outlives the test."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.cli.quickstart import make_dataset
from control.deploy import free_port
from control.settings import Settings
from tests.e2e.conftest import LiveControl, kill_processes_of

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(# sdk-example\n.*?)```", re.S)

pytestmark = pytest.mark.e2e


def sdk_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_sdk_examples_covering_every_call_the_issue_names() -> None:
    code = "\n".join(sdk_blocks())
    assert len(sdk_blocks()) >= 2
    for call in ("Client(", ".apply(", ".start(", ".wait(", ".logs(", ".metrics(", ".artifacts(", ".trials("):
        assert call in code, call


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveControl]:
    settings = Settings(
        home=tmp_path / "home", port=free_port(), heartbeat_timeout=60, reconcile_interval=0.2
    )
    try:
        with LiveControl(settings) as control:
            yield control
    finally:
        kill_processes_of(tmp_path / "home")


def test_the_readme_sdk_examples_run(
    live: LiveControl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "quickstart"
    make_dataset(work, 200)
    monkeypatch.chdir(work)
    monkeypatch.setenv("ATOM_URL", live.url)
    monkeypatch.delenv("ATOM_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    scope: dict[str, object] = {"__name__": "readme"}
    out = io.StringIO()
    for block in sdk_blocks():
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), scope)  # noqa: S102
    text = out.getvalue()
    lines = text.splitlines()
    assert "experiments demo created" in lines and "schedules nightly created" in lines, text
    run = scope["run"]
    assert f"succeeded train {run.id} succeeded" in lines, text  # type: ignore[attr-defined]
    assert any(line.startswith("accuracy ") for line in lines), text
    assert any(line.startswith("model model ") for line in lines), text
    assert "0 trials" in lines, text

    # a second apply of the same spec changes nothing
    from control.client import Client

    with Client(space="sdk-demo") as atom:
        again = atom.apply(str(scope["PIPELINE"]))
    assert {o.action for o in again} == {"unchanged"}, again
    assert os.environ["ATOM_URL"] == live.url
