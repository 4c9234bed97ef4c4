"""Control's code store and `/api/v1/code`: content-addressed uploads, limits, who may download, and
define-time checks of codeMode / codeAddress."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from control import launch
from control.api.app import create_app
from control.client import AsyncControlClient
from control.errors import ControlAPIError
from control.schemas import OperatorRuntimeType, OperatorSpec, TaskSpec
from control.secrets import new_token, token_hash
from control.settings import Settings
from control.store import models as m
from tests.control.factory import SP, ok


def targz(name: str = "op/__init__.py", text: str = "X = 1\n") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(text.encode())
        tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def stored_files(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "code" / "sha256").iterdir())


def temp_files(home: Path) -> list[str]:
    tmp = home / "code" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


@pytest.fixture
def code_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", code_max_bytes=64 * 1024)


@pytest.fixture
async def code_app(code_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(code_settings, reconcile=False)
    async with application.router.lifespan_context(application):
        yield application


def client_for(app: FastAPI, token: str | None = None) -> AsyncControlClient:
    return AsyncControlClient("http://control", token=token, transport=httpx.ASGITransport(app=app))


async def test_upload_is_stored_once_by_digest_and_served_back(
    code_app: FastAPI, code_settings: Settings, tmp_path: Path
) -> None:
    data = targz()
    archive = tmp_path / "code.tar.gz"
    archive.write_bytes(data)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    async with client_for(code_app) as client:
        assert not await client.code_exists(digest)
        first = await client.upload_code(archive)
        assert first == {"digest": digest, "size": len(data)}
        assert await client.upload_code(archive) == first
        assert stored_files(code_settings.home) == [digest.split(":")[1]]
        assert await client.code_exists(digest)
        got = await client.download_code(digest, tmp_path / "back.tar.gz")
        assert got == digest and (tmp_path / "back.tar.gz").read_bytes() == data
        with pytest.raises(ControlAPIError) as err:
            await client.download_code("sha256:" + "a" * 64, tmp_path / "x")
        assert err.value.status_code == 404 and "not in control's store" in str(err.value)
        with pytest.raises(ControlAPIError) as err:
            await client.code_exists("md5:1234")
        assert err.value.status_code == 422
    assert temp_files(code_settings.home) == []


async def test_over_the_limit_is_413_with_size_and_limit(
    code_app: FastAPI, code_settings: Settings, tmp_path: Path
) -> None:
    big = tmp_path / "big.tar.gz"
    big.write_bytes(b"\x1f\x8b" + b"\0" * (100 * 1024))
    async with client_for(code_app) as client:
        with pytest.raises(ControlAPIError) as err:
            await client.upload_code(big)  # announces its length: refused before it is read
    assert err.value.status_code == 413
    message = str(err.value)
    assert "\n" not in message and "102402 bytes" in message and "ATOM_CODE_MAX_BYTES=65536" in message

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(100):
            yield b"\x1f\x8b" + b"\0" * 1022

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=code_app), base_url="http://c") as http:
        resp = await http.post("/api/v1/code", content=chunks())
    assert (
        resp.status_code == 413
        and "over the limit of 64.0 KiB (ATOM_CODE_MAX_BYTES=65536)" in resp.json()["msg"]
    )
    assert temp_files(code_settings.home) == []
    assert not (code_settings.home / "code" / "sha256").exists() or not stored_files(code_settings.home)


async def test_not_an_archive_is_415(code_app: FastAPI, code_settings: Settings, tmp_path: Path) -> None:
    text = tmp_path / "op.py"
    text.write_text("print('hi')\n")
    async with client_for(code_app) as client:
        with pytest.raises(ControlAPIError) as err:
            await client.upload_code(text)
    assert err.value.status_code == 415 and "neither a tar.gz nor a zip" in str(err.value)
    assert temp_files(code_settings.home) == []


async def test_users_upload_and_a_run_downloads_only_its_own_code(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", api_token=SecretStr("user-secret"))
    app = create_app(settings, reconcile=False)
    archive = tmp_path / "code.tar.gz"
    archive.write_bytes(targz())
    async with app.router.lifespan_context(app):
        async with client_for(app) as anonymous:
            with pytest.raises(ControlAPIError) as err:
                await anonymous.upload_code(archive)
            assert err.value.status_code == 401
        async with client_for(app, "user-secret") as user:
            digest = (await user.upload_code(archive))["digest"]
            other = archive.with_name("other.tar.gz")
            other.write_bytes(targz(text="X = 2\n"))
            other_digest = (await user.upload_code(other))["digest"]
        op = OperatorSpec(
            operator_name="o",
            operator_runtime_type=OperatorRuntimeType.PYTHON_DATA,
            module_name="op",
            execute_object="X",
            code_mode="BUNDLE",
            code_address=f"atom-code://{digest}",
        )
        with app.state.orchestrator.store.transaction() as ses:
            run, token = launch.new_runtime(
                session=ses,
                spec=TaskSpec(run_id=0, node_name="n", operator=op),
                space_id=None,
                node_id=None,
                adapter="local",
                reason="test",
            )
            run_id = run.id
        async with client_for(app, token) as agent:
            assert await agent.download_code(digest, tmp_path / "mine", run_id=run_id) == digest
            with pytest.raises(ControlAPIError) as err:
                await agent.download_code(other_digest, tmp_path / "theirs", run_id=run_id)
            assert err.value.status_code == 403 and f"run {run_id}" in str(err.value)
            with pytest.raises(ControlAPIError) as err:
                await agent.download_code(digest, tmp_path / "no-run")  # a run token is not a user token
            assert err.value.status_code == 401


def bundle_run(app: FastAPI, digest: str, *, module: str = "op.serve") -> int:
    """A run whose operator's code is the bundle `digest`, as startNodeTask would store it."""
    op = OperatorSpec(
        operator_name="o",
        operator_runtime_type=OperatorRuntimeType.TRAIN,
        module_name=module,
        execute_object="Train",
        code_mode="BUNDLE",
        code_address=f"atom-code://{digest}",
    )
    with app.state.orchestrator.store.transaction() as ses:
        run, _ = launch.new_runtime(
            session=ses,
            spec=TaskSpec(run_id=0, node_name="n", operator=op),
            space_id=None,
            node_id=None,
            adapter="local",
            reason="test",
        )
        return run.id


