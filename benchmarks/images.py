"""Benchmark: the agent image (size, rebuild after a code change) against a plain `pip install`.

    python benchmarks/images.py [--repeat 3] [--cold]

One command, one run, on this machine's Docker engine (tests/docker_support.py starts a private
dockerd and builds the CPU agent image from the local Debian base and the local CPU torch wheel,
exactly as the tests do). Measured, with ratios in the same run:

(a) a fresh venv: `python -m venv`, the same torch wheel, then `pip install` of a copy of the
    repository (dependencies from pip's warm cache, as a developer's second install would be);
(b) that venv after a code-only change: `pip install --no-deps` of the changed copy;
(c) `docker build` of the agent image after a code-only change, from the warm layer cache (the
    dependency layers are reused; the code is copied and installed again);
(d) with --cold: `docker build --no-cache` of the agent image (every layer again; pip's cache
    mount stays warm; the base image is not rebuilt).

Sizes: the image (`docker image inspect`), its largest layers, and (a)'s venv on disk.
Writes benchmarks/results/images.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "images.md"

from tests import docker_support as ds  # noqa: E402 - after the sys.path line


def _copy_inputs(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in ds.IMAGE_INPUTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def _code_change(tree: Path) -> None:
    with open(tree / "runtime_agent" / "__init__.py", "a") as fh:
        fh.write(f"\n# benchmark code change {uuid.uuid4().hex}\n")


def _quiet(argv: list[str], cwd: Path | None = None) -> float:
    """Run argv; its output is shown only when it fails. Returns the seconds it took."""
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.monotonic() - started


def _du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def _torch_wheel() -> Path | None:
    wheels = Path(os.environ.get("ATOM_TEST_WHEELS", "/opt/wheels"))
    found = sorted(wheels.glob(ds.TORCH_WHEEL)) if wheels.is_dir() else []
    return found[0] if found else None


def _pip_fresh(work: Path, tree: Path) -> tuple[float, Path]:
    venv = work / f"venv-{uuid.uuid4().hex[:6]}"
    pip = str(venv / "bin" / "pip")
    wheel = _torch_wheel()
    torch_args = (
        [str(wheel)]
        if wheel
        else ["torch==2.13.0+cpu", "--extra-index-url", "https://download.pytorch.org/whl/cpu"]
    )
    started = time.monotonic()
    _quiet([sys.executable, "-m", "venv", str(venv)])
    _quiet([pip, "install", "-q", *torch_args])
    _quiet([pip, "install", "-q", str(tree)], cwd=work)
    return time.monotonic() - started, venv


LAYER_NAMES = (
    ("pip install --no-deps", "the code (pip install --no-deps)"),
    ("pip install -r", "the other dependencies (pip install -r)"),
    ("--find-links", "torch, pip, setuptools"),
    ("useradd", "python3-venv check, user, /data, the venv"),
)


def _layers(engine: ds.DockerEngine, tag: str) -> list[tuple[float, str]]:
    out = engine.docker("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", tag).stdout
    rows = []
    for line in out.splitlines():
        size, _, created = line.partition("\t")
        name = next((label for key, label in LAYER_NAMES if key in created), None)
        name = name or (" ".join(created.split())[:60] or "the base image (docker import)")
        if _size_mib(size) >= 1:
            rows.append((_size_mib(size), name))
    return sorted(rows, reverse=True)


def _size_mib(text: str) -> float:
    units = {"B": 1 / 2**20, "kB": 1e3 / 2**20, "MB": 1e6 / 2**20, "GB": 1e9 / 2**20}
    for unit in ("kB", "MB", "GB", "B"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time a build with --no-cache")
    args = parser.parse_args()

    try:
        engine = ds.acquire_engine()
    except ds.EngineUnavailable as exc:
        print(exc)
        return 0
    rows: list[tuple[str, list[float]]] = []
    load_before = os.getloadavg()[0]
    try:
        started = time.monotonic()
        tag = ds.ensure_agent_image(engine)
        first = time.monotonic() - started
        base, wheels = ds.ensure_base_image(engine), ds.ensure_wheels_image(engine)
        size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout) / 2**20
        base_size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", base).stdout) / 2**20
        layers = _layers(engine, tag)
        server = engine.docker("version", "--format", "{{.Server.Version}}").stdout.strip()

        with tempfile.TemporaryDirectory(prefix="atom-bench-images-") as tmp:
            work = Path(tmp)
            fresh, warm_docker, code_pip = [], [], []
            venv_size = 0.0
            for i in range(args.repeat):
                tree = _copy_inputs(work / f"tree-{i}")
                seconds, venv = _pip_fresh(work, tree)
                fresh.append(seconds)
                venv_size = _du_mib(venv)
                _code_change(tree)
                code_pip.append(_quiet([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(tree)]))
                probe = f"atom-agent:bench-{uuid.uuid4().hex[:8]}"
                with ds.locked("build"):
                    result = ds.build_agent_image(engine, probe, context=tree, base=base, wheels=wheels)
                engine.docker("image", "rm", probe, check=False)
                reused = [title for title, hit in result.steps().items() if hit and "pip install" in title]
                assert len(reused) == 2, f"dependency layers not reused: {list(result.steps())}"
                warm_docker.append(result.seconds)
                print(
                    f"round {i + 1}: (a) {fresh[-1]:.2f} s, (b) {code_pip[-1]:.2f} s, "
                    f"(c) {result.seconds:.2f} s",
                    flush=True,
                )
                shutil.rmtree(venv)
            rows += [
                ("(a) fresh venv + pip install (torch wheel, warm pip cache)", fresh),
                ("(b) pip install --no-deps after a code change", code_pip),
                ("(c) docker build after a code change (warm layer cache)", warm_docker),
            ]
            if args.cold:
                tree = _copy_inputs(work / "tree-cold")
                probe = f"atom-agent:bench-{uuid.uuid4().hex[:8]}"
                argv = ["--no-cache", "--build-arg", f"BASE={base}"]
                if wheels:
                    argv += ["--build-arg", f"WHEELS={wheels}", "--build-arg", "TORCH_INDEX_URL="]
                if ds.CA_BUNDLE.exists():
                    argv += ["--secret", f"id=pip_cert,src={ds.CA_BUNDLE}"]
                with ds.locked("build"):
                    cold = ds.docker_build(engine, probe, tree, *argv)
                engine.docker("image", "rm", probe, check=False)
                rows.append(("(d) docker build --no-cache (pip's cache mount warm)", [cold.seconds]))
    finally:
        ds.release_engine(engine)

    ref = statistics.median(fresh)
    lines = [
        "# The agent image: size and build time against a plain pip install",
        "",
        f"Machine: {platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()}); "
        f"`python benchmarks/images.py --repeat {args.repeat}{' --cold' if args.cold else ''}`; Docker "
        f"{server} (BuildKit), "
        "the local Debian bookworm base (debootstrap) and the local CPU torch wheel.",
        f"Load average (1 min) at the start and the end: {load_before:.2f}, {os.getloadavg()[0]:.2f} "
        "(other work on the machine makes the runs vary).",
        f"Getting the image at the start of the run (built only if its content changed): {first:.1f} s.",
        "",
        "| contender | seconds (median) | runs | vs (a) |",
        "|---|---:|---|---:|",
    ]
    for name, values in rows:
        med = statistics.median(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {name} | {med:.2f} | {runs} | {med / ref:.2f}x |")
    lines += [
        "",
        f"(c) vs (b): {statistics.median(warm_docker) / statistics.median(code_pip):.2f}x "
        "(a code change: image rebuild vs reinstall into a venv).",
        "",
        "| size | MiB | vs venv |",
        "|---|---:|---:|",
        f"| CPU agent image ({tag}) | {size:.0f} | {size / venv_size:.2f}x |",
        f"| its base (Debian minbase + python3, venv, CA certificates) | {base_size:.0f} | |",
        f"| (a)'s venv on disk | {venv_size:.0f} | 1.00x |",
        "",
        "Largest layers of the image:",
        "",
        "| MiB | layer |",
        "|---:|---|",
        *(f"| {mib:.0f} | {what} |" for mib, what in layers[:6]),
        "",
        "The GPU variant (a CUDA runtime base, PyPI's CUDA torch wheel) was not built: no registry",
        "answers here to pull a CUDA base from.",
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
