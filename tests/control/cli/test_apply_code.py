"""`atom apply` with BUNDLE operators: a local directory or archive becomes `atom-code://sha256:...`,
packed the same way every time and uploaded to the real control app only when it is not stored yet."""

from __future__ import annotations

import hashlib
import io
import os
import textwrap
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from control.api.app import create_app
from control.cli._spec import SpecError, load_spec
from control.cli.apply import apply_spec
from control.client import AsyncControlClient
from control.code_store import pack_dir
from control.settings import Settings

Atom = Callable[..., tuple[int, str, str]]

SPEC = """
space: team-a
operators:
  - operatorName: bundled
    operatorRuntimeType: PYTHON_DATA
    moduleName: myops.copy
    executeObject: Copy
    codeMode: BUNDLE
    codeAddress: {address}
"""


def code_tree(root: Path, body: str = "X = 1\n") -> Path:
    (root / "myops").mkdir(parents=True, exist_ok=True)
    (root / "myops" / "__init__.py").write_text("")
    (root / "myops" / "copy.py").write_text(body)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    return root


def write_spec(tmp_path: Path, address: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(SPEC.format(address=address)))
    return path


def stored(settings: Settings) -> list[str]:
    blobs = settings.home / "code" / "sha256"
    return sorted(p.name for p in blobs.iterdir()) if blobs.exists() else []


@pytest.fixture
async def client(control_settings: Settings) -> AsyncIterator[AsyncControlClient]:
    app = create_app(control_settings, reconcile=False)
    async with (
        app.router.lifespan_context(app),
        AsyncControlClient("http://control", transport=httpx.ASGITransport(app=app)) as c,
    ):
        yield c


def test_the_same_tree_packs_to_the_same_digest(tmp_path: Path) -> None:
    tree = code_tree(tmp_path / "a")
    first, size = pack_dir(tree)
    buf = io.BytesIO()
    assert pack_dir(tree, buf) == (first, size) and len(buf.getvalue()) == size
    assert first == "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()

    os.utime(tree / "myops" / "copy.py", (1, 1))  # times, caches and VCS data do not count
    (tree / "myops" / "__pycache__").mkdir()
    (tree / "myops" / "__pycache__" / "copy.cpython-311.pyc").write_bytes(b"\0")
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert pack_dir(tree)[0] == first
    assert pack_dir(code_tree(tmp_path / "b"))[0] == first  # another place, same content

    (tree / "myops" / "copy.py").write_text("X = 2\n")
    assert pack_dir(tree)[0] != first
    (tree / "myops" / "copy.py").write_text("X = 1\n")
    (tree / "run.sh").chmod(0o644)  # the executable bit is content
    assert pack_dir(tree)[0] != first


async def test_apply_uploads_a_directory_once(
    client: AsyncControlClient, control_settings: Settings, tmp_path: Path
) -> None:
    code_tree(tmp_path / "code")
    spec = load_spec([write_spec(tmp_path, "./code")], "default")
    (entity,) = spec.of("operators")
    assert entity.code is not None and entity.body["codeAddress"] == f"atom-code://{entity.code.digest}"

    dry = await apply_spec(client, spec, dry_run=True)
    assert [(o.kind, o.action) for o in dry] == [
        ("code", "would be uploaded"),
        ("operators", "would be created"),
    ]
    assert stored(control_settings) == []

    first = await apply_spec(client, spec)
    assert [(o.kind, o.action) for o in first] == [("code", "uploaded"), ("operators", "created")]
    assert stored(control_settings) == [entity.code.digest.split(":")[1]]
    got = await client.get("team-a", "operators", "bundled")
    assert (got["codeMode"], got["codeAddress"]) == ("BUNDLE", f"atom-code://{entity.code.digest}")

    again = await apply_spec(client, load_spec([write_spec(tmp_path, "./code")], "default"))
    assert [(o.kind, o.action) for o in again] == [("code", "unchanged"), ("operators", "unchanged")]

    (tmp_path / "code" / "myops" / "copy.py").write_text("X = 3\n")
    changed = await apply_spec(client, load_spec([write_spec(tmp_path, "./code")], "default"))
    assert [(o.kind, o.action, o.detail) for o in changed][1] == ("operators", "updated", "codeAddress")
    assert len(stored(control_settings)) == 2


async def test_apply_uploads_an_archive_as_it_is(
    client: AsyncControlClient, control_settings: Settings, tmp_path: Path
) -> None:
    archive = tmp_path / "ops.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("myops/__init__.py", "")
        zf.writestr("myops/copy.py", "X = 1\n")
    await apply_spec(client, load_spec([write_spec(tmp_path, str(archive))], "default"))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert stored(control_settings) == [digest]
    got = await client.get("team-a", "operators", "bundled")
    assert got["codeAddress"] == f"atom-code://sha256:{digest}"


@pytest.mark.parametrize(
    ("make", "address", "needle"),
    [
        (None, "./missing", "codeAddress './missing': no such file or directory"),
        ("empty-dir", "./code", "no module 'myops' in"),
        ("text-file", "./notes.txt", "is neither a directory, a .tar.gz nor a .zip"),
    ],
)
def test_bad_local_code_is_refused_before_anything_is_sent(
    tmp_path: Path, make: str | None, address: str, needle: str
) -> None:
    if make == "empty-dir":
        (tmp_path / "code" / "other").mkdir(parents=True)
    elif make == "text-file":
        (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SpecError) as err:
        load_spec([write_spec(tmp_path, address)], "default")
    assert len(err.value.problems) == 1, err.value.problems
    (problem,) = err.value.problems
    assert problem.startswith("spec.yaml: operators[0] (bundled): codeAddress") and needle in problem


def test_atom_apply_command_reports_the_upload(
    atom: Atom, tmp_path: Path, control_settings: Settings
) -> None:
    code_tree(tmp_path / "code")
    code, out, err = atom("apply", "-f", str(write_spec(tmp_path, "./code")))
    assert code == 0, err
    assert "code" in out and "uploaded" in out and "bundled" in out
    assert len(stored(control_settings)) == 1
