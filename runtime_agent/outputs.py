"""Artifacts between nodes, on the agent's side: inputs handed to operators, outputs reported to control.

Inputs: the run's spec carries the upstream artifacts its node's `inputs` resolved to at dispatch;
`ctx.inputs` holds them and `await ctx.input_model("model")` fetches a model input's files (the
version the upstream node registered) into a local directory.

Outputs, reported once the sinks have committed (control records `model` and `metrics` itself):

- every sink as `sink:<sourceName>` (kind dataset): `{connection, target, rows, format}`;
- every file the operator declared with `ctx.declare_output(name, path)` (kind file): stored in the
  model's store (the model's connection, else the agent's model folder) under
  `outputs/<node>/<runId>/<name>/<file>` (a directory is packed as `<name>.tar.gz`); uri where it lies.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from control.schemas import ConnectionSpec, ConnectType
from control.schemas.artifacts import ArtifactReport
from control.schemas.pipeline import ArtifactKind
from runtime_agent import models

if TYPE_CHECKING:
    from runtime_agent.pipeline import Run

logger = logging.getLogger(__name__)


def attach(run: Run) -> None:
    """Hand the run's resolved inputs to its operator context."""
    run.ctx.inputs = {name: dict(entry) for name, entry in run.spec.inputs.items()}

    async def load(name: str) -> Path:
        return await load_input_model(run, name)

    run.ctx._load_input = load


def _store(run: Run) -> ConnectionSpec:
    model = run.spec.model
    if model is not None and model.connection is not None:
        return model.connection
    return ConnectionSpec(connect_name="atom-models", connect_type=ConnectType.FILE)


async def load_input_model(run: Run, name: str) -> Path:
    """Fetch model input `name` into `<data>/inputs/<name>`; returns that directory.

    Raises:
        KeyError: the run has no input `name`.
        ValueError: input `name` is not a model.
    """
    entry = run.spec.inputs.get(name)
    if entry is None:
        raise KeyError(f"this run has no input {name!r} (it has: {', '.join(run.spec.inputs) or 'none'})")
    if entry.get("kind") != ArtifactKind.MODEL.value:
        raise ValueError(f"input {name!r} is a {entry.get('kind')}, not a model")
    dest = run.dirs.data / "inputs" / name
    dest.mkdir(parents=True, exist_ok=True)
    model = run.spec.model
    value = entry.get("value") or {}
    same = model is not None and (
        model.model_address == entry.get("uri") or model.model_id == value.get("modelId")
    )
    await models.download(
        str(entry.get("uri") or ""),
        connection=model.connection if same and model is not None else None,
        connections=run.connections,
        dest=dest,
        default_base=run.dirs.data / "models",
    )
    return dest


def sink_reports(run: Run) -> list[ArtifactReport]:
    if run.sinks is None:
        return []
    rows = run.sinks.rows_written
    return [
        ArtifactReport(
            name=f"sink:{sink.source_name}"[:128],
            kind=ArtifactKind.DATASET,
            uri=f"{sink.connection.connect_type}://{sink.connection.connect_name}/{sink.operate_execute}"[
                :1024
            ],
            value={
                "connection": sink.connection.connect_name,
                "target": sink.operate_execute,
                "rows": rows,
                "format": sink.data_format,
            },
        )
        for sink in run.sinks.sinks
    ]


async def file_reports(run: Run) -> list[ArtifactReport]:
    declared = dict(run.ctx.declared_outputs)
    if not declared:
        return []
    conn = await run.connections.get(_store(run), default_addr=run.dirs.data / "models")
    reports = []
    for name, path in sorted(declared.items()):
        if not path.exists():
            raise FileNotFoundError(f"declared output {name!r}: {path} does not exist")
        upload, packed = path, False
        if path.is_dir():
            upload = run.dirs.data / f".output-{name.replace('/', '_')}.tar.gz"
            await asyncio.to_thread(models.pack_to, path, upload)
            packed = True
        filename = f"{Path(name).name}.tar.gz" if packed else path.name
        key = f"outputs/{run.spec.node_name}/{run.spec.run_id}/{name}/{filename}"
        try:
            size = upload.stat().st_size
            uri = await conn.upload(str(upload), key)
        finally:
            if packed:
                upload.unlink(missing_ok=True)
        logger.info("stored output %r (%d bytes) at %s", name, size, uri)
        reports.append(
            ArtifactReport(
                name=name,
                kind=ArtifactKind.FILE,
                uri=uri,
                value={"file": filename, "bytes": size, "packed": packed},
            )
        )
    return reports


async def report_outputs(run: Run) -> None:
    """Store the declared files and report them and the sinks to control (after the sinks commit)."""
    reports = sink_reports(run) + await file_reports(run)
    if reports:
        await run.callbacks.report_artifacts(reports)
