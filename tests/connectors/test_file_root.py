"""A FILE connection's root folder holds: reads, sinks, object calls, caches and model archives refuse
`..`, absolute paths elsewhere and symlinks pointing out, with one line naming the path and the root;
nested paths and symlinks that stay inside work."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from connectors import ConnectionConfig, ReadOptions, open_connector
from connectors.cache._store import Store
from connectors.errors import OutsideRoot, Permanent, PermissionDenied
from connectors.file_root import FileRoot, read_inside
from connectors.files import FileConnector
from control.schemas import ConnectionSpec, ConnectType
from runtime_agent import models
from runtime_agent.errors import ModelError
from runtime_agent.sources import Connections
from tests.connectors.conformance import assert_same_rows, collect, joined, sample_frame

FORMATS = ["csv", "parquet", "pkl", "jsonl", "json"]


def _save(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "pkl":
        frame.to_pickle(path)
    else:
        frame.to_json(path, orient="records", lines=fmt == "jsonl")


@pytest.fixture
def land(tmp_path: Path) -> dict[str, Path]:
    """root/ (the connection's), outside/ (a secret beside it), links inside root pointing each way."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub" / "deep").mkdir(parents=True)
    outside.mkdir()
    for fmt in FORMATS:
        path = outside / f"secret.{fmt}"
        _save(sample_frame(4), path, fmt)
        (root / "sub" / f"data.{fmt}").write_bytes(path.read_bytes())
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "in").symlink_to(root / "sub", target_is_directory=True)
    (root / "secret.csv").symlink_to(outside / "secret.csv")
    (root / "rel-in.csv").symlink_to("sub/data.csv")
    return {"root": root, "outside": outside}


@pytest.fixture
def conn(land: dict[str, Path]) -> FileConnector:
    made = open_connector(ConnectionConfig("FILE", addr=str(land["root"])))
    assert isinstance(made, FileConnector)
    return made


def _escapes(fmt: str, outside: Path) -> list[str]:
    return [
        f"../outside/secret.{fmt}",
        f"sub/../../outside/secret.{fmt}",
        f"../../../../../../{outside}/secret.{fmt}",
        str(outside / f"secret.{fmt}"),
        (outside / f"secret.{fmt}").as_uri(),
        f"out/secret.{fmt}",
        f"in/../out/secret.{fmt}",
    ]


def _one_line_naming(err: pytest.ExceptionInfo[OutsideRoot], path: str, root: Path) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"FILE path {path!r} ") and f"the connection's root {str(root)!r}" in message
    assert message.endswith("use a path inside it") or "set connectAddr" in message
    assert isinstance(err.value, Permanent) and isinstance(err.value, PermissionDenied)


# -- reads -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
async def test_reads_of_every_format_are_refused_outside_and_allowed_inside(
    conn: FileConnector, land: dict[str, Path], fmt: str
) -> None:
    for path in _escapes(fmt, land["outside"]):
        with pytest.raises(OutsideRoot) as err:
            conn.read(path)
        _one_line_naming(err, path, land["root"])
    with pytest.raises(OutsideRoot, match="through the symlink 'out'"):
        conn.read(f"out/secret.{fmt}")
    for inside in (
        f"sub/data.{fmt}",
        f"in/data.{fmt}",
        f"sub/deep/../data.{fmt}",
        str(land["root"] / "sub" / f"data.{fmt}"),
    ):
        assert_same_rows(joined(await collect(conn.read(inside))), sample_frame(4))


async def test_the_seed_style_passwd_path_is_refused(conn: FileConnector, land: dict[str, Path]) -> None:
    with pytest.raises(OutsideRoot) as err:
        conn.read("../../../../etc/passwd", ReadOptions(data_format="csv"))
    assert str(err.value) == (
        f"FILE path '../../../../etc/passwd' is outside the connection's root {str(land['root'])!r}: "
        "use a path inside it"
    )


async def test_symlinked_files_inside_are_read_and_outside_refused(conn: FileConnector) -> None:
    assert_same_rows(joined(await collect(conn.read("rel-in.csv"))), sample_frame(4))
    with pytest.raises(OutsideRoot, match="through the symlink 'secret.csv'"):
        conn.read("secret.csv")
    with pytest.raises(OutsideRoot):
        await conn.local_file("secret.csv")
    assert (await conn.local_file("in/data.csv")).name == "data.csv"


