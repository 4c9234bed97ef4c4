"""Archives unpack the same on Pythons with and without extraction filters (Debian bookworm's 3.11.2
has none): plain files and directories come out, links and paths that leave the directory do not."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from connectors.errors import UnsafeArchive
from runtime_agent._tar import extract_all


def _archive(path: Path, *, evil: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        data = b"weights"
        info = tarfile.TarInfo("model/weights.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        if evil == "escape":
            info = tarfile.TarInfo("../escaped.txt")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        elif evil == "link":
            info = tarfile.TarInfo("model/passwd")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def test_plain_members_are_unpacked(filters: str, tmp_path: Path) -> None:
    with tarfile.open(_archive(tmp_path / "ok.tar.gz")) as tar:
        extract_all(tar, tmp_path / "out")
    assert (tmp_path / "out" / "model" / "weights.bin").read_bytes() == b"weights"


@pytest.mark.parametrize("evil", ["escape", "link"])
def test_members_that_leave_the_directory_are_refused(filters: str, evil: str, tmp_path: Path) -> None:
    with tarfile.open(_archive(tmp_path / "bad.tar.gz", evil=evil)) as tar, pytest.raises(UnsafeArchive):
        extract_all(tar, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
