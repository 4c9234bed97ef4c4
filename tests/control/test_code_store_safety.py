"""`POST /api/v1/code` reads every member header: an archive that would unpack outside its folder is
refused with 422 and one line naming the member, an unreadable one with 415; neither is stored."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from control.api.app import create_app
from control.settings import Settings


def _targz(*members: tuple[str, bytes | None, str]) -> bytes:
    """(name, data, symlink target) per member: data for files, a target for symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, target in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("op/__init__.py", "X = 1\n")
        zf.writestr(name, "evil")
    return buf.getvalue()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
async def http(home: Path) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(Settings(home=home, code_max_bytes=64 * 1024), reconcile=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c")
    async with app.router.lifespan_context(app), client:
        yield client


def _stored(home: Path) -> list[str]:
    blobs = home / "code" / "sha256"
    tmp = home / "code" / "tmp"
    return sorted(p.name for d in (blobs, tmp) if d.exists() for p in d.iterdir())


@pytest.mark.parametrize(
    ("body", "member"),
    [
        (_targz(("op/__init__.py", b"X = 1\n", ""), ("../evil.py", b"x", "")), "../evil.py"),
        (_targz(("/etc/cron.d/evil", b"x", "")), "/etc/cron.d/evil"),
        (_targz(("op/passwd", None, "/etc/passwd")), "op/passwd"),
        (_targz(("op/up", None, "../../x")), "op/up"),
        (_zip("../evil.py"), "../evil.py"),
        (_zip("/abs.py"), "/abs.py"),
    ],
    # named, not by their bytes: the archives carry the time they were made (workers collect apart)
    ids=["tar-dotdot", "tar-absolute", "tar-link-absolute", "tar-link-up", "zip-dotdot", "zip-absolute"],
)
async def test_an_archive_that_leaves_its_folder_is_422(
    http: httpx.AsyncClient, home: Path, body: bytes, member: str
) -> None:
    resp = await http.post("/api/v1/code", content=body)
    assert resp.status_code == 422, resp.text
    msg = resp.json()["msg"]
    assert "\n" not in msg and f"member {member!r}" in msg and "whole archive is refused" in msg
    assert _stored(home) == []


async def test_an_unreadable_archive_is_415_and_a_safe_one_is_stored(
    http: httpx.AsyncClient, home: Path
) -> None:
    resp = await http.post("/api/v1/code", content=b"\x1f\x8b" + b"\0" * 100)
    assert resp.status_code == 415 and "not a readable tar.gz or zip" in resp.json()["msg"]
    assert _stored(home) == []
    good = _targz(("op/__init__.py", b"X = 1\n", ""), ("op/alias.py", None, "__init__.py"))
    resp = await http.post("/api/v1/code", content=good)
    assert resp.status_code == 200, resp.text
    assert len(_stored(home)) == 1