async def test_dataset_reads_refuse_a_part_that_links_out(conn: FileConnector, land: dict[str, Path]) -> None:
    dataset = land["root"] / "set"
    dataset.mkdir()
    sample_frame(3).to_csv(dataset / "part-1.csv", index=False)
    assert_same_rows(
        joined(await collect(conn.read("set/", ReadOptions(data_format="csv")))), sample_frame(3)
    )
    with pytest.raises(OutsideRoot):
        conn.read("out/", ReadOptions(data_format="csv"))
    (dataset / "part-2.csv").symlink_to(land["outside"] / "secret.csv")
    with pytest.raises(OutsideRoot, match="part-2.csv"):
        await collect(conn.read("set/", ReadOptions(data_format="csv")))


# -- sinks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dataset", [False, True])
async def test_sinks_refuse_to_write_outside(
    conn: FileConnector, land: dict[str, Path], fmt: str, dataset: bool
) -> None:
    before = sorted(p.name for p in land["outside"].iterdir())
    for path in _escapes(fmt, land["outside"]):
        target = path.replace(f"secret.{fmt}", f"new-{fmt}/") if dataset else path.replace("secret", "new")
        with pytest.raises(OutsideRoot):
            conn.sink(target)
        with pytest.raises(OutsideRoot):
            await conn.write(sample_frame(2), target)
    assert sorted(p.name for p in land["outside"].iterdir()) == before
    assert sorted(p.name for p in land["root"].parent.iterdir()) == ["outside", "root"]
    target = f"in/nested/new.{fmt}" + ("/" if dataset else "")
    await conn.write(sample_frame(2), target, mode="append")
    assert (land["root"] / "sub" / "nested" / f"new.{fmt}").exists()


@pytest.mark.parametrize("target", [".", "./", "sub/..", "sub/../", "/"])
async def test_a_sink_on_the_root_itself_is_refused(
    conn: FileConnector, land: dict[str, Path], target: str
) -> None:
    with pytest.raises(OutsideRoot):  # its staging files would lie beside the root, outside it
        await conn.write(sample_frame(2), target, data_format="csv", mode="replace")
    assert sorted(p.name for p in land["root"].parent.iterdir()) == ["outside", "root"]


# -- object calls ----------------------------------------------------------------------------------


