"""Archives the agent unpacks (operator code bundles, model archives) never write outside their folder:
one unsafe member (`../evil`, `/abs`, a symlink or hard link pointing out, a device, a name under a
symlink member) refuses the whole archive with one line, and nothing is written at all."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.errors import UnsafeArchive
from connectors.safe_archive import unpack
from runtime_agent import models
from runtime_agent.code._cache import unpack as unpack_code
from runtime_agent.errors import CodeFetchError, ModelError

PLAIN = "pkg/__init__.py"


def _file(name: str, data: bytes = b"x = 1\n") -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info, None


EVIL_TAR: dict[str, list[Callable[[], tuple[tarfile.TarInfo, io.BytesIO | None]]]] = {
    "dotdot": [lambda: _file("../evil")],
    "nested dotdot": [lambda: _file("pkg/../../evil")],
    "absolute": [lambda: _file("/tmp/abs-evil")],
    "symlink out": [lambda: _link("pkg/passwd", "/etc/passwd", tarfile.SYMTYPE)],
    "relative symlink out": [lambda: _link("pkg/up", "../../evil", tarfile.SYMTYPE)],
    "hardlink out": [lambda: _link("pkg/hard", "../evil", tarfile.LNKTYPE)],
    "absolute hardlink": [lambda: _link("pkg/hard", "/etc/passwd", tarfile.LNKTYPE)],
    "device": [lambda: _device("pkg/null")],
    "write through a symlink": [
        lambda: _link("pkg/here", ".", tarfile.SYMTYPE),
        lambda: _file("pkg/here/../../evil"),
    ],
    "symlink chain": [
        lambda: _link("pkg/here", ".", tarfile.SYMTYPE),
        lambda: _link("pkg/chain", "here/../..", tarfile.SYMTYPE),
    ],
    "file under a symlink": [
        lambda: _link("pkg/d", "/tmp", tarfile.SYMTYPE),
        lambda: _file("pkg/d/evil"),
    ],
    "dot-prefixed file under a symlink": [
        lambda: _link("./pkg/d", "sub", tarfile.SYMTYPE),
        lambda: _file("pkg/./d/evil"),
    ],
}


def _tar(path: Path, evil: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(*_file(PLAIN))  # a good member first: it must not be written either
        for make in EVIL_TAR[evil]:
            tar.addfile(*make())
    return path


def _zip(path: Path, name: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(PLAIN, "x = 1\n")
        zf.writestr(zipfile.ZipInfo(name), "evil")
    return path


def _nothing_written(tmp_path: Path, dest: Path) -> None:
    assert not dest.exists() or not any(dest.rglob("*")), "the good member was written before the refusal"
    leftovers = {p.name for p in tmp_path.rglob("*")} - {"bad.tar.gz", "bad.zip", "work"}
    assert not leftovers & {"evil", "abs-evil", "passwd", "hard", "null", "chain", "up"}
    assert not Path("/tmp/abs-evil").exists()


@pytest.mark.parametrize("evil", sorted(EVIL_TAR))
def test_unsafe_tar_is_refused_whole(filters: str, evil: str, tmp_path: Path) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", evil)
    dest = tmp_path / "work" / "out"
    with pytest.raises(UnsafeArchive) as err:
        unpack(archive, dest, "bundle x")
    message = str(err.value)
    assert (
        "\n" not in message
        and message.startswith("bundle x: member ")
        and "whole archive is refused" in message
    )
    _nothing_written(tmp_path, dest)


@pytest.mark.parametrize(
    "name", ["../evil", "pkg/../../evil", "/tmp/abs-evil", "C:/evil", "pkg\\..\\..\\evil"]
)
def test_unsafe_zip_is_refused_whole(name: str, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bad.zip", name)
    dest = tmp_path / "work" / "out"
    with pytest.raises(UnsafeArchive, match="whole archive is refused"):
        unpack(archive, dest, "bundle x")
    _nothing_written(tmp_path, dest)


def test_code_bundles_and_model_archives_name_the_refusal(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", "dotdot")
    with pytest.raises(CodeFetchError, match=r"^BUNDLE atom-code://x: member '\.\./evil' leads outside"):
        unpack_code(archive, tmp_path / "work" / "code", "BUNDLE atom-code://x")
    with pytest.raises(ModelError, match=r"^model archive: member '\.\./evil' leads outside"):
        models.unpack(archive.read_bytes(), tmp_path / "work" / "model")
    zipped = _zip(tmp_path / "bad.zip", "../evil")
    with pytest.raises(CodeFetchError, match="whole archive is refused"):
        unpack_code(zipped, tmp_path / "work" / "code2", "BUNDLE atom-code://y")
    _nothing_written(tmp_path, tmp_path / "work" / "code")
    _nothing_written(tmp_path, tmp_path / "work" / "model")


def test_safe_archives_unpack_with_links_that_stay_inside(filters: str, tmp_path: Path) -> None:
    path = tmp_path / "ok.tar.gz"
    with tarfile.open(path, "w:gz") as tar:  # as `tar -C dir .` writes it: "./" before every name
        tar.addfile(*_file("./" + PLAIN))
        tar.addfile(*_file("pkg/sub/mod.py", b"y = 2\n"))
        tar.addfile(*_link("pkg/alias.py", "sub/mod.py", tarfile.SYMTYPE))
        tar.addfile(*_link("pkg/copy.py", "pkg/sub/mod.py", tarfile.LNKTYPE))
    dest = tmp_path / "out"
    if filters == "no filters":  # nothing would check links while writing: refused up front
        with pytest.raises(UnsafeArchive, match="no extraction filters"):
            unpack(path, dest, "bundle")
        return
    unpack(path, dest, "bundle")
    assert (dest / "pkg" / "alias.py").read_text() == "y = 2\n"
    assert (dest / "pkg" / "copy.py").read_text() == "y = 2\n"
    zipped = tmp_path / "ok.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("pkg/a/b.py", "z = 3\n")
    unpack(zipped.read_bytes(), tmp_path / "zout", "bundle")
    assert (tmp_path / "zout" / "pkg" / "a" / "b.py").read_text() == "z = 3\n"
