"""`atom quickstart`: data -> spec -> training run -> inference service -> one prediction, timed.

It writes a separable binary-classification dataset (`f0`..`f7` + `label`; train.csv
and test.parquet) and the packaged `quickstart.yaml` into one folder, applies the spec,
starts the node, follows the run, waits for the AUTO_DEPLOY service to be ready,
sends it a V2 infer request with a few test rows and prints predictions beside the
true labels, then the timings.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from control.cli import render
from control.cli._spec import Spec, load_spec
from control.cli.apply import apply_spec
from control.cli.runs import follow_run, report_failure
from control.cli.services import infer, list_services, outputs_table, v2_request
from control.errors import ControlAPIError
from control.schemas import RunState, ServiceState, TaskEvent

if TYPE_CHECKING:
    import argparse

    from control.cli._context import Context
    from control.client import AsyncControlClient
    from control.schemas import RunOut, ServiceOut

NODE = "quickstart"
FEATURES = 8
LABEL = "label"


def make_dataset(directory: Path, rows: int, *, seed: int = 7) -> tuple[Path, Path]:
    """Write a linearly separable dataset: 80% to train.csv, 20% to test.parquet.

    Returns:
        The two paths.
    """
    # deferred: numpy and pandas cost ~0.4 s to import and only this command needs them
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES))
    w = rng.normal(size=FEATURES)
    w /= np.linalg.norm(w)
    y = (x @ w > 0).astype("int64")
    x += np.outer(2 * y - 1, w) * 0.5  # push both classes off the boundary: a margin of 1
    frame = pd.DataFrame(x.round(6), columns=[f"f{i}" for i in range(FEATURES)])
    frame[LABEL] = y
    cut = max(1, int(rows * 0.8))
    directory.mkdir(parents=True, exist_ok=True)
    train, test = directory / "train.csv", directory / "test.parquet"
    frame.iloc[:cut].to_csv(train, index=False)
    frame.iloc[cut:].reset_index(drop=True).to_parquet(test, index=False)
    return train, test


def template() -> str:
    """The packaged quickstart spec (also shipped as examples/quickstart.yaml)."""
    return importlib.resources.files("control.cli").joinpath("quickstart.yaml").read_text(encoding="utf-8")


def write_spec(directory: Path, epochs: int) -> Path:
    """Write the quickstart spec beside the data, with the epoch count asked for."""
    text = template()
    if epochs != 3:
        doc = yaml.safe_load(text)
        doc["operators"][0]["operatorEpoch"] = epochs
        header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
        text = header + "\n" + yaml.safe_dump(doc, sort_keys=False)
    path = directory / "quickstart.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def wait_service(ctx: Context, client: AsyncControlClient, run: RunOut, wait_s: float) -> ServiceOut:
    """Wait for the service control started for `run`'s model version to be ready.

    Raises:
        ControlAPIError: the service failed, needs approval, or was not ready in time.
    """
    deadline = time.monotonic() + wait_s
    with ctx.out.status("waiting for the inference service") as status:
        while True:
            mine = [s for s in await list_services(client, ctx.space) if s.runtime_id == run.id]
            if mine:
                service = max(mine, key=lambda s: s.id)
                status.update(f"service {service.service_name} {service.state}")
                if service.state == ServiceState.READY:
                    return service
                if service.state in (ServiceState.FAILED, ServiceState.STOPPED):
                    why = service.reason or "no reason given"
                    raise ControlAPIError(f"service {service.service_name} {service.state}: {why}")
                if service.state == ServiceState.WAITING_APPROVAL:
                    raise ControlAPIError(f"service {service.service_name} waits for approval (deployType)")
            if time.monotonic() > deadline:
                raise ControlAPIError(
                    f"no ready service for run {run.id} after {wait_s:.0f}s (see `atom services`)"
                )
            await asyncio.sleep(0.25)


def prepare(args: argparse.Namespace, space: str) -> tuple[Path, Path, Spec]:
    """Write the dataset and the spec; return the folder, the test file and the loaded spec."""
    from control.settings import Settings  # pydantic-settings only: no store import

    directory = (Path(args.dir).expanduser() if args.dir else Settings().home / "quickstart").resolve()
    _, test = make_dataset(directory, args.rows)
    return directory, test, load_spec([write_spec(directory, args.epochs)], space)


async def cmd_quickstart(ctx: Context, args: argparse.Namespace) -> int:
    began = time.monotonic() - ctx.startup_s
    directory, test, spec = prepare(args, ctx.space)
    ctx.out.print(f"[bold]dataset[/] {args.rows} rows x {FEATURES} features + {LABEL} -> {directory}")
    async with ctx.client(timeout=60.0) as client:
        ctx.out.print(render.apply_table(await apply_spec(client, spec)))
        node = await client.get(ctx.space, "nodes", NODE)
        started = time.monotonic()
        result = await client.start_node_task(TaskEvent(task_id=int(node["id"])))
        followed = await follow_run(ctx, client, result.run_ids[0], poll=0.25, wait_s=args.timeout)
        run = followed.run
        if run.state != RunState.SUCCEEDED:
            await report_failure(ctx, client, run)
            return 1
        trained = followed.seen[str(RunState.SUCCEEDED)]
        service = await wait_service(ctx, client, run, args.timeout)
        ready = time.monotonic()

    import pandas as pd  # deferred: see make_dataset

    rows = pd.read_parquet(test).head(args.predict_rows)
    asked = time.monotonic()
    response = await infer(service, v2_request(rows.drop(columns=[LABEL])), transport=ctx.transport)
    answered = time.monotonic()
    ctx.out.print(f"\n[bold]predictions[/] from {service.service_name} ({service.endpoint})")
    table = outputs_table(response, len(rows), rows[LABEL].tolist())
    ctx.out.print(table if table is not None else response)

    running = followed.seen.get(str(RunState.RUNNING))
    training = render.elapsed(run.started_at, run.finished_at)
    timings = [
        *([("control start (embedded)", render.fmt_duration(ctx.startup_s))] if ctx.embedded else []),
        (
            "start -> running",
            render.fmt_duration(
                running - started if running else render.elapsed(run.created_at, run.started_at)
            ),
        ),
        ("training (running -> succeeded)", render.fmt_duration(training)),
        ("succeeded -> service ready", render.fmt_duration(ready - trained)),
        ("first prediction", render.fmt_duration(answered - asked)),
        ("total", render.fmt_duration(time.monotonic() - began)),
    ]
    ctx.out.print()
    ctx.out.print(render.kv_table(timings, title="timings"))
    spec_file = directory / "quickstart.yaml"
    ctx.out.print(f"\nnext: atom runs · atom logs {run.id} · atom services · atom apply -f {spec_file}")
    space = "" if ctx.space == "default" else f" --space {ctx.space}"
    ctx.out.print(
        f"the service {service.service_name} keeps running (it answers at {service.endpoint}); "
        f"stop it with: atom services stop {service.service_name}{space} "
        f"(every one: atom services stop --all{space})"
    )
    return 0
