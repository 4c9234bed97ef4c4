"""Operator code delivery on the agent: GIT (a local bare repo), PIP (a wheel built here), BUNDLE (from a
real control app), the content-addressed cache, the import path, and one-line failures."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
import tarfile
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from control.schemas import OperatorRuntimeType, OperatorSpec, TaskSpec
from runtime_agent.code import activate, fetch_code
from runtime_agent.errors import CodeFetchError, OperatorLoadError
from runtime_agent.settings import AgentSettings

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}

OPERATOR = '''
from pathlib import Path

from runtime_agent.api import Operator

VALUE = {value!r}


class Hello(Operator):
    """Writes VALUE into the run's data dir; a FILE sink gets one row with it."""

    def task_init_execute(self, ctx):
        Path(ctx.data_dir, "hello.txt").write_text(VALUE)

    def operate_execute(self, batch, ctx):
        ctx.emit(batch.assign(value=VALUE))
'''


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write_module(root: Path, module: str, value: str) -> None:
    pkg = root / module
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(OPERATOR.format(value=value)))


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make_git_repo(base: Path, module: str) -> tuple[Path, dict[str, str]]:
    """A bare repo (`git init --bare` + push): tag v1 -> VALUE 'v1', branch main -> 'v2'.

    Returns:
        (the bare repo's path, {"v1": commit, "main": commit}).
    """
    bare = base / "repo.git"
    work = base / "work"
    subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(work)], check=True)
    commits = {}
    for value in ("v1", "v2"):
        write_module(work, module, value)
        git(work, "add", "-A")
        git(work, "commit", "--quiet", "-m", value)
        if value == "v1":
            git(work, "tag", "v1")
        commits["v1" if value == "v1" else "main"] = git(work, "rev-parse", "HEAD")
    git(work, "push", "--quiet", str(bare), "main", "--tags")
    return bare, commits


def build_wheel(base: Path, module: str, *, requires: tuple[str, ...] = ()) -> Path:
    """A tiny wheel holding `module` (VALUE 'pip'), built offline with the installed setuptools."""
    proj = base / f"proj-{module}"
    write_module(proj, module, "pip")
    deps = ", ".join(f'"{r}"' for r in requires)
    (proj / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{module.replace("_", "-")}"
        version = "1.0"
        dependencies = [{deps}]
        [tool.setuptools]
        packages = ["{module}"]
        """)
    )
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(dist), str(proj)],
        check=True,
    )  # fmt: skip
    (wheel,) = dist.glob(f"{module}-1.0-*.whl")
    return wheel


def task(module: str, mode: str, address: str = "", version: str = "", run_id: int = 1) -> TaskSpec:
    op = OperatorSpec(
        operator_name="op",
        operator_runtime_type=OperatorRuntimeType.PYTHON_DATA,
        module_name=module,
        execute_object="Hello",
        code_mode=mode,
        code_address=address,
        code_version=version,
    )
    return TaskSpec(run_id=run_id, node_name="n", operator=op)


@pytest.fixture(autouse=True)
def own_import_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test's sys.path and PYTHONPATH changes end with it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    yield


@pytest.fixture
def settings(tmp_path: Path) -> AgentSettings:
    return AgentSettings(code_cache=tmp_path / "cache")


def installed_elsewhere(module: str, own: Path) -> list[str]:
    """Entries of sys.path other than `own` that hold `module` (the agent's site-packages, say)."""
    return [p for p in sys.path if p and p != str(own) and Path(p, module).exists()]


def leftovers(cache: Path) -> list[str]:
    """What a fetch left in the cache's tmp dir (must be nothing)."""
    tmp = cache / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


# -- GIT --------------------------------------------------------------------------------------------


async def test_git_tag_branch_and_commit_each_checkout_once(tmp_path: Path, settings: AgentSettings) -> None:
    module = unique("gitop")
    bare, commits = make_git_repo(tmp_path, module)
    first = await fetch_code(task(module, "GIT", str(bare), "v1"), settings)
    assert first.version == commits["v1"] and not first.cached
    assert first.path is not None and (first.path / module / "__init__.py").read_text().count("'v1'") == 1
    assert not (first.path / ".git").exists()
    again = await fetch_code(task(module, "GIT", str(bare), "v1"), settings)
    assert again.cached and again.path == first.path
    by_commit = await fetch_code(task(module, "git", str(bare), commits["v1"]), settings)
    assert by_commit.cached and by_commit.path == first.path  # the commit's tree, no network
    main = await fetch_code(task(module, "GIT", str(bare), "main"), settings)
    assert main.version == commits["main"] and main.path != first.path
    assert "'v2'" in (main.path / module / "__init__.py").read_text()  # type: ignore[operator]
    short = await fetch_code(task(module, "GIT", str(bare), commits["v1"][:10]), settings)
    assert short.version == commits["v1"]
    assert sys.path[0] == str(short.path)
    assert leftovers(settings.code_cache) == []  # type: ignore[arg-type]


async def test_git_concurrent_fetches_build_one_tree(tmp_path: Path, settings: AgentSettings) -> None:
    module = unique("gitop")
    bare, commits = make_git_repo(tmp_path, module)
    spec = task(module, "GIT", str(bare), "v1")
    got = await asyncio.gather(*(fetch_code(spec, settings) for _ in range(4)))
    assert {g.path for g in got} == {got[0].path}
    assert sum(not g.cached for g in got) == 1
    trees = list((settings.code_cache / "git" / "trees").iterdir())  # type: ignore[operator]
    assert len(trees) == 1 and trees[0].name.endswith(commits["v1"])


@pytest.mark.parametrize(
    ("address", "version", "needles"),
    [
        ("{tmp}/nowhere.git", "v1", ["nowhere.git", "no such repository"]),
        ("{bare}", "v9", ["no branch, tag or commit 'v9'", "branches: main", "tags: v1"]),
        ("{bare}", "deadbeef00", ["no branch, tag or commit 'deadbeef00'"]),
    ],
)
async def test_git_bad_address_or_ref(
    tmp_path: Path, settings: AgentSettings, address: str, version: str, needles: list[str]
) -> None:
    module = unique("gitop")
    bare, _ = make_git_repo(tmp_path, module)
    address = address.format(tmp=tmp_path, bare=bare)
    with pytest.raises(CodeFetchError) as err:
        await fetch_code(task(module, "GIT", address, version), settings)
    message = str(err.value)
    assert "\n" not in message and address in message
    for needle in needles:
        assert needle in message
    assert isinstance(err.value, OperatorLoadError)
    assert leftovers(settings.code_cache) == []  # type: ignore[arg-type]


async def test_git_repo_without_the_module(tmp_path: Path, settings: AgentSettings) -> None:
    bare, _ = make_git_repo(tmp_path, unique("gitop"))
    with pytest.raises(CodeFetchError, match=r"no module 'not_there' in it \(top-level entries: gitop_"):
        await fetch_code(task("not_there.train", "GIT", str(bare), "v1"), settings)


async def test_the_fetched_code_reaches_child_processes(tmp_path: Path, settings: AgentSettings) -> None:
    module = unique("gitop")
    bare, _ = make_git_repo(tmp_path, module)
    fetched = await fetch_code(task(module, "GIT", str(bare), "v1"), settings)
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(fetched.path)
    child = await asyncio.to_thread(
        subprocess.run,  # what a Ray worker started by the agent sees
        [sys.executable, "-c", f"import {module}; print({module}.VALUE)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert child.stdout.strip() == "v1"
    activate([fetched.path])  # type: ignore[list-item]
    assert os.environ["PYTHONPATH"].split(os.pathsep).count(str(fetched.path)) == 1


# -- PIP --------------------------------------------------------------------------------------------


async def test_pip_wheel_installs_into_its_own_cached_dir(tmp_path: Path, settings: AgentSettings) -> None:
    module = unique("pipop")
    wheel = build_wheel(tmp_path, module)
    first = await fetch_code(task(module, "PIP", str(wheel), "1.0"), settings)
    assert first.path is not None and first.path.parent == settings.code_cache / "pip"  # type: ignore[operator]
    assert (first.path / module / "__init__.py").is_file() and not first.cached
    assert not installed_elsewhere(module, first.path)
    again = await fetch_code(task(module, "PIP", str(wheel), "1.0"), settings)
    assert again.cached and again.path == first.path
    other = await fetch_code(task(module, "PIP", str(wheel), "1.1"), settings)
    assert other.path != first.path  # another codeVersion, another environment
    assert __import__(module).VALUE == "pip"
    assert leftovers(settings.code_cache) == []  # type: ignore[arg-type]


async def test_pip_missing_wheel_and_uninstallable_requirement(
    tmp_path: Path, settings: AgentSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nothere-1.0-py3-none-any.whl"
    with pytest.raises(CodeFetchError, match="no such file") as err:
        await fetch_code(task("nothere", "PIP", str(missing)), settings)
    assert str(missing) in str(err.value)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no downloads: the dependency cannot be found
    module = unique("pipop")
    wheel = build_wheel(tmp_path, module, requires=("atom-no-such-dependency-zz",))
    with pytest.raises(CodeFetchError) as err:
        await fetch_code(task(module, "PIP", str(wheel)), settings)
    message = str(err.value)
    assert "\n" not in message and str(wheel) in message and "pip could not install it" in message
    assert "atom-no-such-dependency-zz" in message
    assert not (settings.code_cache / "pip").exists() or not any((settings.code_cache / "pip").iterdir())  # type: ignore[operator]
    assert leftovers(settings.code_cache) == []  # type: ignore[arg-type]


# -- BUNDLE (from a real control app) ---------------------------------------------------------------


def targz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
async def control(tmp_path: Path) -> AsyncIterator[Any]:
    from control.api.app import create_app
    from control.settings import Settings

    app = create_app(Settings(home=tmp_path / "home"), reconcile=False)
    async with app.router.lifespan_context(app):
        yield app


def agent_settings(cache: Path, token: str) -> AgentSettings:
    return AgentSettings(code_cache=cache, control_url="http://control", run_token=SecretStr(token))


async def bundle_run(app: Any, tmp_path: Path, content: bytes, module: str) -> tuple[TaskSpec, str]:
    """Upload `content`, create a run whose operator names it; (its spec, its run token)."""
    from control import launch
    from control.client import AsyncControlClient

    archive = tmp_path / f"{uuid.uuid4().hex}.tar.gz"
    archive.write_bytes(content)
    async with AsyncControlClient("http://control", transport=httpx.ASGITransport(app=app)) as client:
        stored = await client.upload_code(archive)
    spec = task(module, "BUNDLE", f"atom-code://{stored['digest']}", run_id=0)
    with app.state.orchestrator.store.transaction() as ses:
        run, token = launch.new_runtime(
            session=ses, spec=spec, space_id=None, node_id=None, adapter="local", reason="test"
        )
        spec.run_id = run.id
    return spec, token


async def test_bundle_downloads_once_with_the_run_token(
    tmp_path: Path, control: Any, caplog: pytest.LogCaptureFixture
) -> None:
    module = unique("bundleop")
    content = targz({f"{module}/__init__.py": "VALUE = 'b'\n"})
    spec, token = await bundle_run(control, tmp_path, content, module)
    settings = AgentSettings(
        code_cache=tmp_path / "cache", control_url="http://control", run_token=SecretStr(token)
    )
    transport = httpx.ASGITransport(app=control)
    with caplog.at_level(logging.INFO, logger="runtime_agent.code"):
        first = await fetch_code(spec, settings, transport=transport)
    assert not first.cached and (first.path / module / "__init__.py").is_file()  # type: ignore[operator]
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("code: BUNDLE")]
    assert spec.operator.code_address in line and str(first.path) in line and "fetched" in line
    again = await fetch_code(spec, settings, transport=transport)
    assert again.cached and again.path == first.path

    wrong = AgentSettings(
        code_cache=tmp_path / "other", control_url="http://control", run_token=SecretStr("not-it")
    )
    with pytest.raises(CodeFetchError, match="401"):
        await fetch_code(spec, wrong, transport=transport)
    assert leftovers(tmp_path / "other") == []


async def test_bundle_unknown_digest_and_archive_without_module(tmp_path: Path, control: Any) -> None:
    transport = httpx.ASGITransport(app=control)
    module = unique("bundleop")
    spec, token = await bundle_run(control, tmp_path, targz({"README.md": "hi", "lib/x.py": ""}), module)
    settings = AgentSettings(
        code_cache=tmp_path / "cache", control_url="http://control", run_token=SecretStr(token)
    )
    with pytest.raises(CodeFetchError) as err:
        await fetch_code(spec, settings, transport=transport)
    assert f"no module {module!r} in it (top-level entries: README.md, lib)" in str(err.value)
    assert spec.operator.code_address in str(err.value)

    unknown = "atom-code://sha256:" + "0" * 64
    operator = spec.operator.model_copy(update={"code_address": unknown})
    spec_unknown = spec.model_copy(update={"operator": operator})
    with control.state.orchestrator.store.transaction() as ses:  # the run names the unknown digest
        from control.store import models as m

        run = ses.get(m.Runtime, spec.run_id)
        run.spec = spec_unknown.wire()
    with pytest.raises(CodeFetchError, match=r"control has no such code \(404\)") as err:
        await fetch_code(spec_unknown, settings, transport=transport)
    assert unknown in str(err.value)
    assert leftovers(settings.code_cache) == []  # type: ignore[arg-type]
    assert not (settings.code_cache / "bundle" / ("0" * 64)).exists()  # type: ignore[operator]


async def test_module_mode_and_unknown_mode(settings: AgentSettings) -> None:
    fetched = await fetch_code(task("runtime_agent.examples.train_example", "CODE", "127.0.0.1"), settings)
    assert fetched.path is not None and fetched.path.name == "runtime_agent"
    with pytest.raises(CodeFetchError, match="codeMode 'FTP' is not one of MODULE, GIT, PIP, BUNDLE"):
        await fetch_code(task("x", "FTP"), settings)


# -- in a run -----------------------------------------------------------------------------------------


async def test_a_run_imports_its_operator_from_git(tmp_path: Path) -> None:
    from runtime_agent.callbacks import LogCallbacks
    from runtime_agent.runner import run_task

    module = unique("gitop")
    bare, _ = make_git_repo(tmp_path, module)
    run = tmp_path / "run"
    settings = AgentSettings(
        code_cache=tmp_path / "cache",
        data_dir=run / "data",
        model_dir=run / "model",
        log_dir=run / "logs",
        summary_dir=run / "summary",
        share_dir=run / "share",
    )
    outcome = await run_task(settings, LogCallbacks(), spec=task(module, "GIT", str(bare), "v1"))
    assert outcome.state.value == "succeeded", outcome.reason
    assert (run / "data" / "hello.txt").read_text() == "v1"
    assert (run / "data" / "code").resolve() == Path(sys.modules[module].__file__).parent.parent  # type: ignore[arg-type]

    failed = await run_task(settings, LogCallbacks(), spec=task(module, "GIT", str(bare), "nope"))
    assert failed.state.value == "failed" and "no branch, tag or commit 'nope'" in failed.reason
