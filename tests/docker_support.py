"""Atom's agent image built on the tests' Docker engine (tests/docker_engine.py), and that engine.

Stand-in: none. No registry is reachable here, so the base image is made with debootstrap and
`docker import` (Debian bookworm minbase + python3, python3-venv, CA certificates; about 90 s,
once per machine), and the agent image is built from docker/agent.Dockerfile on it, with the
CPU torch wheel of a local directory (`ATOM_TEST_WHEELS`, default `/opt/wheels`) when it holds
one. Images are tagged by content hash and kept in the engine's persistent data root, so a run
builds only what changed; a code-only change rebuilds in seconds from the layer cache.

This module re-exports the engine's API: `DockerEngine`, `EngineUnavailable`, `acquire_engine`,
`release_engine`, `cleanup`, `locked`, `cache_dir`, `docker_cli`.

`python -m tests.docker_support cleanup` stops an engine whose users are all gone (.ci/test runs
it on exit); `... image` builds the agent image and prints its tag.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.docker_engine import (
    DockerEngine,
    EngineUnavailable,
    acquire_engine,
    cache_dir,
    cleanup,
    docker_cli,
    install_packages,
    locked,
    release_engine,
)

__all__ = [
    "DockerEngine",
    "EngineUnavailable",
    "acquire_engine",
    "cache_dir",
    "cleanup",
    "docker_cli",
    "locked",
    "release_engine",
]

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "docker" / "agent.Dockerfile"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
TORCH_WHEEL = "torch-2.13.0+cpu-*.whl"
AGENT_REPO = "atom-agent"
AGENT_TAG_PREFIX = "test-"
# what the agent image is made of: a change to any of these makes a new tag
IMAGE_INPUTS = (
    "docker",
    ".dockerignore",
    "pyproject.toml",
    "README.md",
    "control",
    "connectors",
    "runtime_agent",
    "tui",
)


# -- images --------------------------------------------------------------------------------------


def _tree_digest(root: Path, names: Iterable[str]) -> str:
    """sha256 over the paths and contents of the files under root/names (caches excluded)."""
    digest = hashlib.sha256()
    for name in names:
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(root).as_posix()
            if "__pycache__" in rel or rel.endswith(".pyc"):
                continue
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _debian_mirror() -> str:
    """The Debian URI of the host's apt sources (deb822 or one-line), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for path in sources:
        with contextlib.suppress(OSError):
            for uri in re.findall(r"(?:URIs:|^deb)\s+(?:\[[^]]*\]\s+)?(\S+)", path.read_text(), re.M):
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    return "http://deb.debian.org/debian"


