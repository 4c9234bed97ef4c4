"""Model files: pack a model directory as model.tar.gz, store it through a connector, fetch and unpack it.

Object path: `<modelName>/run-<runId>/model.tar.gz` in the model's connection (a FILE connection
with no base directory stores under `<ATOM_DATA_DIR>/models`). Like every FILE path, a model's
address stays inside its connection's root folder; a model without a connection is read only
from the agent's own model folder. Archives unpack through `connectors.safe_archive`: a member
that would land outside the model folder refuses the whole archive.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.errors import OutsideRoot, UnsafeArchive
from runtime_agent._tar import extract_all
from runtime_agent.errors import ModelError

if TYPE_CHECKING:
    from control.schemas import ConnectionSpec
    from runtime_agent.sources import Connections

logger = logging.getLogger(__name__)

ARCHIVE = "model.tar.gz"


def has_files(model_dir: Path) -> bool:
    """True when `model_dir` holds at least one file."""
    return model_dir.is_dir() and any(p.is_file() for p in model_dir.rglob("*"))


def pack(model_dir: Path) -> bytes:
    """`model_dir`'s contents as gzip'd tar bytes (paths relative to the directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        _add_all(tar, model_dir)
    return buf.getvalue()


def pack_to(model_dir: Path, archive: Path) -> Path:
    """Pack `model_dir` into the file `archive` (streamed to disk, so large models need no RAM)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="w:gz") as tar:
        _add_all(tar, model_dir)
    return archive


def _add_all(tar: tarfile.TarFile, model_dir: Path) -> None:
    for path in sorted(model_dir.rglob("*")):
        tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)


def unpack(data: bytes | Path, dest: Path) -> Path:
    """Extract a model.tar.gz (bytes or a local file) into `dest` (refusing links and paths that leave it).

    Raises:
        ModelError: the bytes are not a readable tar.gz archive.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        source = {"name": data} if isinstance(data, Path) else {"fileobj": io.BytesIO(data)}
        with tarfile.open(mode="r:*", **source) as tar:
            extract_all(tar, dest, "model archive")
    except UnsafeArchive as exc:
        raise ModelError(str(exc)) from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelError(f"model archive cannot be unpacked: {exc}") from exc
    return dest


def object_path(model_name: str, run_id: int) -> str:
    """Where a run's model archive is stored in the model's connection."""
    return f"{model_name}/run-{run_id}/{ARCHIVE}"


async def upload(
    model_dir: Path,
    *,
    model_name: str,
    run_id: int,
    connection: ConnectionSpec | None,
    connections: Connections,
    default_base: Path,
) -> str:
    """Pack `model_dir` and store it; returns the stored object's URI.

    Args:
        model_dir: the directory to pack.
        model_name: the model's name (first path segment).
        run_id: the runtime id.
        connection: the model's connection (None: a FILE store under `default_base`).
        connections: the run's connector pool.
        default_base: base directory for a FILE connection without one.
    """
    from control.schemas import ConnectionSpec, ConnectType

    spec = connection or ConnectionSpec(connect_name="atom-models", connect_type=ConnectType.FILE)
    conn = await connections.get(spec, default_addr=default_base)
    path = object_path(model_name, run_id)
    archive = model_dir.parent / f".{model_dir.name}-{ARCHIVE}"
    await asyncio.to_thread(pack_to, model_dir, archive)
    try:
        size = archive.stat().st_size
        uri = await conn.upload(str(archive), path)  # atomic; multipart for large archives
    finally:
        archive.unlink(missing_ok=True)
    logger.info("stored model (%d bytes) at %s", size, uri)
    return uri


async def download(
    address: str,
    *,
    connection: ConnectionSpec | None,
    connections: Connections,
    dest: Path,
    default_base: Path | None = None,
) -> Path:
    """Fetch a model (an archive, or a single file such as model.bin) and lay it out in `dest`.

    Raises:
        ModelError: the address is empty.
    """
    from control.schemas import ConnectionSpec, ConnectType

    if not address:
        raise ModelError("the model has no modelAddress: train it first or upload one")
    spec = connection or ConnectionSpec(connect_name="atom-models", connect_type=ConnectType.FILE)
    conn = await connections.get(spec, default_addr=default_base)
    name = address.rstrip("/").rsplit("/", 1)[-1]
    data: bytes | Path
    try:
        # object stores and HTTP: the shared cache's copy (parallel ranges, fetched once per host)
        data = await conn.local_file(address)
        logger.info("fetched model %s (%d bytes)", address, data.stat().st_size)
    except NotImplementedError:  # stores without files (MYSQL's object table)
        data = await conn.get_object(address)
        logger.info("fetched model %s (%d bytes)", address, len(data))
    except OutsideRoot as exc:
        if connection is not None:
            raise
        raise ModelError(
            f"model {address!r} lies outside this agent's model folder {str(default_base)!r}: "
            "give the model a FILE connection whose root holds it"
        ) from exc
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return await asyncio.to_thread(unpack, data, dest)
    return await asyncio.to_thread(_write_single, data, dest / (name or "model.bin"))


def _write_single(data: bytes | Path, file: Path) -> Path:
    file.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, Path):
        shutil.copyfile(data, file)
    else:
        file.write_bytes(data)
    return file.parent


def open_local(path: Path, dest: Path) -> Path:
    """A model given on the command line: a directory as is, or an archive unpacked into `dest`.

    Raises:
        ModelError: the path does not exist.
    """
    if path.is_dir():
        return path
    if not path.is_file():
        raise ModelError(f"model path {path} does not exist: give a model directory or model.tar.gz")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return unpack(path.read_bytes(), dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / path.name).write_bytes(path.read_bytes())
    return dest
