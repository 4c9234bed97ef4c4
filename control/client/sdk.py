"""`Client`: Atom from Python scripts and notebooks: apply specs, start runs and exams, wait, read
logs, metrics, artifacts, trials and attempts, and manage exam schedules.

```python
from control.client import Client

with Client() as atom:                       # ATOM_URL / ATOM_TOKEN, `atom login`, or an embedded control
    atom.apply("pipeline.yaml")
    run = atom.start("train")                # a node's name: one run; an exam's name: an exam run
    run = atom.wait(run, timeout=600)
    print(run.state, atom.metrics(run.id)["accuracy"][-1])
```

Every call blocks (it runs on the client's own event loop thread, so it also works inside
Jupyter). The methods of `ControlClient` (and so of `AsyncControlClient`) are there too:
`atom.list_runs(space="default")`, `atom.get("default", "nodes", "train")` ...
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from control import safe_yaml
from control.cli._embedded import control_url
from control.cli._spec import Spec, load_documents, load_spec
from control.cli.apply import Outcome, apply_spec
from control.client._sync import ControlClient
from control.errors import ControlAPIError
from control.schemas import MetricPoint, RunOut, TaskEvent
from control.schemas.exam_runs import ExamRunOut
from control.schemas.pipeline import ExamRunState
from control.settings import Settings

#: exam run states after which nothing changes any more
EXAM_RUN_ENDED = frozenset({ExamRunState.SUCCEEDED, ExamRunState.FAILED, ExamRunState.STOPPED})


class WaitTimeout(TimeoutError):
    """`Client.wait` gave up: the run or exam run had not ended within the timeout."""

    def __init__(self, what: str, state: str, timeout: float) -> None:
        super().__init__(f"{what} is still {state} after {timeout:g}s: wait longer, or stop it")
        self.state = state


class Client(ControlClient):
    """A blocking client for control, with the calls a script needs by name.

    Args:
        url: control's URL; default `ATOM_URL`, else a control already on the local port
            (`ATOM_PORT`), else an embedded one that runs until `close()` (as the CLI does).
        token: default `ATOM_TOKEN`, else the token `atom login` saved for that URL.
        space: the space names refer to; default `ATOM_SPACE`, else `default`.
        timeout: seconds per request.

    Example:
        >>> with Client("http://127.0.0.1:8470", space="team-a") as atom:   # doctest: +SKIP
        ...     print([n["nodeName"] for n in atom.list("team-a", "nodes")])
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        space: str | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.space = space or os.environ.get("ATOM_SPACE") or "default"
        self._where = contextlib.ExitStack()
        try:
            where = self._where.enter_context(
                control_url(url or os.environ.get("ATOM_URL") or None, token or os.environ.get("ATOM_TOKEN"))
            )
            self.url: str = where.url
            self.embedded: bool = where.embedded
            """True when control runs inside this process until `close()`."""
            super().__init__(where.url, token=where.token, timeout=timeout)
        except BaseException:
            self._where.close()
            raise

    def close(self) -> None:
        """Close the connection (and stop the embedded control, if this client started one)."""
        try:
            super().close()
        finally:
            self._where.close()

    def __enter__(self) -> Client:
        return self

    # -- specs ------------------------------------------------------------------------------------

    def apply(
        self, spec: str | Path | Mapping[str, Any] | list[Mapping[str, Any]], *, dry_run: bool = False
    ) -> list[Outcome]:
        """Make control hold what a spec says, as `atom apply -f` does; idempotent.

        Args:
            spec: a YAML file's path, YAML text, or the parsed document(s) (a dict, or a list of them).
                Names without a `space:` go to this client's space.
            dry_run: only say what would change.

        Returns:
            One `Outcome` per entity (`kind`, `name`, `action`: created, updated or unchanged,
            `detail`: the changed fields).

        Raises:
            SpecError: the spec is invalid; `problems` names each file, entry and field. Nothing
                was written.

        Example:
            >>> atom.apply({"experiments": [{"experimentName": "churn"}]})   # doctest: +SKIP
            [Outcome(kind='experiments', name='churn', space='default', action='created', detail='')]
        """
        loaded = self._load(spec)
        outcomes: list[Outcome] = self._run(apply_spec(self._async, loaded, dry_run=dry_run))
        return outcomes

    def _load(self, spec: str | Path | Mapping[str, Any] | list[Mapping[str, Any]]) -> Spec:
        if isinstance(spec, Mapping):
            return load_documents([dict(spec)], self.space)
        if isinstance(spec, list):
            return load_documents([dict(d) for d in spec], self.space)
        if isinstance(spec, Path) or ("\n" not in spec and spec.strip().endswith((".yaml", ".yml"))):
            return load_spec([Path(spec)], self.space)
        settings = Settings()
        docs = [
            d
            for d in safe_yaml.load_all(
                spec, max_bytes=settings.yaml_max_bytes, max_aliases=settings.yaml_max_aliases
            )
            if d is not None
        ]
        return load_documents(docs, self.space)

    # -- starting and waiting ---------------------------------------------------------------------

    def start(
        self,
        name: str,
        *,
        kind: str | None = None,
        params: Mapping[str, str] | None = None,
        envs: Mapping[str, str] | None = None,
    ) -> Any:
        """Start a node (one run) or an exam (an exam run: its DAG, roots first) by name.

        Args:
            name: the node's or exam's name in this client's space.
            kind: `node` or `exam` when a node and an exam share the name.
            params: run parameters (`runParameter`); envs: environment variables for the agents.

        Returns:
            The run (`RunOut`) for a node; the exam run for an exam.

        Example:
            >>> run = atom.start("train", params={"lr": "0.01"})   # doctest: +SKIP
            >>> exam_run = atom.start("weekly")                     # doctest: +SKIP
        """
        kind = kind or self._kind_of(name)
        if kind == "exam":
            start_exam = self._async_call("start_exam_run")
            return start_exam(name, space=self.space, envs=dict(envs or {}), run_parameter=dict(params or {}))
        node = self.get(self.space, "nodes", name)
        event = TaskEvent(task_id=int(node["id"]), task_type="NODE", envs=dict(envs or {}),
                          run_parameter=dict(params or {}))  # fmt: skip
        result = self.start_node_task(event)
        return self.get_run(result.run_ids[0])

    def _kind_of(self, name: str) -> str:
        found = [k for k in ("nodes", "exams") if self._exists(k, name)]
        if not found:
            raise ControlAPIError(f"no node or exam named {name!r} in space {self.space!r}", status_code=404)
        if len(found) == 2:
            raise ValueError(
                f"{name!r} is both a node and an exam in space {self.space!r}: pass kind='node' or 'exam'"
            )
        return found[0].rstrip("s")

    def _exists(self, kind: str, name: str) -> bool:
        try:
            self.get(self.space, kind, name)
        except ControlAPIError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    def wait(self, target: Any, *, timeout: float = 600.0, poll: float = 0.5) -> Any:
        """Block until a run or an exam run ends; return its final view.

        Args:
            target: a run (`RunOut`) or run id, or an exam run (`ExamRunOut`) as `start` returns it.
            timeout: seconds to wait at most.
            poll: seconds between looks.

        Raises:
            WaitTimeout: it had not ended after `timeout` seconds (it goes on running).

        Example:
            >>> run = atom.wait(atom.start("train"), timeout=300)   # doctest: +SKIP
            >>> run.state
            <RunState.SUCCEEDED: 'succeeded'>
        """
        if isinstance(target, RunOut | int):
            run_id = target.id if isinstance(target, RunOut) else target
            return self._poll(lambda: self.get_run(run_id), lambda r: r.state.is_terminal(), f"run {run_id}",
                              timeout, poll)  # fmt: skip
        if not isinstance(target, ExamRunOut):
            raise TypeError(f"wait() takes a run, a run id or an exam run, not {type(target).__name__}")
        exam_run_id = target.id
        return self._poll(
            lambda: self.exam_run(exam_run_id),
            lambda r: r.state in EXAM_RUN_ENDED,
            f"exam run {exam_run_id}",
            timeout,
            poll,
        )

    def _poll(
        self, look: Callable[[], Any], ended: Callable[[Any], bool], what: str, timeout: float, poll: float
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            seen = look()
            if ended(seen):
                return seen
            if time.monotonic() >= deadline:
                raise WaitTimeout(what, str(getattr(seen.state, "value", seen.state)), timeout)
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    # -- what a run left ----------------------------------------------------------------------------

    def logs(self, run_id: int) -> str:
        """The run's whole log so far.

        Example:
            >>> print(atom.logs(run.id)[-500:])   # doctest: +SKIP
        """
        text: list[str] = []
        offset = 0
        while True:
            page = self.request(
                "GET", f"/api/v1/runs/{run_id}/logs", params={"offset": offset, "limit": 65536}
            )
            chunk = str(page.get("text") or "")
            if not chunk:
                return "".join(text)
            text.append(chunk)
            offset = int(page.get("nextOffset", offset + len(chunk.encode())))

    def metrics(self, run_id: int) -> dict[str, list[float]]:
        """The run's metrics: name -> values in step order.

        Example:
            >>> atom.metrics(run.id)["accuracy"][-1]   # the last reported accuracy  # doctest: +SKIP
            0.93
        """
        points: list[MetricPoint] = self.run_metrics(run_id)
        out: dict[str, list[float]] = {}
        for p in sorted(points, key=lambda p: (p.step, p.at)):
            out.setdefault(p.name, []).append(p.value)
        return out

    def artifacts(self, run_id: int) -> Any:
        """The outputs the run left (`model`, `metrics`, `sink:<source>`, declared files).

        Example:
            >>> {a.name: a.uri for a in atom.artifacts(run.id)}   # doctest: +SKIP
        """
        return self._async_call("run_artifacts")(run_id)

    def trials(self, run_id: int) -> Any:
        """The trials of the run's hyper-parameter search (operator `searchConf`), best first.

        Example:
            >>> best = atom.trials(run.id).items[0]   # doctest: +SKIP
        """
        return self._async_call("run_trials")(run_id)

    def attempts(self, run_id: int) -> Any:
        """Every attempt of the run (retries), with how each ended and its failure class.

        Example:
            >>> [a["state"] for a in atom.attempts(run.id)]   # doctest: +SKIP
        """
        return self._async_call("run_attempts")(run_id)

    def resume(self, exam_run_id: int) -> Any:
        """Run again the failed, stopped and skipped nodes of an exam run (succeeded ones are kept).

        Example:
            >>> atom.wait(atom.resume(exam_run.id))   # doctest: +SKIP
        """
        return self._async_call("resume_exam_run")(exam_run_id)

    # -- schedules --------------------------------------------------------------------------------

    def _exam_id(self, exam: str | int) -> int:
        return exam if isinstance(exam, int) else int(self.get(self.space, "exams", exam)["id"])

    def schedule(self, exam: str | int) -> Any:
        """An exam's schedule (cron, timezone, next fire time ...), by exam name or id.

        Example:
            >>> atom.schedule("weekly").next_fire_at   # doctest: +SKIP
        """
        return self._async_call("schedule")(self._exam_id(exam))

    def set_schedule(
        self,
        exam: str | int,
        cron: str,
        *,
        timezone: str = "UTC",
        start: datetime | date | None = None,
        end: datetime | date | None = None,
        concurrency: str = "skip",
        enabled: bool = True,
    ) -> Any:
        """Set an exam's schedule (what `schedule:` in a spec does).

        Example:
            >>> atom.set_schedule("weekly", "0 3 * * 1", timezone="Europe/Berlin")   # doctest: +SKIP
        """
        body = {
            "cron": cron,
            "timezone": timezone,
            "concurrency": concurrency,
            "enabled": enabled,
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
        }
        return self._async_call("set_schedule")(self._exam_id(exam), body)

    def backfill(self, exam: str | int, start: datetime | date, end: datetime | date) -> Any:
        """Run the exam once for every cron time in [start, end] that has no exam run yet.

        Example:
            >>> atom.backfill("weekly", date(2026, 1, 1), date(2026, 1, 31)).created   # doctest: +SKIP
        """
        return self._async_call("backfill")(self._exam_id(exam), start, end)

    def _async_call(self, name: str) -> Callable[..., Any]:
        """The blocking form of the async client's call `name` (also where `Client` has its own)."""
        if not hasattr(self._async, name):
            raise NotImplementedError(f"control's client has no {name!r} call: update Atom")
        return ControlClient.__getattr__(self, name)
