"""The images under docker/ (tests/docker_support.py starts the engine and builds the agent image).

Stand-ins: none for the images: a real dockerd builds the CPU agent image from a local Debian
base (debootstrap + `docker import`, as no registry answers here) with the local CPU torch
wheel. The compose file is checked against the Compose Specification's JSON schema
(tests/compose-spec.json, compose-spec/compose-spec@170098b, Apache-2.0) and with
`docker compose config` where a compose CLI is installed; its services are not started here
(their images are not reachable).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import docker_support as ds

REPO = ds.REPO
COMPOSE = REPO / "docker" / "compose.yaml"


def _run(engine: ds.DockerEngine, image: str, *args: str, entrypoint: list[str] | None = None) -> str:
    client = engine.client()
    try:
        out = client.containers.run(
            image, list(args), entrypoint=entrypoint, network_mode="host", remove=True
        )
    finally:
        client.close()
    return out.decode()


@pytest.mark.docker
def test_agent_image_runs_the_agent_as_a_non_root_user(docker_engine: Any, agent_image: str) -> None:
    client = docker_engine.client()
    try:
        config = client.images.get(agent_image).attrs["Config"]
    finally:
        client.close()
    assert config["Entrypoint"] == ["atom-runtime"]
    assert config["User"] == "atom"

    assert "{run,dev,serve,front}" in _run(docker_engine, agent_image, "--help")  # the entrypoint itself
    assert "server" in _run(docker_engine, agent_image, "--help", entrypoint=["atom"])  # control's
    who = _run(
        docker_engine,
        agent_image,
        "-c",
        "id -u; python -c 'import torch, control, runtime_agent; print(torch.__version__)'",
        entrypoint=["sh"],
    ).split()
    assert who[0] == "10001"
    assert who[1] == "2.13.0+cpu"  # the CPU wheel, not PyPI's CUDA build


def _copy_inputs(dest: Path) -> None:
    for name in ds.IMAGE_INPUTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)


@pytest.mark.docker
def test_a_code_only_change_rebuilds_only_the_code_layers(
    docker_engine: Any, agent_image: str, tmp_path: Path
) -> None:
    _copy_inputs(tmp_path)
    with open(tmp_path / "runtime_agent" / "__init__.py", "a") as fh:
        fh.write(f"\n# a code change ({uuid.uuid4().hex})\n")
    pyproject = tmp_path / "pyproject.toml"  # a tool setting changes too: not the dependencies
    pyproject.write_text(pyproject.read_text() + "\n[tool.atom-test]\nprobe = 1\n")
    tag = f"atom-agent:probe-{uuid.uuid4().hex[:8]}"
    with ds.locked("build"):
        base, wheels = ds.ensure_base_image(docker_engine), ds.ensure_wheels_image(docker_engine)
        result = ds.build_agent_image(docker_engine, tag, context=tmp_path, base=base, wheels=wheels)
    try:
        steps = result.steps()

        def cached(fragment: str) -> bool:
            matches = [hit for title, hit in steps.items() if fragment in title]
            assert len(matches) == 1, f"{fragment!r} names {len(matches)} steps of {list(steps)}"
            return matches[0]

        assert cached("pip install --find-links /wheels")
        assert cached("COPY --from=requirements")
        assert cached("pip install -r /opt/atom/requirements.txt")
        assert not cached("COPY runtime_agent")
        assert not cached("pip install --no-deps")
    finally:
        docker_engine.docker("image", "rm", tag, check=False)


@pytest.mark.docker
def test_dockerignore_keeps_the_venv_git_and_tests_out_of_the_context(
    docker_engine: Any, tmp_path: Path
) -> None:
    base = ds.ensure_base_image(docker_engine)
    dockerfile = tmp_path / "probe.Dockerfile"
    dockerfile.write_text(f"FROM {base}\nCOPY . /ctx\n")
    tag = f"atom-context-probe:{uuid.uuid4().hex[:8]}"
    ds.docker_build(docker_engine, tag, REPO, "--no-cache", dockerfile=dockerfile)
    try:
        listing = _run(docker_engine, tag, "-c", "ls -A /ctx; du -sk /ctx", entrypoint=["sh"]).split("\n")
    finally:
        docker_engine.docker("image", "rm", tag, check=False)
    names = set(listing[:-2])
    assert {"pyproject.toml", "README.md", "control", "runtime_agent", "docker"} <= names
    assert not names & {".venv", ".git", "tests", ".mypy_cache", "atom_ml.egg-info"}
    assert int(listing[-2].split()[0]) < 20_000  # KiB: the code, never a venv


def test_the_image_tag_follows_the_code_and_ignores_caches(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    before = ds._tree_digest(tmp_path, ["pkg"])
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"junk")
    assert ds._tree_digest(tmp_path, ["pkg"]) == before
    (tmp_path / "pkg" / "mod.py").write_text("x = 2\n")
    assert ds._tree_digest(tmp_path, ["pkg"]) != before


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_follows_the_compose_specification() -> None:
    import jsonschema

    schema = json.loads((REPO / "tests" / "compose-spec.json").read_text())
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(_compose())
    ]
    assert errors == []


def test_compose_file_runs_control_on_mariadb_redis_and_a_ray_head() -> None:
    services = _compose()["services"]
    assert set(services) == {"control", "mariadb", "redis", "ray-head"}
    control = services["control"]
    assert control["entrypoint"] == ["atom"] and control["command"][0] == "server"
    env = control["environment"]
    assert env["ATOM_DB_URL"].startswith("mysql+pymysql://") and "@mariadb:3306/" in env["ATOM_DB_URL"]
    assert env["ATOM_RAY_ADDRESS"] == "ray-head:6379"
    assert services["ray-head"]["entrypoint"] == ["ray"] and "--head" in services["ray-head"]["command"]
    for name in ("control", "ray-head"):  # both from Atom's one image, built from docker/
        assert services[name]["build"]["dockerfile"] == "docker/agent.Dockerfile"
    assert control["depends_on"]["mariadb"]["condition"] == "service_healthy"


def test_compose_cli_accepts_the_file() -> None:
    for cli in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cli[0]) and subprocess.run([*cli, "version"], capture_output=True).returncode == 0:
            proc = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            return
    pytest.skip("no compose CLI here (docker compose / docker-compose); the schema test covers the file")