def service_of(app: FastAPI, run_id: int, name: str) -> tuple[int, str]:
    """A service (and its model version) for the model `run_id` trained; returns (id, token)."""
    token = new_token()
    with app.state.orchestrator.store.transaction() as ses:
        space = ses.scalar(select(m.Space).where(m.Space.space_name == "default"))
        if space is None:
            space = m.Space(space_name="default")
            ses.add(space)
            ses.flush()
        model = m.Model(space_id=space.id, model_name=name)
        ses.add(model)
        ses.flush()
        version = m.ModelVersion(
            model_id=model.id, model_version="1", model_address="file:///m.tar.gz", runtime_id=run_id
        )
        ses.add(version)
        ses.flush()
        svc = m.Service(
            service_name=f"{name}-1",
            model_id=model.id,
            model_version_id=version.id,
            runtime_id=run_id,
            serving_object="op.serve:Reasoner",
            token_hash=token_hash(token),
        )
        ses.add(svc)
        ses.flush()
        return svc.id, token


async def test_a_service_downloads_only_the_code_of_the_run_that_trained_its_model(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", api_token=SecretStr("user-secret"))
    app = create_app(settings, reconcile=False)
    archive, other = tmp_path / "code.tar.gz", tmp_path / "other.tar.gz"
    archive.write_bytes(targz())
    other.write_bytes(targz(text="X = 2\n"))
    async with app.router.lifespan_context(app):
        async with client_for(app, "user-secret") as user:
            digest = (await user.upload_code(archive))["digest"]
            other_digest = (await user.upload_code(other))["digest"]
        service_id, token = service_of(app, bundle_run(app, digest), "mine")
        other_service, other_token = service_of(app, bundle_run(app, other_digest), "theirs")
        async with client_for(app, token) as serving:
            spec = await serving.serve_spec(service_id)
            assert (spec.code_mode, spec.code_address, spec.module_name) == (
                "BUNDLE",
                f"atom-code://{digest}",
                "op",
            )
            got = await serving.download_code(digest, tmp_path / "mine", service_id=service_id)
            assert got == digest and (tmp_path / "mine").read_bytes() == archive.read_bytes()
            with pytest.raises(ControlAPIError) as err:
                await serving.download_code(other_digest, tmp_path / "theirs", service_id=service_id)
            assert err.value.status_code == 403 and f"service {service_id}" in str(err.value)
            with pytest.raises(ControlAPIError) as err:  # its token names this service only
                await serving.download_code(other_digest, tmp_path / "theirs", service_id=other_service)
            assert err.value.status_code == 401
            with pytest.raises(ControlAPIError) as err:  # a service token is not a user token
                await serving.download_code(digest, tmp_path / "no-service")
            assert err.value.status_code == 401
        async with client_for(app, "not-a-token") as stranger:
            with pytest.raises(ControlAPIError) as err:
                await stranger.download_code(digest, tmp_path / "bad", service_id=service_id)
            assert err.value.status_code == 401 and "service token is not valid" in str(err.value)
        async with client_for(app, other_token) as theirs:
            got = await theirs.download_code(other_digest, tmp_path / "other", service_id=other_service)
            assert got == other_digest
        old_run = bundle_run(app, digest)
        with app.state.orchestrator.store.transaction() as ses:  # stored before runs had code fields
            row = ses.get(m.Runtime, old_run)
            operator = {k: v for k, v in row.spec["operator"].items() if not k.startswith("code")}
            row.spec = {**row.spec, "operator": operator}
        old_service, old_token = service_of(app, old_run, "old")
        async with client_for(app, old_token) as serving:
            spec = await serving.serve_spec(old_service)
            assert (spec.code_mode, spec.code_address, spec.code_version) == ("MODULE", "", "")
            with pytest.raises(ControlAPIError) as err:
                await serving.download_code(digest, tmp_path / "old", service_id=old_service)
            assert err.value.status_code == 403
    assert not (tmp_path / "theirs").exists() and not (tmp_path / "bad").exists()


# -- define-time checks (SQLite and MariaDB) --------------------------------------------------------


def operator(**fields: str) -> dict[str, str]:
    return {"operatorName": "op", "moduleName": "pkg.train", "executeObject": "Train", **fields}


async def test_code_fields_are_checked_when_an_operator_is_defined(api: httpx.AsyncClient) -> None:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    cases = [
        ({"codeMode": "FTP"}, "codeMode", "'MODULE', 'GIT', 'PIP' or 'BUNDLE'"),
        ({"codeMode": "GIT"}, "codeAddress", "GIT needs codeAddress"),
        ({"codeMode": "PIP", "codeAddress": ""}, "codeAddress", "PIP needs codeAddress"),
        ({"codeMode": "BUNDLE", "codeAddress": "./code"}, "codeAddress", "atom-code://sha256:"),
        ({"codeMode": "BUNDLE", "codeAddress": "atom-code://sha256:abc"}, "codeAddress", "64 hex"),
    ]
    for fields, field, needle in cases:
        resp = await api.put(f"{SP}/operators/op", json=operator(**fields))
        assert resp.status_code == 422, (fields, resp.text)
        errors = resp.json()["errors"]
        assert [e["field"] for e in errors] == [field], errors
        assert needle in errors[0]["msg"], errors

    good = [
        ({"codeMode": "CODE", "codeAddress": "127.0.0.1", "codeVersion": "0.0.1"}, "MODULE"),
        ({"codeMode": "git", "codeAddress": "https://example.com/x.git", "codeVersion": "v1"}, "GIT"),
        ({"codeMode": "PIP", "codeAddress": "pkg-ops", "codeVersion": "1.2"}, "PIP"),
        ({"codeMode": "BUNDLE", "codeAddress": "atom-code://sha256:" + "ab" * 32}, "BUNDLE"),
        ({}, "MODULE"),
    ]
    for fields, mode in good:
        body = await ok(await api.put(f"{SP}/operators/op", json=operator(**fields)))
        assert body["codeMode"] == mode


async def test_stored_code_modes_stay_readable(app: FastAPI, api: httpx.AsyncClient) -> None:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    await ok(await api.put(f"{SP}/operators/op", json=operator()))
    for stored, shown in (("CODE", "MODULE"), ("", "MODULE"), ("local-dir", "local-dir")):
        with app.state.orchestrator.store.transaction() as ses:
            for row in ses.query(m.Operator).all():
                row.code_mode = stored
                row.code_address = ""
        assert (await ok(await api.get(f"{SP}/operators/op")))["codeMode"] == shown
