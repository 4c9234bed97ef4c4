"""The conformance suite every dispatch adapter passes: mix `AdapterConformance` into a test class.

An adapter's test module subclasses it and provides the fixtures below (fsspec's `tests/abstract`
style); the tests then start real agents (small Python programs) on that target:

```python
class TestMyAdapterConformance(AdapterConformance):
    @pytest.fixture
    def adapter(self) -> Iterator[Adapter]: ...          # the adapter under test; close it after
    @pytest.fixture
    def broken(self, log_dir) -> Broken: ...              # a start that must fail, and what it names
    @pytest.fixture
    def expected_total(self) -> dict[str, float]: ...     # {"cpu": ..., "gpu": ...} of the target
```

`child_environ` may be overridden where the adapter can read a live agent's environment itself
(the local adapter reads /proc/<pid>/environ); by default the agent prints it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from control.dispatch.base import Adapter, Admission, Infeasible, Observed, RunDescription
from control.errors import ControlError, DispatchFailed
from control.schemas.resources import ResourceRequest, worker_plan

#: an agent that says it is up, then waits to be stopped (at most a minute)
SLEEPER = "import time\nprint('ready', flush=True)\nfor _ in range(600):\n    time.sleep(0.1)\n"
#: traps SIGTERM, says goodbye and exits 0
TRAPS_TERM = (
    "import signal, sys, time\n"
    "def bye(*_):\n"
    "    print('bye', flush=True)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "print('ready', flush=True)\n"
    "for _ in range(600):\n"
    "    time.sleep(0.1)\n"
)
#: ignores SIGTERM: only SIGKILL ends it
IGNORES_TERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "for _ in range(600):\n"
    "    time.sleep(0.1)\n"
)
ENV_MARK = "ENVIRON="
#: prints its whole environment as one JSON line
PRINTS_ENV = f"import json, os\nprint({ENV_MARK!r} + json.dumps(dict(os.environ)), flush=True)\n"


def until(go: Path, then: str = "") -> str:
    """Code that says it is up, waits (at most a minute) until `go` exists, then runs `then`.

    The test creates `go` once the adapter's start has returned (limits are in place) and whatever
    it checks of the live agent is checked; the agent then ends by itself, which every target
    notices sooner than a stop.
    """
    return (
        "import os, time\nprint('ready', flush=True)\n"
        f"for _ in range(6000):\n    if os.path.exists({str(go)!r}):\n        break\n    time.sleep(0.01)\n"
        + then
    )


_idents = itertools.count(1)


def describe(
    code: str,
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    resources: ResourceRequest | None = None,
    plan: bool = False,
) -> RunDescription:
    """A run whose agent is `python -c code`, with a minimal built environment plus `env`."""
    ident = next(_idents)
    request = resources if resources is not None else ResourceRequest(cpu=0)
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONUNBUFFERED": "1",
        "ATOM_RUN_ID": str(ident),
    }
    return RunDescription(
        kind="run",
        ident=ident,
        name=f"conformance-{ident}",
        command=[sys.executable, "-c", code],
        env={**base, **(env or {})},
        log_path=log_dir / f"run-{ident}.log",
        resources=request,
        plan=worker_plan(request) if plan else None,
        workdir=log_dir,
    )


async def read_logs(adapter: Adapter, desc: RunDescription, external_id: str) -> str:
    """What the agent printed: the target's collected logs, else control's log file."""
    text = await adapter.logs(external_id)
    if text is not None:
        return text
    try:
        return desc.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


async def poll(check: Callable[[], Awaitable[Any]], what: str, *, within: float = 30.0) -> Any:
    """Call `check` until it returns something truthy; fail naming `what` if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    delay = 0.05
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what} (last: {value!r})")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def printed(text: str, start: str) -> str:
    """The first line of `text` that starts with `start` ("" if none): a line the agent printed, not
    a target's echo of the agent's command (Ray logs the entrypoint, code included)."""
    return next((line for line in text.splitlines() if line.startswith(start)), "")


async def wait_output(adapter: Adapter, desc: RunDescription, external_id: str, needle: str) -> str:
    """Wait until the agent has printed a line starting with `needle`; return everything it printed."""

    async def check() -> str:
        text = await read_logs(adapter, desc, external_id)
        return text if printed(text, needle) else ""

    return str(await poll(check, f"{needle!r} in the output of {external_id}"))


