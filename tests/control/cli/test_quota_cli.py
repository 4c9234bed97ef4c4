"""`atom quota [SPACE]` and `atom quota set SPACE --gpu 4 --cpu 8 --memory 16Gi` against the real app;
`atom runs` shows why a run waits for its space's quota."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from control.cli.main import main
from control.cli.quota import memory_mib
from control.client import AsyncControlClient
from control.settings import Settings
from tests.control.cli.conftest import FakeControl, LifespanTransport, run_record

Atom = Callable[..., tuple[int, str, str]]


def make_space(settings: Settings, name: str) -> None:
    async def make() -> None:
        async with AsyncControlClient("http://atom.test", transport=LifespanTransport(settings)) as c:
            await c.ensure_space(name)

    asyncio.run(make())


def rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:] if line.strip()}


def test_quota_set_and_show(atom: Atom, control_settings: Settings) -> None:
    make_space(control_settings, "team-a")
    code, out, err = atom("quota", "set", "team-a", "--gpu", "4", "--cpu", "8", "--memory", "16Gi")
    assert code == 0, err
    assert out.splitlines()[0].strip() == "space team-a"
    assert rows(out) == {"cpu": ["0", "8"], "gpu": ["0", "4"], "memory": ["0", "MiB", "16", "GiB"]}

    code, out, err = atom("quota", "set", "team-a", "--gpu", "none")  # the others stay as they were
    assert code == 0, err
    assert rows(out) == {"cpu": ["0", "8"], "gpu": ["0", "no", "limit"], "memory": ["0", "MiB", "16", "GiB"]}

    code, out, err = atom("--space", "team-a", "quota")
    assert code == 0 and rows(out)["cpu"] == ["0", "8"]

    code, out, err = atom("quota", "team-a", "--gpu", "2")
    assert code == 2 and "atom quota set SPACE" in err
    code, out, err = atom("quota", "set", "team-a", "--memory", "lots")
    assert code == 2 and "--memory 'lots'" in err
    code, out, err = atom("quota", "set", "team-a", "--gpu", "-1")
    assert code == 2 and "must not be negative" in err
    code, out, err = atom("quota", "nowhere")
    assert code == 1 and "nowhere" in err


@pytest.mark.parametrize(
    ("text", "mib"),
    [("16Gi", 16384), ("512Mi", 512), ("512", 512), ("1.5Gi", 1536), ("1G", 954), ("1Ti", 1 << 20)],
)
def test_memory_sizes(text: str, mib: int) -> None:
    assert memory_mib(text) == mib


def test_runs_shows_a_run_waiting_for_quota(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    waiting = run_record(
        7, state="pending", reason="quota: space team-a uses 3 of 4 GPUs", progress=None, stage=None
    )
    other = run_record(
        8, state="pending", reason="started by local adapter as pid:1", progress=None, stage=None
    )
    fake.on("GET", "/api/v1/runs", {"items": [waiting, other], "total": 2})
    code = main(["runs"], transport=fake.transport)
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "pending: quota: space team-a uses 3 of 4 GPUs" in lines["7"]
    assert "quota" not in lines["8"] and "started by" not in lines["8"]