def ensure_base_image(engine: DockerEngine) -> str:
    """The local base image (Debian minbase + python3, venv, CA certificates), made once.

    `ATOM_TEST_DOCKER_BASE` names another base to use instead (e.g. python:3.11-slim where a
    registry answers).
    """
    named = os.environ.get("ATOM_TEST_DOCKER_BASE")
    if named:
        return named
    recipe = f"debootstrap minbase {BASE_SUITE} {','.join(BASE_PACKAGES)} v1"
    tag = f"atom-base:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    with locked("build"):
        if engine.image_exists(tag):
            return tag
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if not os.path.exists(debootstrap):
            install_packages()
        root = cache_dir() / "base-rootfs"
        shutil.rmtree(root, ignore_errors=True)
        try:
            proc = subprocess.run(
                [debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                 BASE_SUITE, str(root), _debian_mirror()],
                capture_output=True, text=True, timeout=1200,
            )  # fmt: skip
            if proc.returncode != 0:
                raise RuntimeError(f"debootstrap failed: {proc.stdout.strip()[-1500:]}")
            shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(
                [docker_cli(), "import", "--change", "ENV LANG=C.UTF-8", "-", tag],
                stdin=tar.stdout, env=engine.env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            tar.wait()
            if imported.returncode != 0 or tar.returncode != 0:
                raise RuntimeError(f"docker import of the base failed: {imported.stderr.strip()}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return tag


def ensure_wheels_image(engine: DockerEngine) -> str | None:
    """An image holding the local CPU torch wheel (the build's WHEELS), or None without one."""
    wheels = Path(os.environ.get("ATOM_TEST_WHEELS", "/opt/wheels"))
    found = sorted(wheels.glob(TORCH_WHEEL)) if wheels.is_dir() else []
    if not found:
        return None
    key = "\n".join(f"{p.name} {p.stat().st_size}" for p in found)
    tag = f"atom-wheels:{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    with locked("build"):
        if not engine.image_exists(tag):
            tar = subprocess.Popen(
                ["tar", "-C", str(wheels), "-c", *(p.name for p in found)], stdout=subprocess.PIPE
            )
            imported = subprocess.run(
                [docker_cli(), "import", "-", tag],
                stdin=tar.stdout, env=engine.env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            tar.wait()
            if imported.returncode != 0:
                raise RuntimeError(f"docker import of the wheels failed: {imported.stderr.strip()}")
    return tag


@dataclass
class BuildResult:
    tag: str
    output: str  # BuildKit's plain progress: each step, `CACHED` when the layer cache served it
    seconds: float

    def steps(self) -> dict[str, bool]:
        """Each step's instruction (`[stage 3/9] RUN ...`) -> whether the cache served it."""
        titles: dict[str, str] = {}
        cached: set[str] = set()
        for line in self.output.splitlines():
            m = re.match(r"#(\d+) (\[.*)", line)
            if m:
                titles.setdefault(m.group(1), m.group(2))
            elif re.fullmatch(r"#(\d+) CACHED", line.strip()):
                cached.add(line.split()[0][1:])
        return {title: num in cached for num, title in titles.items()}


def docker_build(
    engine: DockerEngine, tag: str, context: Path, *args: str, dockerfile: Path | None = None
) -> BuildResult:
    """`docker build` with BuildKit and the host network; a failed build's log is kept in
    `{cache}/build-failed.log`."""
    argv = [docker_cli(), "build", "--progress", "plain", "--network", "host", "-t", tag]
    argv += ["-f", str(dockerfile or context / "docker" / "agent.Dockerfile"), *args, str(context)]
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run(argv, env=engine.env, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
        out.seek(0)
        output = out.read()
    if proc.returncode != 0:
        log = cache_dir() / "build-failed.log"
        log.write_text(output)
        tail = "\n".join(output.strip().splitlines()[-25:])
        raise RuntimeError(f"building {tag} failed (whole log: {log}):\n{tail}")
    return BuildResult(tag, output, time.monotonic() - started)


def build_agent_image(
    engine: DockerEngine, tag: str, *, context: Path = REPO, base: str, wheels: str | None
) -> BuildResult:
    """The agent image from `context` (a tree like the repository's) on `base`."""
    args = ["--build-arg", f"BASE={base}"]
    if wheels:
        # the local wheel serves torch; no extra index (download.pytorch.org need not answer)
        args += ["--build-arg", f"WHEELS={wheels}", "--build-arg", "TORCH_INDEX_URL="]
    if CA_BUNDLE.exists():
        args += ["--secret", f"id=pip_cert,src={CA_BUNDLE}"]
    return docker_build(engine, tag, context, *args)


def agent_image_tag(engine: DockerEngine, base: str, wheels: str | None) -> str:
    """The agent image's tag: a hash of docker/, pyproject.toml, the packages, base and wheels."""
    ids = [engine.docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() for ref in (base,)]
    if wheels:
        ids.append(engine.docker("image", "inspect", "--format", "{{.Id}}", wheels).stdout.strip())
    digest = hashlib.sha256((_tree_digest(REPO, IMAGE_INPUTS) + " ".join(ids)).encode()).hexdigest()
    return f"{AGENT_REPO}:{AGENT_TAG_PREFIX}{digest[:12]}"


def ensure_agent_image(engine: DockerEngine) -> str:
    """The CPU agent image of the working tree, built only when no image of that content exists."""
    base = ensure_base_image(engine)
    wheels = ensure_wheels_image(engine)
    tag = agent_image_tag(engine, base, wheels)
    with locked("build"):
        if engine.image_exists(tag):
            return tag
        build_agent_image(engine, tag, base=base, wheels=wheels)
        # older test tags go; their layers stay in the build cache for the next change
        listed = engine.docker("image", "ls", AGENT_REPO, "--format", "{{.Repository}}:{{.Tag}}").stdout
        for old in listed.split():
            if old != tag and old.startswith(f"{AGENT_REPO}:{AGENT_TAG_PREFIX}"):
                engine.docker("image", "rm", old, check=False)
    return tag


def main(argv: list[str]) -> int:
    if argv[:1] == ["cleanup"]:
        cleanup()
        return 0
    if argv[:1] == ["image"]:
        engine = acquire_engine()
        try:
            print(ensure_agent_image(engine))
        finally:
            release_engine(engine)
        return 0
    print("usage: python -m tests.docker_support cleanup|image", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