async def wait_ended(adapter: Adapter, external_id: str) -> Observed:
    """Wait until `describe` says the agent is no longer alive."""

    async def check() -> Observed | None:
        seen = await adapter.describe(external_id)
        return None if seen.alive else seen

    result: Observed = await poll(check, f"{external_id} to end")
    return result


@dataclass(frozen=True)
class Broken:
    """A start that must fail: the adapter, what it is asked to start, and what the error names."""

    adapter: Adapter
    desc: RunDescription
    names: str


Launch = Callable[..., Awaitable[str]]


class AdapterConformance:
    """Tests every dispatch adapter must pass; subclasses supply `adapter`, `broken`, `expected_total`."""

    #: whether an agent's environment is exactly the description's (plus CUDA_VISIBLE_DEVICES)
    exact_env: bool = False
    #: variables of control's host the target sets itself (a container's PATH and HOME are its image's):
    #: not compared
    replaced_env: frozenset[str] = frozenset()

    @pytest.fixture
    def adapter(self) -> Adapter:
        raise NotImplementedError("a conformance test class must define the `adapter` fixture")

    @pytest.fixture
    def broken(self) -> Broken:
        raise NotImplementedError("a conformance test class must define the `broken` fixture")

    @pytest.fixture
    def expected_total(self) -> dict[str, float]:
        raise NotImplementedError("a conformance test class must define the `expected_total` fixture")

    @pytest.fixture
    def log_dir(self, tmp_path: Path) -> Path:
        return tmp_path

    @pytest.fixture
    async def launch(self, adapter: Adapter) -> AsyncIterator[Launch]:
        """Start a description; whatever was started is stopped and released after the test."""
        started: list[str] = []

        async def start(desc: RunDescription, admission: Admission | None = None) -> str:
            external_id = await adapter.start(desc, admission)
            started.append(external_id)
            return external_id

        yield start
        for external_id in started:
            with contextlib.suppress(DispatchFailed):
                await adapter.stop(external_id, grace=0.5)
            await adapter.release(external_id)

    async def child_environ(self, adapter: Adapter, desc: RunDescription, external_id: str) -> dict[str, str]:
        """The environment of a live agent that printed it (`PRINTS_ENV`), read here from its output."""
        text = await wait_output(adapter, desc, external_id, ENV_MARK)
        environ: dict[str, str] = json.loads(printed(text, ENV_MARK).removeprefix(ENV_MARK))
        return environ

    # -- start, alive, stop -----------------------------------------------------------------------

    async def test_start_returns_an_id_and_describe_says_alive(
        self, adapter: Adapter, launch: Launch, log_dir: Path
    ) -> None:
        desc = describe(until(log_dir / "go"), log_dir)
        external_id = await launch(desc)
        assert isinstance(external_id, str) and external_id
        await wait_output(adapter, desc, external_id, "ready")
        seen = await adapter.describe(external_id)
        assert seen.alive and seen.exit_code is None and not seen.waiting, seen
        (log_dir / "go").touch()
        assert (await wait_ended(adapter, external_id)).exit_code == 0

    async def test_stop_with_grace_ends_both_a_polite_and_a_stubborn_agent(
        self, adapter: Adapter, launch: Launch, log_dir: Path
    ) -> None:
        polite, stubborn = describe(TRAPS_TERM, log_dir), describe(IGNORES_TERM, log_dir)
        polite_id, stubborn_id = await launch(polite), await launch(stubborn)
        await asyncio.gather(
            wait_output(adapter, polite, polite_id, "ready"),
            wait_output(adapter, stubborn, stubborn_id, "ready"),
        )
        await asyncio.gather(adapter.stop(polite_id, grace=20), adapter.stop(stubborn_id, grace=0.5))
        polite_seen, stubborn_seen = await adapter.describe(polite_id), await adapter.describe(stubborn_id)
        assert not polite_seen.alive and not stubborn_seen.alive, (polite_seen, stubborn_seen)
        assert printed(await wait_output(adapter, polite, polite_id, "bye"), "bye") == "bye"
        self.check_graceful_stop(polite_seen)
        self.check_forced_stop(stubborn_seen)

    def check_graceful_stop(self, seen: Observed) -> None:
        """What `describe` says of an agent that exited 0 on SIGTERM (adapters refine this)."""
        assert seen.exit_code in (0, None), seen

    def check_forced_stop(self, seen: Observed) -> None:
        """What `describe` says of an agent killed after the grace (adapters refine this)."""
        assert seen.exit_code != 0, seen

    async def test_stop_twice_and_stop_after_exit_raise_nothing(
        self, adapter: Adapter, launch: Launch, log_dir: Path
    ) -> None:
        sleeper = describe(SLEEPER, log_dir)
        running = await launch(sleeper)
        done = await launch(describe("print('done')", log_dir))
        await wait_output(adapter, sleeper, running, "ready")
        await adapter.stop(running, grace=5)
        await adapter.stop(running, grace=5)
        assert not (await adapter.describe(running)).alive
        await wait_ended(adapter, done)
        await adapter.stop(done, grace=5)
        assert (await adapter.describe(done)).exit_code == 0

    # -- how it ended -----------------------------------------------------------------------------

    async def test_describe_after_exit_gives_the_exit_code_and_reason(
        self, adapter: Adapter, launch: Launch, log_dir: Path
    ) -> None:
        failed = await launch(describe("import sys\nsys.exit(3)", log_dir))
        fine = await launch(describe("print('fine')", log_dir))
        failed_seen, fine_seen = await asyncio.gather(wait_ended(adapter, failed), wait_ended(adapter, fine))
        assert failed_seen.exit_code == 3, failed_seen
        assert "code 3" in failed_seen.detail and "\n" not in failed_seen.detail, failed_seen
        assert fine_seen.exit_code == 0 and not fine_seen.waiting, fine_seen
        assert (await adapter.describe(failed)).exit_code == 3, "a second describe forgot how it ended"

    async def test_logs_hold_what_the_agent_printed(
        self, adapter: Adapter, launch: Launch, log_dir: Path
    ) -> None:
        code = (
            "import sys\nprint('to stdout 41', flush=True)\n"
            "print('to stderr 42', file=sys.stderr, flush=True)"
        )
        desc = describe(code, log_dir)
        external_id = await launch(desc)
        await wait_ended(adapter, external_id)
        text = await wait_output(adapter, desc, external_id, "to stderr 42")
        assert printed(text, "to stdout 41"), text

    # -- resources and failures -------------------------------------------------------------------

    async def test_describe_resources_totals(
        self, adapter: Adapter, expected_total: dict[str, float]
    ) -> None:
        seen = await adapter.describe_resources()
        assert seen["total"]["cpu"] == expected_total["cpu"], seen
        assert seen["total"]["gpu"] == expected_total["gpu"], seen

    async def test_a_start_failure_is_one_dispatch_failed_line(self, broken: Broken) -> None:
        with pytest.raises(DispatchFailed) as caught:
            await broken.adapter.start(broken.desc)
        assert isinstance(caught.value, ControlError)
        message = str(caught.value)
        assert "\n" not in message and broken.names in message, message

    async def test_a_request_it_can_never_meet_is_infeasible(self, adapter: Adapter, log_dir: Path) -> None:
        desc = describe(SLEEPER, log_dir, resources=ResourceRequest(cpu=1, gpu=4), plan=True)
        with pytest.raises(Infeasible, match="needs 4 GPU") as caught:
            await adapter.admit(desc)
        assert "\n" not in str(caught.value)

    # -- environment ------------------------------------------------------------------------------

    async def test_the_agent_sees_the_description_environment(
        self, adapter: Adapter, launch: Launch, log_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CONFORMANCE_CONTROL_ONLY", "leak")
        code = PRINTS_ENV + until(log_dir / "go")
        desc = describe(code, log_dir, env={"CONFORMANCE_DECLARED": "42 and spaces"})
        external_id = await launch(desc)
        try:
            seen = await self.child_environ(adapter, desc, external_id)
        finally:
            (log_dir / "go").touch()
        assert seen.get("CONFORMANCE_DECLARED") == "42 and spaces"
        assert "CONFORMANCE_CONTROL_ONLY" not in seen
        for key, value in desc.env.items():
            if key not in self.replaced_env:
                assert seen.get(key) == value, key
        if self.exact_env:
            assert set(seen) - set(desc.env) <= {"CUDA_VISIBLE_DEVICES"}, set(seen) - set(desc.env)
        assert (await wait_ended(adapter, external_id)).exit_code == 0