async def test_object_calls_refuse_outside_and_work_inside(
    conn: FileConnector, land: dict[str, Path], tmp_path: Path
) -> None:
    for path in _escapes("csv", land["outside"]):
        with pytest.raises(OutsideRoot):
            await conn.get_object(path)
        with pytest.raises(OutsideRoot):
            await conn.stat_object(path)
        with pytest.raises(OutsideRoot):
            await conn.download(path, str(tmp_path / "copy"))
        with pytest.raises(OutsideRoot):
            await conn.put_object(path.replace("secret", "planted"), b"x")
        with pytest.raises(OutsideRoot):
            await conn.upload(str(land["root"] / "sub" / "data.csv"), path.replace("secret", "planted"))
    assert not (tmp_path / "copy").exists()
    assert not list(land["outside"].glob("planted*"))
    uri = await conn.put_object("sub/deep/model.bin", b"weights")
    assert uri == (land["root"] / "sub" / "deep" / "model.bin").as_uri()
    assert await conn.get_object("in/deep/model.bin") == b"weights"
    assert (await conn.stat_object(uri)).size == 7
    await conn.download("in/deep/model.bin", str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_bytes() == b"weights"
    listed = [o.path async for o in conn.list_objects()]
    assert "sub/deep/model.bin" in listed and "rel-in.csv" in listed
    assert "secret.csv" not in listed  # a symlink leading out is not an object of this connection


async def test_a_symlink_swapped_in_after_the_check_is_not_followed(land: dict[str, Path]) -> None:
    fence = FileRoot(land["root"])
    checked = fence.contain("sub/swap.bin")
    checked.write_bytes(b"mine")
    assert read_inside(checked, fence) == b"mine"
    checked.unlink()
    checked.symlink_to(land["outside"] / "secret.csv")
    with pytest.raises(OutsideRoot, match="swapped for a symlink"):
        read_inside(checked, fence, shown="sub/swap.bin")


# -- a connection without a root ---------------------------------------------------------------------


async def test_without_a_root_paths_stay_in_the_working_directory(
    land: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(land["root"])
    bare = open_connector(ConnectionConfig("FILE"))
    assert_same_rows(joined(await collect(bare.read("sub/data.csv"))), sample_frame(4))
    with pytest.raises(OutsideRoot, match=f"root {str(land['root'])!r}"):
        bare.read("../outside/secret.csv")
    with pytest.raises(OutsideRoot):
        bare.read(str(land["outside"] / "secret.csv"))
    monkeypatch.chdir("/")
    with pytest.raises(OutsideRoot, match="no root folder to stay in .* set connectAddr"):
        open_connector(ConnectionConfig("FILE")).read("etc/passwd")


# -- caches ------------------------------------------------------------------------------------------


def test_a_cache_index_naming_a_path_instead_of_a_digest_is_a_miss(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    (store.index / "k.json").write_text(json.dumps({"digest": "../../../../etc/passwd", "size": 1}))
    assert store.pin("k") is None
    assert not (store.index / "k.json").exists()
    with pytest.raises(ValueError, match="not a sha256"):
        store.blob_path("../" * 3 + "etc/passwd")
    (store.index / "j.json").write_text(json.dumps(["not", "a", "record"]))
    assert store.pin("j") is None


# -- model archives ----------------------------------------------------------------------------------


def _model_dir(tmp_path: Path) -> Path:
    model_dir = tmp_path / "trained"
    (model_dir / "sub").mkdir(parents=True, exist_ok=True)
    (model_dir / "sub" / "weights.bin").write_bytes(b"w" * 10)
    return model_dir


async def test_model_archives_save_and_load_inside_the_root_only(
    land: dict[str, Path], tmp_path: Path
) -> None:
    spec = ConnectionSpec(
        connect_name="models", connect_type=ConnectType.FILE, connect_addr=str(land["root"])
    )
    connections = Connections()
    try:
        uri = await models.upload(
            _model_dir(tmp_path), model_name="m", run_id=3, connection=spec, connections=connections,
            default_base=tmp_path / "unused",
        )  # fmt: skip
        assert uri == (land["root"] / "m" / "run-3" / "model.tar.gz").as_uri()
        for address in (uri, "m/run-3/model.tar.gz", "in/../m/run-3/model.tar.gz"):
            dest = tmp_path / f"loaded-{abs(hash(address))}"
            await models.download(address, connection=spec, connections=connections, dest=dest)
            assert (dest / "sub" / "weights.bin").read_bytes() == b"w" * 10
        with pytest.raises(OutsideRoot):
            await models.upload(
                _model_dir(tmp_path), model_name="../outside", run_id=3, connection=spec,
                connections=connections, default_base=tmp_path,
            )  # fmt: skip
        assert not (land["outside"] / "run-3").exists()
        (land["outside"] / "model.tar.gz").write_bytes(
            (land["root"] / "m" / "run-3" / "model.tar.gz").read_bytes()
        )
        (land["root"] / "planted.tar.gz").symlink_to(land["outside"] / "model.tar.gz")
        for address in ("../outside/model.tar.gz", str(land["outside"] / "model.tar.gz"), "out/model.tar.gz",
                        "planted.tar.gz"):  # fmt: skip
            with pytest.raises(OutsideRoot):
                await models.download(address, connection=spec, connections=connections, dest=tmp_path / "x")
        assert not (tmp_path / "x").exists()
        with pytest.raises(ModelError, match="outside this agent's model folder"):
            await models.download(
                str(land["outside"] / "model.tar.gz"), connection=None, connections=connections,
                dest=tmp_path / "x", default_base=land["root"],
            )  # fmt: skip
    finally:
        await connections.aclose()


def test_file_root_messages_name_path_and_root(land: dict[str, Path]) -> None:
    fence = FileRoot(land["root"])
    assert fence.contain("sub/deep/../data.csv") == land["root"] / "sub" / "data.csv"
    assert fence.contain(str(land["root"] / "in" / "data.csv")) == land["root"] / "sub" / "data.csv"
    with pytest.raises(OutsideRoot, match="root folder itself"):
        fence.contain("sub/..", writable=True)


async def test_a_file_swapped_for_a_link_out_between_read_and_open_is_refused(
    conn: FileConnector, land: dict[str, Path]
) -> None:
    swapped = land["root"] / "sub" / "swap.csv"
    swapped.write_text("a\n1\n")
    reader = conn.read("sub/swap.csv")  # checked here; opened at the first page
    swapped.unlink()
    swapped.symlink_to(land["outside"] / "secret.csv")
    with pytest.raises(OutsideRoot, match="symlink"):
        await collect(reader)
